/**
 * Lease expiry in a cluster. Grants and revokes are raft proposals like any write; time is kept by
 * the leader alone, in memory, as etcd's lessor does. Every checkpoint interval the leader proposes
 * the seconds each long lease has left (etcd's lease checkpoints, at most
 * LEASE_CHECKPOINTS_PER_PROPOSAL_MAX per proposal); a member that becomes leader, including after
 * a restart of the whole cluster, gives each lease its checkpointed remaining TTL (or its full TTL
 * when never checkpointed) plus one election timeout of grace, so clients have time to find the
 * new leader and keep their leases alive. A keep-alive clears the lease's checkpoint through raft,
 * so a restart right after it cannot shorten the renewed lease. Keep-alives renew a lease's deadline on the leader (a follower
 * forwards them over the peer transport), and every LEASE_CHECK_INTERVAL_MS the leader proposes
 * revokes for expired leases (at most LEASE_REVOKES_PER_CHECK_MAX per check). Leases granted
 * through another member are picked up by the leader's next check.
 */
import { randomBytes } from 'node:crypto';
import type { MvccStore } from '../kv/mvcc.js';

export const LEASE_CHECK_INTERVAL_MS = 500;
export const LEASE_REVOKES_PER_CHECK_MAX = 500;
/** etcd's default lease checkpoint interval (5 minutes). */
export const LEASE_CHECKPOINT_INTERVAL_MS_DEFAULT = 5 * 60 * 1000;
/** Checkpoints per proposal; further leases wait for the next interval (matches the kv limit). */
export const LEASE_CHECKPOINTS_PER_PROPOSAL_MAX = 1000;

/** Checkpoint-clearing proposals from keep-alives in flight at once; more are skipped. */
export const LEASE_CHECKPOINT_CLEARS_INFLIGHT_MAX = 1000;

export interface LeaseKeeperOptions {
  /** Grace added to every lease when a member becomes leader (the election timeout). */
  promotionGraceMs: number;
  checkpointIntervalMs?: number;
  /** Proposes a lease checkpoint command through raft. */
  checkpoint: (checkpoints: { ID: bigint; remainingTtl: number }[]) => Promise<unknown>;
}

export interface LeaseTimes {
  ttlSeconds: number;
  grantedTtlSeconds: number;
}

export class LeaseKeeper {
  private readonly deadlinesMs = new Map<bigint, number>();
  private readonly revoking = new Set<bigint>();
  private timer: NodeJS.Timeout | null = null;
  private checkpointTimer: NodeJS.Timeout | null = null;
  /** Leases whose checkpoint a keep-alive is clearing (one proposal per lease at a time). */
  private readonly clearing = new Set<bigint>();
  private leading = false;
  private checkpointing = false;
  private readonly checkpointIntervalMs: number;

  constructor(
    private readonly kv: MvccStore,
    private readonly revoke: (id: bigint) => Promise<unknown>,
    private readonly options: LeaseKeeperOptions,
  ) {
    this.checkpointIntervalMs =
      options.checkpointIntervalMs ?? LEASE_CHECKPOINT_INTERVAL_MS_DEFAULT;
  }

  start(): void {
    this.timer = setInterval(() => this.check(), LEASE_CHECK_INTERVAL_MS);
    this.timer.unref();
    this.checkpointTimer = setInterval(() => this.checkpointAll(), this.checkpointIntervalMs);
    this.checkpointTimer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    if (this.checkpointTimer !== null) clearInterval(this.checkpointTimer);
    this.timer = null;
    this.checkpointTimer = null;
  }

  /** Leadership changed: a new leader restarts every lease's clock; a follower keeps none. */
  setLeading(leading: boolean): void {
    if (leading === this.leading) return;
    this.leading = leading;
    this.deadlinesMs.clear();
    if (leading) this.adoptNewLeases(performance.now(), this.options.promotionGraceMs);
  }

  /** The leader renews a lease; 0 when it does not exist. */
  keepAlive(id: bigint): number {
    const lease = this.kv.lease(id);
    if (lease === undefined || !this.leading) return 0;
    this.deadlinesMs.set(id, performance.now() + lease.ttlSeconds * 1000);
    if (
      lease.remainingTtlSeconds !== undefined &&
      !this.clearing.has(id) &&
      this.clearing.size < LEASE_CHECKPOINT_CLEARS_INFLIGHT_MAX
    ) {
      // Best effort: if it fails or is skipped at the limit, the next periodic checkpoint
      // overwrites the stale value anyway.
      this.clearing.add(id);
      this.options
        .checkpoint([{ ID: id, remainingTtl: 0 }])
        .catch(() => {})
        .finally(() => this.clearing.delete(id));
    }
    return lease.ttlSeconds;
  }

  /** The leader's view of a lease's remaining time; ttlSeconds -1 when it does not exist. */
  timeToLive(id: bigint): LeaseTimes {
    const lease = this.kv.lease(id);
    if (lease === undefined) return { ttlSeconds: -1, grantedTtlSeconds: 0 };
    const now = performance.now();
    const deadline =
      this.deadlinesMs.get(id) ?? now + (lease.remainingTtlSeconds ?? lease.ttlSeconds) * 1000;
    return {
      ttlSeconds: Math.max(0, Math.floor((deadline - now) / 1000)),
      grantedTtlSeconds: lease.ttlSeconds,
    };
  }

  /** Called on the leader after it granted a lease, so its clock starts now. */
  granted(id: bigint, ttlSeconds: number): void {
    if (this.leading) this.deadlinesMs.set(id, performance.now() + ttlSeconds * 1000);
  }

  /** Starts the clock of leases this leader does not track yet, from their checkpoint if any. */
  private adoptNewLeases(now: number, graceMs = 0): void {
    for (const id of this.kv.leaseIds()) {
      if (this.deadlinesMs.has(id)) continue;
      const lease = this.kv.lease(id);
      if (lease === undefined) continue;
      const seconds = lease.remainingTtlSeconds ?? lease.ttlSeconds;
      this.deadlinesMs.set(id, now + seconds * 1000 + graceMs);
    }
  }

  /**
   * The leader proposes what each lease longer than the checkpoint interval has left (shorter
   * ones would expire before a checkpoint mattered, as etcd reasons). One proposal at a time.
   */
  private checkpointAll(): void {
    if (!this.leading || this.checkpointing) return;
    const now = performance.now();
    const checkpoints: { ID: bigint; remainingTtl: number }[] = [];
    for (const [id, deadline] of this.deadlinesMs) {
      if (checkpoints.length >= LEASE_CHECKPOINTS_PER_PROPOSAL_MAX) break;
      const lease = this.kv.lease(id);
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

  private check(): void {
    if (!this.leading) return;
    const now = performance.now();
    this.adoptNewLeases(now);
    let started = 0;
    for (const [id, deadline] of this.deadlinesMs) {
      if (started >= LEASE_REVOKES_PER_CHECK_MAX) break;
      if (deadline > now || this.revoking.has(id)) continue;
      if (this.kv.lease(id) === undefined) {
        this.deadlinesMs.delete(id);
        continue;
      }
      started++;
      this.revoking.add(id);
      this.revoke(id)
        .then(() => this.deadlinesMs.delete(id))
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
