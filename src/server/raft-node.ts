/**
 * The member's raft driver: owns the `RawNode`, ticks it, and handles each `Ready` exactly as the
 * numbered contract in src/raft/index.ts says:
 *
 *   1. send `messages` at once (the leader's appends go out while its own WAL write is in flight;
 *      appends that only carry a new commit index wait up to COMMIT_NOTICE_HOLD_MS for the next
 *      append to carry it instead, commit-notices.ts);
 *   2. install a received snapshot (WAL first, then the state machine);
 *   3. persist `entries` + `hardState` with one durable `save` (the WAL group-commits concurrent
 *      saves into one fdatasync), applying `committedEntries` meanwhile (they are already durable);
 *      a Ready whose `mustSync` is false (only the commit index changed) writes nothing: the WAL
 *      keeps that hard state and writes it with the next save;
 *   4. after the save is durable, send `messagesAfterPersist` (acks and votes);
 *   5. hand `readStates` to the read queue, then `advance()`.
 *
 * Only one Ready is outstanding at a time; everything that arrives while it is handled (proposals,
 * peer messages, reads) accumulates inside the core and comes out batched in the next Ready (group
 * commit: the batch grows with the load while each fsync is in flight). What needs no write does
 * not wait for that: once the Ready's apply is done and only its write is pending, the loop drains
 * the core (`RawNode.drain`) whenever something arrives, sending the leader's appends for new
 * proposals and applying entries that a follower's acknowledgement just committed, so a client is
 * answered as soon as its entry is committed and not one fsync later. An idle loop wakes on a
 * microtask, after the callback that queued work (a whole peer batch, a gRPC request) finishes:
 * waking a full event-loop turn later (setImmediate) measured about 0.5 ms slower per write at
 * one client, with no throughput gain at 64.
 */
import type { Logger } from 'pino';
import {
  type ConfChange,
  type Entry,
  type Message,
  MessageType,
  RawNode,
  type ReadState,
  type Ready,
  ROLE_NAMES,
  Role,
  type SoftState,
} from '../raft/index.js';
import type { DiskStorage } from '../storage/index.js';
import { AppendTimes } from './append-times.js';
import { CommitNotices } from './commit-notices.js';
import type { StateMachine } from './state-machine.js';
import { trace, tracing } from './trace.js';

/** Ticks of silence (in heartbeats) a leader's heartbeat covers; etcd uses 1. */
const HEARTBEAT_TICKS = 1;
/** Bytes of entries per append message and of committed entries per Ready. */
const MAX_SIZE_PER_MSG_BYTES = 1024 * 1024;
const MAX_COMMITTED_PER_READY_BYTES = 16 * 1024 * 1024;
/** The pipelining window: appends in flight to one follower. */
const MAX_INFLIGHT_MSGS = 256;
/** Uncommitted bytes on the leader before proposals are refused (backpressure). */
const MAX_UNCOMMITTED_BYTES = 64 * 1024 * 1024;
/**
 * How long an append that only tells a follower the new commit index waits for the next append to
 * carry it instead. Under load it almost never waits this long; when writes stop, followers apply
 * (and notify their watchers) this much later than the leader.
 */
export const COMMIT_NOTICE_HOLD_MS = 1;

export interface RaftNodeOptions {
  id: number;
  storage: DiskStorage;
  stateMachine: StateMachine;
  heartbeatIntervalMs: number;
  electionTimeoutMs: number;
  /**
   * Sends messages to peers: at once, or (`atEndOfTurn`) with the rest of the event-loop turn's
   * writes, after the replies to clients that this turn produced.
   */
  send(messages: readonly Message[], atEndOfTurn: boolean): void;
  logger: Logger;
  /** Called after every Ready, and every drained apply, with what it did (for metrics). */
  onReady?(info: ReadyInfo): void;
  onSoftState?(soft: SoftState, term: number): void;
  onReadStates?(states: readonly ReadState[]): void;
  onApplied?(index: number): void;
  /** A fatal error (storage I/O, invariant violation): the member must stop. */
  onFatal(error: unknown): void;
}

export interface ReadyInfo {
  entries: number;
  committed: number;
  persistMs: number;
  applyMs: number;
}

export class RaftNode {
  readonly node: RawNode;
  /** When recent entries reached this member's log (lease deadlines count from it). */
  readonly appendTimes = new AppendTimes();
  private ticker: NodeJS.Timeout | null = null;
  private wakeScheduled = false;
  private waiting: (() => void) | null = null;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private readonly commitNotices: CommitNotices;
  /** Set while the Ready being handled waits only for its write: new work is drained meanwhile. */
  private drainOpen = false;
  private drainScheduled = false;
  /** The apply of drained entries in progress (they apply one batch at a time, in order). */
  private drainApply: Promise<void> | null = null;
  private drainFailure: unknown;
  lead = 0;
  role: Role = Role.Follower;

  constructor(private readonly options: RaftNodeOptions) {
    const electionTick = Math.max(
      2,
      Math.round(options.electionTimeoutMs / options.heartbeatIntervalMs),
    );
    const raftLog = options.logger.child({ component: 'raft' });
    this.commitNotices = new CommitNotices(COMMIT_NOTICE_HOLD_MS, (messages) => {
      if (!this.stopped) options.send(messages, false);
    });
    this.node = new RawNode({
      id: options.id,
      storage: options.storage,
      electionTick,
      heartbeatTick: HEARTBEAT_TICKS,
      maxSizePerMsgBytes: MAX_SIZE_PER_MSG_BYTES,
      maxInflightMsgs: MAX_INFLIGHT_MSGS,
      maxUncommittedEntriesBytes: MAX_UNCOMMITTED_BYTES,
      maxCommittedSizePerReadyBytes: MAX_COMMITTED_PER_READY_BYTES,
      checkQuorum: true,
      preVote: true,
      readOnly: 'safe',
      random: Math.random,
      logger: {
        debug: (fields, message) => raftLog.debug(fields, message),
        info: (fields, message) => raftLog.info(fields, message),
        warn: (fields, message) => raftLog.warn(fields, message),
      },
    });
  }

  get term(): number {
    return this.node.raft.term;
  }

  start(): void {
    this.ticker = setInterval(() => {
      this.node.tick();
      this.wake();
    }, this.options.heartbeatIntervalMs);
    this.loop = this.run().catch((error: unknown) => {
      if (!this.stopped) this.options.onFatal(error);
    });
    this.wake();
  }

  /** Wakes an idle Ready loop once the current callback is done (batching the work it queued). */
  wake(): void {
    if (this.waiting === null) {
      // A Ready is being handled: once its write is all that is left, take new work early.
      if (this.drainOpen) this.scheduleDrain();
      return;
    }
    if (this.wakeScheduled) return;
    this.wakeScheduled = true;
    queueMicrotask(() => {
      this.wakeScheduled = false;
      const resume = this.waiting;
      this.waiting = null;
      resume?.();
    });
  }

  step(message: Message): void {
    if (this.stopped) return;
    try {
      if (tracing()) {
        if (message.type === MessageType.AppResp && !message.reject) {
          trace('ack', message.from, message.index);
        } else if (message.type === MessageType.App && message.entries.length > 0) {
          trace('recv', message.from, message.index + message.entries.length);
        }
      }
      this.node.step(message);
      // A follower forwarded proposals: it answers their clients once it learns they committed,
      // so the notice that tells it should not be held (commit-notices.ts).
      if (message.type === MessageType.Prop && this.role === Role.Leader) {
        this.commitNotices.awaited(message.from, this.node.lastIndex);
      }
    } catch (error) {
      this.options.logger.warn(
        { err: error, type: message.type, from: message.from },
        'peer message refused',
      );
      return;
    }
    this.wake();
  }

  /** Proposes a command; throws RaftError when refused (no leader, too much uncommitted, ...). */
  propose(data: Uint8Array): void {
    this.node.propose(data);
    if (tracing()) trace('prop', this.node.lastIndex);
    this.wake();
  }

  proposeConfChange(cc: ConfChange): void {
    this.node.proposeConfChange(cc);
    this.wake();
  }

  readIndex(context: Uint8Array): void {
    this.node.readIndex(context);
    this.wake();
  }

  transferLeader(to: number): void {
    this.node.transferLeader(to);
    this.wake();
  }

  reportUnreachable(id: number): void {
    this.node.reportUnreachable(id);
    this.wake();
  }

  reportSnapshot(id: number, status: 'finish' | 'failure'): void {
    this.node.reportSnapshot(id, status);
    this.wake();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      if (!this.node.hasReady()) {
        await new Promise<void>((resolve) => {
          this.waiting = resolve;
        });
        continue;
      }
      await this.handle(this.node.ready());
    }
  }

  private async handle(rd: Ready): Promise<void> {
    const o = this.options;
    if (rd.softState !== null) this.changeSoftState(rd.softState);
    if (rd.messages.length > 0) {
      this.sendReadyMessages(rd.messages);
      if (tracing()) trace('send', rd.messages.length, this.node.lastIndex);
    }
    if (rd.snapshot !== null) {
      await o.storage.applySnapshot(rd.snapshot);
      await o.stateMachine.install(rd.snapshot);
    }
    const started = performance.now();
    // A Ready that changes only the commit index needs no fsync (etcd's mustSync): the WAL keeps
    // its hard state and writes it with the next save. Nothing sent depends on a durable commit
    // index, and a restarted member learns the commit index again from the leader.
    const deferOnly = !rd.mustSync && rd.entries.length === 0 && rd.hardState !== null;
    if (deferOnly) o.storage.deferHardState(rd.hardState!);
    const first = rd.entries[0];
    const last = rd.entries[rd.entries.length - 1];
    if (first !== undefined && last !== undefined) {
      this.appendTimes.record(first.index, last.index, started);
    }
    const persist =
      !deferOnly && (rd.entries.length > 0 || rd.hardState !== null)
        ? Promise.resolve(o.storage.save(rd.hardState, rd.entries))
        : null;
    // Committed entries are already durable locally, so they are applied while the WAL writes.
    let applyMs = 0;
    if (rd.committedEntries.length > 0) {
      const applyStarted = performance.now();
      const firstCommitted = rd.committedEntries[0]!.index;
      const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1]!.index;
      trace('commit', firstCommitted, lastCommitted);
      await o.stateMachine.apply(rd.committedEntries);
      trace('applied', firstCommitted, lastCommitted);
      applyMs = performance.now() - applyStarted;
    }
    // Every save left is one raft requires durable before its messagesAfterPersist go out.
    if (persist !== null) {
      // Meanwhile, what needs no write goes at once (RawNode.drain): appends for new proposals,
      // and entries a follower's acknowledgement committed, so their clients are answered now
      // rather than after this write.
      this.drainOpen = true;
      try {
        this.drainNow();
        await persist;
      } finally {
        this.drainOpen = false;
        // Even when the write failed: the member stops only once no drained apply still runs.
        // applyDrained never rejects (it records the failure).
        if (this.drainApply !== null) await this.drainApply;
      }
      if (this.drainFailure !== undefined) throw this.drainFailure;
    }
    const persistMs = persist !== null ? performance.now() - started : 0;
    if (first !== undefined && last !== undefined) trace('persist', first.index, last.index);
    if (this.stopped) return;
    if (rd.messagesAfterPersist.length > 0) {
      o.send(rd.messagesAfterPersist, false);
      if (last !== undefined) trace('acksent', last.index);
    }
    this.node.advance();
    if (rd.committedEntries.length > 0) o.onApplied?.(o.stateMachine.appliedIndex);
    if (rd.readStates.length > 0) o.onReadStates?.(rd.readStates);
    o.onReady?.({
      entries: rd.entries.length,
      committed: rd.committedEntries.length,
      persistMs,
      applyMs,
    });
  }

  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    queueMicrotask(this.drainNow);
  }

  /** Takes and handles what `RawNode.drain` offers while the current Ready's write is in flight. */
  private readonly drainNow = (): void => {
    this.drainScheduled = false;
    // One drained apply at a time, in order; the next drain runs when it is done. After a
    // failure nothing more is drained: applying entries after the failed ones would leave a gap
    // in the store that a restart could not notice.
    const blocked = this.drainApply !== null || this.drainFailure !== undefined;
    if (!this.drainOpen || blocked || this.stopped) return;
    try {
      const drained = this.node.drain();
      if (drained === null) return;
      if (drained.messages.length > 0) {
        this.sendReadyMessages(drained.messages);
        if (tracing()) trace('dsend', drained.messages.length, this.node.lastIndex);
      }
      if (drained.committedEntries.length > 0) {
        this.drainApply = this.applyDrained(drained.committedEntries);
      }
      if (drained.readStates.length > 0) this.options.onReadStates?.(drained.readStates);
    } catch (error) {
      // Runs from a microtask too: the Ready being handled rethrows it, and the member stops.
      this.drainFailure ??= error;
    }
  };

  private async applyDrained(entries: readonly Entry[]): Promise<void> {
    const o = this.options;
    try {
      const started = performance.now();
      const firstDrained = entries[0]!.index;
      const lastDrained = entries[entries.length - 1]!.index;
      trace('commit', firstDrained, lastDrained);
      await o.stateMachine.apply(entries);
      trace('applied', firstDrained, lastDrained);
      const applyMs = performance.now() - started;
      o.onApplied?.(o.stateMachine.appliedIndex);
      o.onReady?.({ entries: 0, committed: entries.length, persistMs: 0, applyMs });
    } catch (error) {
      // The Ready being handled throws it before its advance(): the member stops.
      this.drainFailure ??= error;
    } finally {
      this.drainApply = null;
    }
    // drainNow itself refuses to drain after a failure.
    if (this.drainOpen) this.scheduleDrain();
  }

  /**
   * Appends with entries, heartbeats and votes go out at once: a follower's round trip is the
   * longer path to a commit. Appends without entries only tell a follower the new commit index;
   * they are held briefly, and usually the next append carries the commit index instead
   * (commit-notices.ts). Before the hold they went at the end of the turn, one socket write per
   * follower per commit: at one client that was half of the leader's raft messages.
   */
  private sendReadyMessages(messages: readonly Message[]): void {
    const now = this.commitNotices.route(messages);
    if (now.length > 0) this.options.send(now, false);
  }

  private changeSoftState(soft: SoftState): void {
    const before = this.lead;
    this.lead = soft.lead;
    this.role = soft.role;
    if (before !== soft.lead || soft.role === Role.Leader) {
      this.options.logger.info(
        { term: this.term, role: ROLE_NAMES[soft.role], leader: soft.lead },
        soft.lead === 0 ? 'no leader' : 'leader known',
      );
    }
    this.options.onSoftState?.(soft, this.term);
  }

  /** Stops ticking and the loop; the Ready being handled finishes its storage writes. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.ticker !== null) clearInterval(this.ticker);
    this.commitNotices.clear();
    const resume = this.waiting;
    this.waiting = null;
    resume?.();
    await this.loop;
  }
}
