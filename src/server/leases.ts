/**
 * Lease expiry in a cluster. Grants and revokes are raft proposals like any write; time is kept by
 * the leader alone, in memory, as etcd's lessor does: when a member becomes leader it gives every
 * stored lease a full TTL again, keep-alives renew a lease's deadline on the leader (a follower
 * forwards them over the peer transport), and every LEASE_CHECK_INTERVAL_MS the leader proposes
 * revokes for expired leases (at most LEASE_REVOKES_PER_CHECK_MAX per check). Leases granted
 * through another member are picked up by the leader's next check.
 */
import { randomBytes } from 'node:crypto';
import type { MvccStore } from '../kv/mvcc.js';

export const LEASE_CHECK_INTERVAL_MS = 500;
export const LEASE_REVOKES_PER_CHECK_MAX = 500;

export interface LeaseTimes {
  ttlSeconds: number;
  grantedTtlSeconds: number;
}

export class LeaseKeeper {
  private readonly deadlinesMs = new Map<bigint, number>();
  private readonly revoking = new Set<bigint>();
  private timer: NodeJS.Timeout | null = null;
  private leading = false;

  constructor(
    private readonly kv: MvccStore,
    private readonly revoke: (id: bigint) => Promise<unknown>,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.check(), LEASE_CHECK_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Leadership changed: a new leader restarts every lease's clock; a follower keeps none. */
  setLeading(leading: boolean): void {
    if (leading === this.leading) return;
    this.leading = leading;
    this.deadlinesMs.clear();
    if (leading) this.adoptNewLeases(performance.now());
  }

  /** The leader renews a lease; 0 when it does not exist. */
  keepAlive(id: bigint): number {
    const lease = this.kv.lease(id);
    if (lease === undefined || !this.leading) return 0;
    this.deadlinesMs.set(id, performance.now() + lease.ttlSeconds * 1000);
    return lease.ttlSeconds;
  }

  /** The leader's view of a lease's remaining time; ttlSeconds -1 when it does not exist. */
  timeToLive(id: bigint): LeaseTimes {
    const lease = this.kv.lease(id);
    if (lease === undefined) return { ttlSeconds: -1, grantedTtlSeconds: 0 };
    const now = performance.now();
    const deadline = this.deadlinesMs.get(id) ?? now + lease.ttlSeconds * 1000;
    return {
      ttlSeconds: Math.max(0, Math.floor((deadline - now) / 1000)),
      grantedTtlSeconds: lease.ttlSeconds,
    };
  }

  /** Called on the leader after it granted a lease, so its clock starts now. */
  granted(id: bigint, ttlSeconds: number): void {
    if (this.leading) this.deadlinesMs.set(id, performance.now() + ttlSeconds * 1000);
  }

  private adoptNewLeases(now: number): void {
    for (const id of this.kv.leaseIds()) {
      if (this.deadlinesMs.has(id)) continue;
      const lease = this.kv.lease(id);
      if (lease !== undefined) this.deadlinesMs.set(id, now + lease.ttlSeconds * 1000);
    }
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
