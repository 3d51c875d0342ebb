/**
 * shoal's raft consensus core: a pure, deterministic state machine in the style of etcd's raft
 * library. It does no I/O and keeps no clock: the caller advances time with `tick()`, feeds peer
 * messages with `step()`, and gets all the work to do as one `Ready` at a time.
 *
 * # Using RawNode (the caller's contract)
 *
 * 1. Create a `RawNode` with a `LogStorage` holding what is durable (hard state, log, snapshot)
 *    and a seeded `random` source. A member that founds a new cluster, on an empty log, calls
 *    `bootstrap(voters)` once; a restarted member does not (its state comes from storage).
 * 2. Call `tick()` at a fixed interval (e.g. every 100 ms: `heartbeatTick` ticks per heartbeat,
 *    `electionTick` ticks per election timeout). Call `step(msg)` for every message from a peer.
 *    Call `propose`, `proposeConfChange`, `readIndex`, `transferLeader`, `campaign` as needed;
 *    refused requests throw a `RaftError` whose `code` says why (NO_LEADER, UNCOMMITTED_LIMIT, ...).
 * 3. When `hasReady()` is true, take `ready()`. At most one Ready is outstanding: until its
 *    `advance()`, `hasReady()` is false while new work accumulates inside the core (so many
 *    proposals are batched into the next Ready: group commit). You may keep calling tick, step and
 *    propose while a Ready is being handled, and `drain()` to take, before the next Ready, the part
 *    of that new work that needs no write (messages, newly committed entries, confirmed reads):
 *    handle it as steps 4, 7 and 10 say, applying after everything handed out before.
 * 4. Send `rd.messages` right away, before or while persisting. These are the leader's appends and
 *    heartbeats (the leader writes to its own log in parallel with replicating it, Raft thesis
 *    §10.2.1), vote requests, snapshots, forwarded proposals and reads. None of them vouches for
 *    state that is not yet durable; in particular the leader counts itself towards a commit only
 *    for entries it has made durable (step 8).
 * 5. Persist atomically, in one durable write: `rd.entries` (appended; a first index at or below
 *    the last index replaces the conflicting suffix) and `rd.hardState` if set. If `rd.snapshot`
 *    is set, persist it first (`RaftStorage.applySnapshot`) and install it in the state machine.
 *    Sync to disk when `rd.mustSync` is true.
 * 6. Only after step 5 is durable, send `rd.messagesAfterPersist`: append acknowledgements and
 *    votes, which promise the sender holds those entries, term and vote durably. Sending them
 *    earlier can lose acknowledged entries or let a member vote twice in one term after a crash.
 * 7. Apply `rd.committedEntries` to the state machine in order. They are already durable locally,
 *    so this may run in parallel with step 5. For an `EntryType.ConfChange` entry, decode it
 *    (`decodeConfChange`) and call `applyConfChange` before this Ready's `advance()` (record the
 *    returned ConfState with the state machine). Serve each `rd.readStates` read once the applied index reaches `readState.index`.
 *    A leader that applies its own removal keeps leading (without counting itself) until the
 *    most up-to-date voter, to whom it hands leadership, takes over; shut a removed member down
 *    only once `status().role` is no longer leader.
 * 8. Call `advance()` once step 5 is durable and step 7's entries are applied (or queued, in order,
 *    to the applier, with conf changes already passed to `applyConfChange`). This is when the leader counts its own log towards the commit quorum, and
 *    when a candidate counts its own vote (which is now durable).
 * 9. Snapshots and compaction: after applying up to index i, the application may take a snapshot
 *    (`RaftStorage.createSnapshot(i, confState, data)`) and later `compact(j)` with j <= i. A
 *    follower too far behind receives a `Snap` message whose `snapshot` carries the metadata; the
 *    transport may stream `snapshot.data` out of band (chunked, resumable, from storage) and must
 *    deliver to the receiver's `step()` a message whose snapshot holds the complete data. On the
 *    sending side it calls `reportSnapshot(to, 'finish' | 'failure')` when done. When a peer
 *    cannot be reached, call `reportUnreachable(id)`.
 * 10. Reads: `readIndex(ctx)` yields a ReadState once a heartbeat round confirms leadership (all
 *    reads queued before a round share it). With `readOnly: 'lease'` (requires checkQuorum) the
 *    leader answers at once while its lease holds: a quorum acknowledged a heartbeat sent less
 *    than electionTick - 1 ticks ago, and members refuse votes for an election timeout after
 *    hearing from a leader (after a restart too). This assumes ticks advance at the same rate on
 *    every member; a process that was paused (GC, SIGSTOP, VM migration) longer than a tick must
 *    not rely on it, so prefer the default 'safe' mode unless that is guaranteed.
 * 11. Messages are plain objects (numbers, booleans, arrays, Uint8Array) and can be encoded with
 *    msgpack as they are. Messages may be lost, duplicated and reordered: the core copes.
 *
 * An `InvariantViolation` thrown by the core means a bug or corrupted storage: stop the member.
 */
export { InvariantViolation } from './assert.js';
export {
  CONF_CHANGE_SINGLES_MAX,
  decodeConfChange,
  encodeConfChange,
} from './confchange.js';
export { describeMessage } from './describe.js';
export { MemoryStorage } from './memory-storage.js';
export type { Logger, RaftConfig, ReadOnlyMode } from './raft.js';
export { message } from './raft.js';
export type { Drained, ProgressStatus, Ready, Status } from './raw-node.js';
export { RawNode } from './raw-node.js';
export { PENDING_READS_MAX } from './read-only.js';
export type { InitialState, LogStorage, RaftStorage } from './storage.js';
export * from './types.js';
