/**
 * Proposals with a waiting caller: a command gets a request id, is proposed to raft (a follower's
 * raft forwards it to the leader as a `Prop` message: shoal uses raft's proposal forwarding rather
 * than an RPC to the leader), and the caller's promise resolves when this member applies the entry
 * with that id. Every member applies every entry, so the proposer learns the result locally.
 *
 * Limits: at most PROPOSALS_PENDING_MAX waiters (then etcd's "too many requests"); each waits at
 * most the request timeout (etcd's: 5 s + 2 election timeouts), then fails with etcd's "request
 * timed out" — "possibly due to previous leader failure" if the leader changed meanwhile. A
 * forwarded proposal that the old leader dropped is only detected by that timeout, as in etcd.
 * While no leader is known, requests wait up to LEADER_WAIT (bounded) and then fail "no leader".
 */
import { randomInt } from 'node:crypto';
import { RaftError } from '../raft/index.js';
import { type Command, encodeCommand, type RequestId } from './command.js';
import { type EtcdError, etcdErrors } from './etcd/errors.js';
import type { ApplyOutcome } from './state-machine.js';

export const PROPOSALS_PENDING_MAX = 100_000;
/** Callers waiting for a leader at once. */
export const LEADER_WAITERS_MAX = 100_000;
/**
 * How often waiters past their deadline are failed. One sweep for all of them, rather than a
 * timer per request: a timer set and cleared for every put was a few hundred bytes of garbage
 * and two timer-list updates on the leader's path, for a timeout of several seconds that may as
 * well fire this much late.
 */
export const TIMEOUT_SWEEP_MS = 100;

interface Waiter {
  resolve(outcome: ApplyOutcome): void;
  reject(error: EtcdError): void;
  /** performance.now() after which the request fails with a timeout. */
  deadline: number;
  leaderAtStart: number;
}

export interface ProposerOptions {
  memberId: number;
  requestTimeoutMs: number;
  leaderWaitMs: number;
  leader(): number;
  propose(data: Uint8Array): void;
  /** Called for every proposal that failed (refused by raft or timed out), for metrics. */
  onFailed?(): void;
  /** The clock deadlines are kept on (milliseconds); performance.now() unless a test sets one. */
  now?(): number;
}

export class Proposer {
  readonly incarnation = randomInt(1, 2 ** 47);
  private sequence = 0;
  /**
   * By request sequence, so in the order the requests started; every request has the same
   * timeout, so this is also the order of their deadlines.
   */
  private readonly waiters = new Map<number, Waiter>();
  private sweeper: NodeJS.Timeout | null = null;
  private leaderWaiters = new Set<() => void>();

  constructor(private readonly options: ProposerOptions) {}

  nextId(): RequestId {
    return {
      member: this.options.memberId,
      incarnation: this.incarnation,
      sequence: ++this.sequence,
    };
  }

  get pendingCount(): number {
    return this.waiters.size;
  }

  /** Resolves once a leader is known; fails with "no leader" after the bounded wait. */
  waitForLeader(): Promise<void> {
    if (this.options.leader() !== 0) return Promise.resolve();
    if (this.leaderWaiters.size >= LEADER_WAITERS_MAX)
      return Promise.reject(etcdErrors.tooManyRequests());
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.leaderWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(() => {
        this.leaderWaiters.delete(done);
        reject(etcdErrors.noLeader());
      }, this.options.leaderWaitMs);
      this.leaderWaiters.add(done);
    });
  }

  /** Called when raft reports a leader. */
  leaderChanged(lead: number): void {
    if (lead === 0) return;
    for (const done of [...this.leaderWaiters]) done();
  }

  /**
   * Proposes `command` (its id is assigned here) and resolves with its apply outcome. With a
   * leader known it proposes at once, within the caller's turn, so the proposals of one turn
   * share a Ready; otherwise once a leader is known.
   */
  propose(command: Omit<Command, 'id'>): Promise<ApplyOutcome> {
    if (this.options.leader() === 0)
      return this.waitForLeader().then(() => this.proposeNow(command));
    return this.proposeNow(command);
  }

  /** Never throws: a command that cannot be encoded fails its promise, as before a leader. */
  private proposeNow(command: Omit<Command, 'id'>): Promise<ApplyOutcome> {
    const id = this.nextId();
    let data: Uint8Array;
    try {
      data = encodeCommand({ ...command, id });
    } catch (error) {
      return Promise.reject(error);
    }
    return this.proposeWithId(id, data, this.submit);
  }

  private readonly submit = (data: Uint8Array) => this.options.propose(data);

  /** Registers a waiter for `id`, then runs `submit` (which proposes `data`). */
  proposeWithId(
    id: RequestId,
    data: Uint8Array,
    submit: (data: Uint8Array) => void,
  ): Promise<ApplyOutcome> {
    if (this.waiters.size >= PROPOSALS_PENDING_MAX)
      return Promise.reject(etcdErrors.tooManyRequests());
    if (!this.owns(id)) throw new Error(`request id ${id.sequence} is not this proposer's`);
    const key = id.sequence;
    const promise = new Promise<ApplyOutcome>((resolve, reject) => {
      const deadline = this.now() + this.options.requestTimeoutMs;
      this.waiters.set(key, { resolve, reject, deadline, leaderAtStart: this.options.leader() });
    });
    this.sweeper ??= setInterval(() => this.sweep(), TIMEOUT_SWEEP_MS).unref();
    try {
      submit(data);
    } catch (error) {
      this.waiters.delete(key);
      this.options.onFailed?.();
      return Promise.reject(raftRefusal(error));
    }
    return promise;
  }

  /** An entry proposed by this member was applied. */
  applied(id: RequestId, outcome: ApplyOutcome): void {
    if (!this.owns(id)) return;
    const waiter = this.waiters.get(id.sequence);
    if (waiter === undefined) return;
    this.waiters.delete(id.sequence);
    waiter.resolve(outcome);
  }

  /** Ids this proposer made (an entry proposed before a restart has another incarnation). */
  private owns(id: RequestId): boolean {
    return id.member === this.options.memberId && id.incarnation === this.incarnation;
  }

  private now(): number {
    return this.options.now?.() ?? performance.now();
  }

  /**
   * Fails the waiters past their deadline, the oldest first, stopping at the first still due.
   * Runs every TIMEOUT_SWEEP_MS while any request waits.
   */
  sweep(): void {
    const now = this.now();
    for (const [key, waiter] of this.waiters) {
      if (waiter.deadline > now) break;
      this.waiters.delete(key);
      const changed = this.options.leader() !== waiter.leaderAtStart;
      this.options.onFailed?.();
      waiter.reject(changed ? etcdErrors.timeoutDueToLeaderFail() : etcdErrors.timeout());
    }
    if (this.waiters.size === 0 && this.sweeper !== null) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }

  close(error: EtcdError): void {
    for (const waiter of this.waiters.values()) waiter.reject(error);
    this.waiters.clear();
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
  }
}

/** Maps a raft refusal to the etcd error a client sees. */
export function raftRefusal(error: unknown): EtcdError {
  if (error instanceof RaftError) {
    switch (error.code) {
      case 'NO_LEADER':
        return etcdErrors.noLeader();
      case 'NOT_LEADER':
        return etcdErrors.notLeader();
      case 'UNCOMMITTED_LIMIT':
      case 'READ_QUEUE_FULL':
        return etcdErrors.tooManyRequests();
      case 'TRANSFERRING':
        return etcdErrors.leaderChanged();
      default:
        return etcdErrors.timeout();
    }
  }
  throw error;
}
