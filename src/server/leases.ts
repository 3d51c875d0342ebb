/**
 * Lease expiry in a cluster. Grants, revokes and renewals are raft entries; expiry is decided by
 * the leader alone and applied through raft (a revoke proposal), as etcd's lessor does. What
 * shoal adds is that every member knows each lease's deadline to within a fraction of a second,
 * so a leader change neither expires a lease early nor keeps it alive long after its TTL:
 *
 * - Renewals are replicated. A keep-alive renews the leader's in-memory deadline at once, and the
 *   leader batches renewed lease ids (flushed every LEASE_RENEWAL_FLUSH_MS, at most
 *   LEASE_RENEWALS_PER_PROPOSAL_MAX per proposal) into one lease checkpoint proposal whose
 *   remainingTtl is what each lease has left (its TTL, rounded up to whole seconds). The keep-alive
 *   is answered only once that proposal is applied, so an acknowledged renewal is on a majority
 *   and survives the leader's death. When it is applied the leader restarts the lease's clock
 *   once more, so the TTL counts from (just before) the answer the client sees.
 * - Every member records a local deadline when it applies an entry, counted from the moment the
 *   entry reached its log (append-times.ts; apply time when that is no longer known): a grant
 *   starts the clock then, a checkpoint sets it to then + remainingTtl. An entry reaches a log
 *   after the leader proposed it, which is after the keep-alive arrived, and remainingTtl is
 *   rounded up, so every member's deadline is at least keep-alive + TTL ("not before" holds on
 *   whichever member leads next); it lags by at most one flush period plus one network hop.
 *   Counting from apply instead would let a renewal that a follower learns is committed only
 *   after the next election (the leader died right after answering) last the election's length
 *   beyond its TTL. The leader ignores checkpoints of its own term: its in-memory deadlines are
 *   already set as above.
 * - A new leader sets each lease's deadline to max(its recorded deadline, promotion time + one
 *   election timeout): clients get time to find it, and a leader change never expires everything
 *   at once, yet a lease whose keep-alives stopped still goes within about TTL + 1 s.
 * - The leader checks deadlines every LEASE_CHECK_INTERVAL_MS (100 ms) and proposes revokes (at
 *   most LEASE_REVOKES_PER_CHECK_MAX per check), so expiry lands well inside a second.
 * - Checkpoints are persisted by the store (etcd's lease checkpoints): renewals record the full
 *   TTL, and every checkpoint interval the leader also records what each long lease has left (at
 *   most LEASE_CHECKPOINTS_PER_PROPOSAL_MAX per proposal). A member that starts takes each lease's
 *   deadline as start time + its checkpointed remaining TTL (or full TTL), so long leases survive
 *   a restart of every member without getting their whole TTL back.
 *
 * Monotonic clocks of different members are never compared: each member only measures its own
 * intervals. Time is injected (`nowMs`), and the periodic work (`check`, `flushRenewals`,
 * `checkpointAll`) is public so unit tests can drive it with a fake clock.
 */
import { randomBytes } from 'node:crypto';
import type { LeaseInfo } from '../kv/mvcc.js';
import type { KvRequest } from '../kv/types.js';
import { etcdErrors } from './etcd/errors.js';

/** How often the leader looks for expired leases. */
export const LEASE_CHECK_INTERVAL_MS = 100;
export const LEASE_REVOKES_PER_CHECK_MAX = 500;
/** etcd's default lease checkpoint interval (5 minutes). */
export const LEASE_CHECKPOINT_INTERVAL_MS_DEFAULT = 5 * 60 * 1000;
/** Checkpoints per proposal; further leases wait for the next interval (matches the kv limit). */
export const LEASE_CHECKPOINTS_PER_PROPOSAL_MAX = 1000;
/** How long renewed lease ids gather on the leader before one proposal replicates them. */
export const LEASE_RENEWAL_FLUSH_MS = 200;
/** Renewals one proposal carries (the kv command's checkpoint limit). */
export const LEASE_RENEWALS_PER_PROPOSAL_MAX = 1000;
/**
 * Renewal batches waiting or in flight at once (up to 64,000 distinct leases renewed within
 * about one flush period). A keep-alive beyond it is refused with "too many requests" and the
 * client retries; its lease keeps the deadline of its last replicated renewal.
 */
export const LEASE_RENEWAL_BATCHES_MAX = 64;

/** The part of the MVCC store the keeper reads. */
export interface LeaseStore {
  lease(id: bigint): LeaseInfo | undefined;
  leaseIds(): bigint[];
}

export interface LeaseKeeperOptions {
  /** Grace every lease gets when a member becomes leader (the election timeout). */
  promotionGraceMs: number;
  checkpointIntervalMs?: number;
  /** Proposes a lease checkpoint command; resolves once it is applied on this member. */
  checkpoint: (checkpoints: { ID: bigint; remainingTtl: number }[]) => Promise<unknown>;
  /** Proposes a lease revoke. */
  revoke: (id: bigint) => Promise<unknown>;
  /** Called for every renewal proposal (a metric: the cost of replicated renewals). */
  onRenewalProposal?: () => void;
  /** Monotonic milliseconds (performance.now by default; tests inject a fake clock). */
  nowMs?: () => number;
}

export interface LeaseTimes {
  ttlSeconds: number;
  grantedTtlSeconds: number;
}

/** Renewals waiting for one proposal; every keep-alive in it is answered when it is applied. */
interface RenewalBatch {
  readonly ids: Set<bigint>;
  readonly done: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

function newBatch(): RenewalBatch {
  let resolve = () => {};
  let reject: (error: unknown) => void = () => {};
  const done = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Nobody may be waiting when a batch fails (its keep-alives were all answered elsewhere).
  done.catch(() => {});
  return { ids: new Set(), done, resolve, reject };
}

export class LeaseKeeper {
  /**
   * Each lease's local deadline (this member's monotonic ms). On the leader these decide expiry;
   * on a follower they are what it starts from if it becomes leader.
   */
  private readonly deadlinesMs = new Map<bigint, number>();
  private readonly revoking = new Set<bigint>();
  /** Batches not yet proposed, the last one open; invariant: all but the last are full. */
  private readonly waitingBatches: RenewalBatch[] = [];
  /** The waiting batch each lease renewed since the last flush is in (one per lease). */
  private readonly waitingLeases = new Map<bigint, RenewalBatch>();
  private inflightBatches = 0;
  private timer: NodeJS.Timeout | null = null;
  private renewalTimer: NodeJS.Timeout | null = null;
  private checkpointTimer: NodeJS.Timeout | null = null;
  private leading = false;
  /** The raft term this member leads in (0 when following). */
  private leadingTerm = 0;
  private checkpointing = false;
  private readonly checkpointIntervalMs: number;
  private readonly nowMs: () => number;
  /** Renewal proposals made (for the cost figure in metrics and tests). */
  renewalProposals = 0;

  constructor(
    private readonly store: LeaseStore,
    private readonly options: LeaseKeeperOptions,
  ) {
    this.checkpointIntervalMs =
      options.checkpointIntervalMs ?? LEASE_CHECKPOINT_INTERVAL_MS_DEFAULT;
    this.nowMs = options.nowMs ?? (() => performance.now());
    this.reload();
  }

  start(): void {
    this.timer = setInterval(() => this.check(), LEASE_CHECK_INTERVAL_MS);
    this.timer.unref();
    this.renewalTimer = setInterval(() => this.flushRenewals(), LEASE_RENEWAL_FLUSH_MS);
    this.renewalTimer.unref();
    this.checkpointTimer = setInterval(() => this.checkpointAll(), this.checkpointIntervalMs);
    this.checkpointTimer.unref();
  }

  stop(): void {
    for (const timer of [this.timer, this.renewalTimer, this.checkpointTimer]) {
      if (timer !== null) clearInterval(timer);
    }
    this.timer = null;
    this.renewalTimer = null;
    this.checkpointTimer = null;
    this.failWaiting(etcdErrors.stopped());
  }

  /**
   * Takes deadlines from the store for leases this member does not track (now plus the
   * checkpointed remaining TTL, or the full TTL) and forgets leases the store no longer has.
   * Runs at start, at promotion, and (with `reset`, for every lease) after a snapshot replaced
   * the store: deadlines recorded before it may predate renewals the snapshot holds.
   */
  reload(reset = false): void {
    if (reset) this.deadlinesMs.clear();
    const now = this.nowMs();
    const ids = new Set(this.store.leaseIds());
    for (const id of this.deadlinesMs.keys()) if (!ids.has(id)) this.deadlinesMs.delete(id);
    for (const id of ids) {
      if (this.deadlinesMs.has(id)) continue;
      const lease = this.store.lease(id);
      if (lease === undefined) continue;
      const seconds = lease.remainingTtlSeconds ?? lease.ttlSeconds;
      this.deadlinesMs.set(id, now + seconds * 1000);
    }
  }

  /**
   * Leadership changed. A new leader gives every lease at least one election timeout from now;
   * a member that stops leading keeps its deadlines (they stay at least as late as the leader's)
   * and fails the keep-alives still waiting for their renewal to commit.
   */
  setLeading(leading: boolean, term: number): void {
    if (leading === this.leading && (!leading || term === this.leadingTerm)) return;
    this.leading = leading;
    this.leadingTerm = leading ? term : 0;
    if (!leading) {
      this.failWaiting(etcdErrors.notLeader());
      return;
    }
    this.reload();
    const floor = this.nowMs() + this.options.promotionGraceMs;
    for (const [id, deadline] of this.deadlinesMs) {
      if (deadline < floor) this.deadlinesMs.set(id, floor);
    }
  }

  /**
   * A lease command was applied on this member from a raft entry of `term` that reached its log
   * at `sinceMs` (its apply time when unknown): grants start the clock, revokes stop it,
   * checkpoints set it to sinceMs + remaining TTL.
   */
  applied(request: KvRequest, term: number, sinceMs: number = this.nowMs()): void {
    const now = Math.min(sinceMs, this.nowMs());
    if ('leaseGrant' in request) {
      const lease = this.store.lease(request.leaseGrant.ID);
      if (lease !== undefined) this.deadlinesMs.set(lease.id, now + lease.ttlSeconds * 1000);
      return;
    }
    if ('leaseRevoke' in request) {
      this.deadlinesMs.delete(request.leaseRevoke.ID);
      return;
    }
    if (!('leaseCheckpoint' in request)) return;
    // The leader's own renewals and checkpoints: its in-memory deadlines are already exact.
    if (this.leading && term === this.leadingTerm) return;
    for (const { ID, remainingTtl } of request.leaseCheckpoint.checkpoints) {
      const lease = this.store.lease(ID);
      if (lease === undefined) continue;
      // remainingTtl 0 is an older shoal's "checkpoint cleared by a keep-alive": a full TTL.
      const deadline = now + (remainingTtl > 0 ? remainingTtl : lease.ttlSeconds) * 1000;
      const recorded = this.deadlinesMs.get(ID);
      // A leader applying an earlier leader's entry never shortens its promotion grace.
      const keep = this.leading && recorded !== undefined && recorded > deadline;
      if (!keep) this.deadlinesMs.set(ID, deadline);
    }
  }

  /**
   * The leader renews a lease; resolves with its TTL once the renewal is applied through raft,
   * or 0 when the lease does not exist. Rejects when this member stops leading first.
   */
  keepAlive(id: bigint): Promise<number> {
    const lease = this.store.lease(id);
    if (lease === undefined || !this.leading) return Promise.resolve(0);
    const batch = this.waitingLeases.get(id) ?? this.openBatch();
    if (batch === undefined) return Promise.reject(etcdErrors.tooManyRequests());
    this.deadlinesMs.set(id, this.nowMs() + lease.ttlSeconds * 1000);
    batch.ids.add(id);
    this.waitingLeases.set(id, batch);
    return batch.done.then(() => lease.ttlSeconds);
  }

  /** The batch a newly renewed lease joins; undefined at LEASE_RENEWAL_BATCHES_MAX. */
  private openBatch(): RenewalBatch | undefined {
    const last = this.waitingBatches[this.waitingBatches.length - 1];
    if (last !== undefined && last.ids.size < LEASE_RENEWALS_PER_PROPOSAL_MAX) return last;
    if (this.waitingBatches.length + this.inflightBatches >= LEASE_RENEWAL_BATCHES_MAX) {
      return undefined;
    }
    const batch = newBatch();
    this.waitingBatches.push(batch);
    return batch;
  }

  /** Proposes every waiting renewal batch (each becomes one checkpoint proposal). */
  flushRenewals(): void {
    if (!this.leading) return;
    const now = this.nowMs();
    this.waitingLeases.clear();
    for (const batch of this.waitingBatches.splice(0)) {
      const checkpoints: { ID: bigint; remainingTtl: number }[] = [];
      for (const id of batch.ids) {
        const deadline = this.deadlinesMs.get(id);
        // Rounding up keeps every member's deadline at or after the leader's.
        const remainingTtl = deadline === undefined ? 0 : Math.ceil((deadline - now) / 1000);
        if (remainingTtl > 0) checkpoints.push({ ID: id, remainingTtl });
      }
      if (checkpoints.length === 0) {
        batch.resolve();
        continue;
      }
      this.inflightBatches++;
      this.renewalProposals++;
      this.options.onRenewalProposal?.();
      this.options
        .checkpoint(checkpoints)
        .then(
          () => {
            this.renewedAtApply(checkpoints);
            batch.resolve();
          },
          (error: unknown) => batch.reject(error),
        )
        .finally(() => {
          this.inflightBatches--;
        });
    }
  }

  /**
   * The leader's renewals are applied: their clocks restart now, just before the keep-alives are
   * answered, so a lease lasts its TTL from the answer its client sees (followers measure from
   * their own apply, which is no earlier than the commit either).
   */
  private renewedAtApply(checkpoints: readonly { ID: bigint }[]): void {
    if (!this.leading) return;
    const now = this.nowMs();
    for (const { ID } of checkpoints) {
      const lease = this.store.lease(ID);
      const recorded = this.deadlinesMs.get(ID);
      if (lease === undefined || recorded === undefined) continue;
      this.deadlinesMs.set(ID, Math.max(recorded, now + lease.ttlSeconds * 1000));
    }
  }

  private failWaiting(error: unknown): void {
    this.waitingLeases.clear();
    for (const batch of this.waitingBatches.splice(0)) batch.reject(error);
  }

  /** The leader's view of a lease's remaining time; ttlSeconds -1 when it does not exist. */
  timeToLive(id: bigint): LeaseTimes {
    const lease = this.store.lease(id);
    if (lease === undefined) return { ttlSeconds: -1, grantedTtlSeconds: 0 };
    const now = this.nowMs();
    const deadline =
      this.deadlinesMs.get(id) ?? now + (lease.remainingTtlSeconds ?? lease.ttlSeconds) * 1000;
    return {
      ttlSeconds: Math.max(0, Math.floor((deadline - now) / 1000)),
      grantedTtlSeconds: lease.ttlSeconds,
    };
  }

  /** This member's deadline for a lease (monotonic ms), for tests and diagnostics. */
  deadlineMs(id: bigint): number | undefined {
    return this.deadlinesMs.get(id);
  }

  /**
   * The leader proposes what each lease longer than the checkpoint interval has left (shorter
   * ones would expire before a checkpoint mattered, as etcd reasons). One proposal at a time.
   */
  checkpointAll(): void {
    if (!this.leading || this.checkpointing) return;
    const now = this.nowMs();
    const checkpoints: { ID: bigint; remainingTtl: number }[] = [];
    for (const [id, deadline] of this.deadlinesMs) {
      if (checkpoints.length >= LEASE_CHECKPOINTS_PER_PROPOSAL_MAX) break;
      const lease = this.store.lease(id);
      if (lease === undefined || lease.ttlSeconds * 1000 <= this.checkpointIntervalMs) continue;
      const remainingTtl = Math.ceil((deadline - now) / 1000);
      if (remainingTtl > 0) checkpoints.push({ ID: id, remainingTtl });
    }
    if (checkpoints.length === 0) return;
    this.checkpointing = true;
    this.options
      .checkpoint(checkpoints)
      .catch(() => {})
      .finally(() => {
        this.checkpointing = false;
      });
  }

  /** The leader proposes revokes for leases past their deadline. */
  check(): void {
    if (!this.leading) return;
    const now = this.nowMs();
    let started = 0;
    for (const [id, deadline] of this.deadlinesMs) {
      if (started >= LEASE_REVOKES_PER_CHECK_MAX) break;
      if (deadline > now || this.revoking.has(id)) continue;
      if (this.store.lease(id) === undefined) {
        this.deadlinesMs.delete(id);
        continue;
      }
      started++;
      this.revoking.add(id);
      this.options
        .revoke(id)
        .catch(() => {})
        .finally(() => this.revoking.delete(id));
    }
  }
}

/** A random positive 63-bit lease id (etcd's ids are positive int64 values). */
export function randomLeaseId(): bigint {
  for (;;) {
    const id = randomBytes(8).readBigUInt64BE(0) >> 1n;
    if (id !== 0n) return id;
  }
}
