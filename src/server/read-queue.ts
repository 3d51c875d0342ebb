/**
 * Linearizable reads through ReadIndex, batched: every read that arrives in one event-loop turn
 * joins one round (one raft ReadIndex request, confirmed by one heartbeat round on the leader).
 * A round's reads are released once the local state machine has applied the round's index, and
 * then read the local MVCC store. Rounds in flight are bounded; reads past that wait for the next.
 */
import { randomInt } from 'node:crypto';
import { type EtcdError, etcdErrors } from './etcd/errors.js';

/** ReadIndex rounds outstanding at once; further reads join the next round. */
export const READ_ROUNDS_MAX = 64;
/** Reads waiting to join a round; beyond it reads fail with etcd's "too many requests". */
export const READS_PENDING_MAX = 100_000;

interface Waiter {
  resolve(): void;
  reject(error: EtcdError): void;
}

interface Round {
  key: string;
  waiters: Waiter[];
  timer: NodeJS.Timeout;
  index: number;
}

export interface ReadQueueOptions {
  memberId: number;
  /** Issues the raft ReadIndex request; throws when raft refuses it. */
  readIndex(context: Uint8Array): void;
  appliedIndex(): number;
  timeoutMs: number;
  /** Maps a raft refusal to the error clients see. */
  mapError(error: unknown): EtcdError;
}

export class ReadQueue {
  private pending: Waiter[] = [];
  private readonly rounds = new Map<string, Round>();
  /** Rounds confirmed by raft, waiting for apply to reach their index. */
  private confirmed: Round[] = [];
  private sequence = 0;
  private readonly incarnation = randomInt(1, 2 ** 47);
  private flushScheduled = false;

  constructor(private readonly options: ReadQueueOptions) {}

  /** Resolves when a linearizable read may be served from local state. */
  wait(): Promise<void> {
    if (this.pending.length >= READS_PENDING_MAX)
      return Promise.reject(etcdErrors.tooManyRequests());
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.schedule();
    });
  }

  /**
   * With no round in flight the round starts once the current callback's microtasks are done (a
   * socket read's worth of requests joins it); with rounds in flight reads gather for a whole
   * event-loop turn, so under load many reads share one heartbeat round.
   */
  private schedule(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    if (this.rounds.size === 0) queueMicrotask(this.flushBound);
    else setImmediate(this.flushBound);
  }

  private readonly flushBound = (): void => this.flush();

  private flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0 || this.rounds.size >= READ_ROUNDS_MAX) return;
    const waiters = this.pending;
    this.pending = [];
    // The leader keys pending reads by context, so it must be unique cluster-wide: this member's
    // id, a random per-process prefix (restarts) and a sequence number.
    const context = Buffer.alloc(24);
    context.writeDoubleBE(this.options.memberId, 0);
    context.writeDoubleBE(this.incarnation, 8);
    context.writeDoubleBE(++this.sequence, 16);
    const key = context.toString('hex');
    try {
      this.options.readIndex(context);
    } catch (error) {
      const mapped = this.options.mapError(error);
      for (const waiter of waiters) waiter.reject(mapped);
      return;
    }
    const timer = setTimeout(() => this.expire(key), this.options.timeoutMs);
    this.rounds.set(key, { key, waiters, timer, index: 0 });
  }

  private expire(key: string): void {
    const round = this.rounds.get(key);
    if (round === undefined) return;
    this.rounds.delete(key);
    this.confirmed = this.confirmed.filter((r) => r !== round);
    for (const waiter of round.waiters) waiter.reject(etcdErrors.timeout());
    this.schedule();
  }

  /** Raft confirmed reads: release them once applied (now, or in `onApplied`). */
  onReadStates(states: readonly { index: number; requestCtx: Uint8Array }[]): void {
    const applied = this.options.appliedIndex();
    for (const state of states) {
      const key = Buffer.from(state.requestCtx).toString('hex');
      const round = this.rounds.get(key);
      if (round === undefined) continue;
      round.index = state.index;
      if (state.index <= applied) this.release(key, round);
      else this.confirmed.push(round);
    }
  }

  onApplied(applied: number): void {
    if (this.confirmed.length === 0) return;
    const still: Round[] = [];
    for (const round of this.confirmed) {
      if (round.index <= applied) this.release(round.key, round);
      else still.push(round);
    }
    this.confirmed = still;
  }

  private release(key: string, round: Round): void {
    clearTimeout(round.timer);
    this.rounds.delete(key);
    for (const waiter of round.waiters) waiter.resolve();
    if (this.pending.length > 0) this.schedule();
  }

  /** Fails every read (the member is stopping). */
  close(error: EtcdError): void {
    for (const round of this.rounds.values()) {
      clearTimeout(round.timer);
      for (const waiter of round.waiters) waiter.reject(error);
    }
    this.rounds.clear();
    this.confirmed = [];
    for (const waiter of this.pending) waiter.reject(error);
    this.pending = [];
  }
}
