/**
 * `RawNode`: the raft core's public face. It wraps the protocol state machine (`Raft`) and packs
 * its output into one `Ready` at a time; the caller acknowledges it with `advance()`. The numbered
 * contract for handling a Ready is in index.ts.
 */
import { assert } from './assert.js';
import { encodeConfChange } from './confchange.js';
import { configToConfState, type ProgressState } from './progress.js';
import { isLocalMessage, message, Raft, type RaftConfig } from './raft.js';
import {
  type ConfChange,
  ConfChangeTransition,
  ConfChangeType,
  type ConfState,
  type Entry,
  EntryType,
  type HardState,
  type Message,
  MessageType,
  NONE,
  type NodeId,
  RaftError,
  type RaftErrorCode,
  type ReadState,
  Role,
  type Snapshot,
  type SoftState,
} from './types.js';

/** One batch of work for the caller. See the numbered contract in index.ts. */
export interface Ready {
  /** Set when the leader or this member's role changed. Not persisted. */
  readonly softState: SoftState | null;
  /** Set when term, vote or commit changed: persist it with `entries`. */
  readonly hardState: HardState | null;
  /** Entries to append to the log (they may overwrite a conflicting suffix). */
  readonly entries: Entry[];
  /** A snapshot received from the leader, to persist and install in the state machine. */
  readonly snapshot: Snapshot | null;
  /** Committed entries to apply, in order. They are already durable locally. */
  readonly committedEntries: Entry[];
  /** Messages that may be sent at once, even while this Ready is being persisted. */
  readonly messages: Message[];
  /** Messages to send only after `hardState`, `entries` and `snapshot` are durable. */
  readonly messagesAfterPersist: Message[];
  /** Reads confirmed since the last Ready: serve each once `index` is applied. */
  readonly readStates: ReadState[];
  /** Whether persisting this Ready needs an fsync (term, vote or entries changed). */
  readonly mustSync: boolean;
}

export interface ProgressStatus {
  readonly match: number;
  readonly next: number;
  readonly state: 'probe' | 'replicate' | 'snapshot';
  readonly isLearner: boolean;
}

export interface Status {
  readonly id: NodeId;
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
  readonly applied: number;
  readonly lead: NodeId;
  readonly role: Role;
  readonly lastIndex: number;
  readonly leadTransferee: NodeId;
  readonly config: ConfState;
  /** Followers' progress; only on the leader. */
  readonly progress: ReadonlyMap<NodeId, ProgressStatus> | null;
}

/**
 * What arose while a Ready was outstanding and needs no persisting (see `RawNode.drain`). It
 * counts as part of that Ready: the Ready's `advance()` also marks these entries applied.
 */
export interface Drained {
  /** Messages that may be sent at once, like a Ready's `messages`. */
  readonly messages: Message[];
  /** Entries committed and durable here, to apply after everything handed out before them. */
  readonly committedEntries: Entry[];
  /** Reads confirmed since, like a Ready's `readStates`. */
  readonly readStates: ReadState[];
}

interface Outstanding {
  readonly lastEntry: Entry | null;
  readonly snapshotIndex: number;
  readonly hardState: HardState | null;
  /** Committed entries handed out with this Ready and drained while it was outstanding. */
  readonly committed: Entry[][];
  /** The last of them (0 when none). */
  lastCommitted: number;
}

const STATE_NAMES = { 0: 'probe', 1: 'replicate', 2: 'snapshot' } as const;

export class RawNode {
  /** The protocol state machine. Exposed for the simulator's invariant checks and for tests. */
  readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  private outstanding: Outstanding | null = null;

  constructor(config: RaftConfig) {
    this.raft = new Raft(config);
    this.prevSoftState = { lead: this.raft.lead, role: this.raft.role };
    this.prevHardState = this.raft.hardState();
  }

  /**
   * Starts a new cluster on an empty log: appends one committed conf change entry per member at
   * term 1 and applies them. Every founding member calls it with the same lists. The entries come
   * out in the first Ready (to persist) and then as committed entries (to apply as usual).
   */
  bootstrap(voters: readonly NodeId[], learners: readonly NodeId[] = []): void {
    const raft = this.raft;
    if (raft.log.lastIndex() !== 0 || raft.term !== 0) {
      throw new RaftError('NOT_BOOTSTRAPPABLE', 'bootstrap needs an empty log and term 0');
    }
    if (voters.length === 0) throw new RaftError('BAD_CONF_CHANGE', 'bootstrap without voters');
    const changes = [
      ...voters.map((nodeId) => ({ type: ConfChangeType.AddNode, nodeId })),
      ...learners.map((nodeId) => ({ type: ConfChangeType.AddLearner, nodeId })),
    ];
    raft.becomeFollower(1, NONE);
    const entries: Entry[] = changes.map((change, i) => ({
      term: 1,
      index: i + 1,
      type: EntryType.ConfChange,
      data: encodeConfChange({
        transition: ConfChangeTransition.Auto,
        changes: [change],
        context: new Uint8Array(0),
      }),
    }));
    raft.log.append(entries);
    raft.log.commitTo(entries.length);
    for (const entry of entries) {
      raft.applyConfChange({
        transition: ConfChangeTransition.Auto,
        changes: [changes[entry.index - 1]!],
        context: new Uint8Array(0),
      });
    }
  }

  tick(): void {
    this.raft.tick();
  }

  /** Starts an election now (pre-vote first if enabled). */
  campaign(): void {
    this.raft.step(message(MessageType.Hup, { from: this.raft.id }));
  }

  /** Proposes a command. Throws a RaftError (with a code) if it is refused. */
  propose(data: Uint8Array): void {
    this.proposeEntry({ term: 0, index: 0, type: EntryType.Normal, data });
  }

  proposeConfChange(cc: ConfChange): void {
    this.proposeEntry({
      term: 0,
      index: 0,
      type: EntryType.ConfChange,
      data: encodeConfChange(cc),
    });
  }

  private proposeEntry(entry: Entry): void {
    const raft = this.raft;
    const code =
      raft.role === Role.Leader
        ? raft.propose([entry])
        : raft.step(message(MessageType.Prop, { from: raft.id, entries: [entry] }));
    if (code !== null) throw refusal(code, 'proposal');
  }

  /** Applies a committed conf change entry's change; returns the new membership to record. */
  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /** Feeds a message from a peer. Local message types are refused. */
  step(m: Message): void {
    if (isLocalMessage(m.type)) {
      throw new RaftError('STEP_LOCAL_MESSAGE', `message type ${m.type} is local`);
    }
    const raft = this.raft;
    const isResponse =
      m.type === MessageType.AppResp ||
      m.type === MessageType.HeartbeatResp ||
      m.type === MessageType.VoteResp ||
      m.type === MessageType.PreVoteResp;
    // Responses from members not in our configuration (e.g. just removed) are ignored.
    if (isResponse && !raft.trk.progress.has(m.from)) return;
    raft.step(m);
  }

  /**
   * Requests a linearizable read. `context` must be unique per request; a ReadState with the same
   * context comes out in a later Ready. Throws a RaftError if refused.
   */
  readIndex(context: Uint8Array): void {
    const code = this.raft.step(message(MessageType.ReadIndex, { from: this.raft.id, context }));
    if (code !== null) throw refusal(code, 'read');
  }

  /** Asks the leader to hand leadership to `transferee`. */
  transferLeader(transferee: NodeId): void {
    const code = this.raft.step(message(MessageType.TransferLeader, { from: transferee }));
    if (code !== null) throw refusal(code, 'leadership transfer');
  }

  /** The transport could not reach `id`: stop streaming appends to it until it answers. */
  reportUnreachable(id: NodeId): void {
    this.raft.step(message(MessageType.Unreachable, { from: id }));
  }

  /** The transport finished sending a snapshot to `id` (or gave up). */
  reportSnapshot(id: NodeId, status: 'finish' | 'failure'): void {
    this.raft.step(message(MessageType.SnapStatus, { from: id, reject: status === 'failure' }));
  }

  hasReady(): boolean {
    if (this.outstanding !== null) return false;
    const raft = this.raft;
    const log = raft.log;
    return (
      raft.needsFlush() ||
      raft.msgs.length > 0 ||
      raft.msgsAfterPersist.length > 0 ||
      raft.readStates.length > 0 ||
      log.hasNextUnstableEntries() ||
      log.nextUnstableSnapshot() !== null ||
      log.hasNextCommittedEntries() ||
      raft.lead !== this.prevSoftState.lead ||
      raft.role !== this.prevSoftState.role ||
      !sameHardState(raft.hardState(), this.prevHardState)
    );
  }

  /** The next batch of work. At most one Ready is outstanding: call advance() before the next. */
  ready(): Ready {
    if (this.outstanding !== null) {
      throw new RaftError('READY_OUTSTANDING', 'advance() the previous Ready first');
    }
    const raft = this.raft;
    const log = raft.log;
    raft.flush();
    const hs = raft.hardState();
    const hardState = sameHardState(hs, this.prevHardState) ? null : hs;
    const soft = { lead: raft.lead, role: raft.role };
    const softState =
      soft.lead === this.prevSoftState.lead && soft.role === this.prevSoftState.role ? null : soft;
    const entries = log.nextUnstableEntries();
    const snapshot = log.nextUnstableSnapshot();
    const committedEntries = log.nextCommittedEntries();
    const rd: Ready = {
      softState,
      hardState,
      entries,
      snapshot,
      committedEntries,
      messages: raft.msgs,
      messagesAfterPersist: raft.msgsAfterPersist,
      readStates: raft.readStates,
      mustSync:
        entries.length > 0 ||
        snapshot !== null ||
        (hardState !== null &&
          (hardState.term !== this.prevHardState.term ||
            hardState.vote !== this.prevHardState.vote)),
    };
    raft.msgs = [];
    raft.msgsAfterPersist = [];
    raft.readStates = [];
    log.acceptUnstable();
    if (softState !== null) this.prevSoftState = softState;
    if (hardState !== null) this.prevHardState = hardState;
    this.outstanding = {
      lastEntry: entries.length > 0 ? entries[entries.length - 1]! : null,
      snapshotIndex: snapshot?.metadata.index ?? 0,
      hardState,
      committed: committedEntries.length > 0 ? [committedEntries] : [],
      lastCommitted: committedEntries.at(-1)?.index ?? 0,
    };
    return rd;
  }

  /**
   * While a Ready is outstanding (its write in flight), takes the work that arose since and needs
   * no write: messages to send now (a leader's appends for entries proposed meanwhile, heartbeats
   * for reads), entries that became committed (a follower's acknowledgement arrived) and are
   * durable here, and confirmed reads. Without this, that work waits for the write to finish and
   * comes out in the next Ready; with it, a leader answers a client as soon as the quorum has the
   * entry, however long its own next write takes. Entries, hard state and `messagesAfterPersist`
   * are never drained: they wait for the next Ready. Returns null when there is nothing.
   *
   * Handle a Drained as steps 4, 7 and 10 of the contract: send its messages, apply its entries
   * after everything handed out before (the outstanding Ready's and earlier drains'; conf changes
   * go to `applyConfChange` before the outstanding Ready's `advance()`), serve its reads.
   */
  drain(): Drained | null {
    const o = this.outstanding;
    if (o === null) throw new RaftError('READY_OUTSTANDING', 'drain() needs an outstanding Ready');
    const raft = this.raft;
    raft.flush();
    const log = raft.log;
    const committedEntries = log.committedEntriesAfter(Math.max(log.applied, o.lastCommitted));
    if (raft.msgs.length === 0 && committedEntries.length === 0 && raft.readStates.length === 0) {
      return null;
    }
    const drained: Drained = { messages: raft.msgs, committedEntries, readStates: raft.readStates };
    raft.msgs = [];
    raft.readStates = [];
    if (committedEntries.length > 0) {
      o.committed.push(committedEntries);
      o.lastCommitted = committedEntries[committedEntries.length - 1]!.index;
    }
    return drained;
  }

  /**
   * Acknowledges the outstanding Ready: its hard state, entries and snapshot are durable, its
   * messagesAfterPersist were sent, and its committed entries were applied (or handed, in order,
   * to the applier).
   */
  advance(): void {
    const o = this.outstanding;
    if (o === null) throw new RaftError('READY_OUTSTANDING', 'advance() without a Ready');
    this.outstanding = null;
    const raft = this.raft;
    if (o.snapshotIndex > 0) {
      raft.log.stableSnapshotTo(o.snapshotIndex);
      raft.log.appliedTo(o.snapshotIndex);
    }
    if (o.lastEntry !== null) raft.log.stableTo(o.lastEntry.index, o.lastEntry.term);
    raft.selfPersisted(raft.durableLastIndex());
    if (o.hardState !== null) raft.selfVotePersisted(o.hardState);
    if (o.lastCommitted > 0) {
      const last = o.lastCommitted;
      assert(last > raft.log.applied || o.snapshotIndex >= last, 'apply went back');
      raft.log.appliedTo(last);
      for (const batch of o.committed) raft.reduceUncommittedBytes(batch);
      raft.maybeAutoLeave();
    }
  }

  /** The index of the last entry in this node's log (cheap, unlike `status()`). */
  get lastIndex(): number {
    return this.raft.log.lastIndex();
  }

  status(): Status {
    const raft = this.raft;
    let progress: Map<NodeId, ProgressStatus> | null = null;
    if (raft.role === Role.Leader) {
      progress = new Map();
      for (const [id, pr] of raft.trk.progress) {
        progress.set(id, {
          match: pr.match,
          next: pr.next,
          state: STATE_NAMES[pr.state as ProgressState],
          isLearner: pr.isLearner,
        });
      }
    }
    return {
      id: raft.id,
      term: raft.term,
      vote: raft.vote,
      commit: raft.log.committed,
      applied: raft.log.applied,
      lead: raft.lead,
      role: raft.role,
      lastIndex: raft.log.lastIndex(),
      leadTransferee: raft.leadTransferee,
      config: configToConfState(raft.trk.config),
      progress,
    };
  }
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function refusal(code: RaftErrorCode, what: string): RaftError {
  const explanations: Partial<Record<RaftErrorCode, string>> = {
    NO_LEADER: 'no leader is known; retry after an election',
    NOT_LEADER: 'this member is not the leader',
    UNCOMMITTED_LIMIT: 'too many uncommitted entry bytes on the leader; retry later',
    TRANSFERRING: 'leadership is being transferred; retry shortly',
    CONF_CHANGE_PENDING: 'a previous membership change is not applied yet',
    BAD_CONF_CHANGE: 'the membership change is invalid in the current configuration',
    READ_QUEUE_FULL: 'too many reads are waiting; retry later',
  };
  return new RaftError(code, `${what} refused: ${explanations[code] ?? code}`);
}
