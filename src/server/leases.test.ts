/**
 * LeaseKeeper with a fake clock and an in-memory lease table: replicated renewals, deadlines set
 * at apply time on followers, the new leader's max(recorded deadline, promotion + grace) rule,
 * and expiry decided only by the leader.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LeaseInfo } from '../kv/mvcc.js';
import {
  LEASE_RENEWAL_BATCHES_MAX,
  LEASE_RENEWALS_PER_PROPOSAL_MAX,
  LeaseKeeper,
  type LeaseStore,
} from './leases.js';

const graceMs = 1000;

class FakeStore implements LeaseStore {
  readonly leases = new Map<bigint, { ttlSeconds: number; remainingTtlSeconds?: number }>();
  lease(id: bigint): LeaseInfo | undefined {
    const lease = this.leases.get(id);
    return lease === undefined ? undefined : { id, ...lease, keys: [] };
  }
  leaseIds(): bigint[] {
    return [...this.leases.keys()];
  }
}

function harness(initial: [bigint, number][] = []) {
  const clock = { nowMs: 10_000 };
  const store = new FakeStore();
  for (const [id, ttlSeconds] of initial) store.leases.set(id, { ttlSeconds });
  const proposals: { ID: bigint; remainingTtl: number }[][] = [];
  const settle: ((ok: boolean) => void)[] = [];
  const revoked: bigint[] = [];
  const keeper = new LeaseKeeper(store, {
    promotionGraceMs: graceMs,
    checkpointIntervalMs: 60_000,
    nowMs: () => clock.nowMs,
    checkpoint: (checkpoints) => {
      proposals.push(checkpoints);
      return new Promise((resolve, reject) => {
        settle.push((ok) => (ok ? resolve(undefined) : reject(new Error('lost leadership'))));
      });
    },
    revoke: async (id) => {
      revoked.push(id);
    },
  });
  return { clock, store, keeper, proposals, settle, revoked };
}

/** Lets settled promises run their callbacks. */
async function drain(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

describe('LeaseKeeper', () => {
  it('answers a keep-alive only after its renewal is proposed and applied', async () => {
    const h = harness([[7n, 5]]);
    h.keeper.setLeading(true, 2);
    let answered: number | undefined;
    void h.keeper.keepAlive(7n).then((ttl) => {
      answered = ttl;
    });
    h.clock.nowMs += 150;
    await drain();
    assert.equal(answered, undefined, 'answered before the renewal was replicated');
    h.keeper.flushRenewals();
    // The leader renewed at 10,000 (deadline 15,000); at 10,150 that is 4.85 s, rounded up.
    assert.deepEqual(h.proposals, [[{ ID: 7n, remainingTtl: 5 }]]);
    await drain();
    assert.equal(answered, undefined);
    assert.equal(h.keeper.deadlineMs(7n), 15_000, 'the leader renews at once');
    h.clock.nowMs += 50;
    h.settle[0]!(true);
    await drain();
    assert.equal(answered, 5);
    assert.equal(h.keeper.deadlineMs(7n), 15_200, 'and again when the renewal is applied');
  });

  it('batches renewals: one proposal per flush, at most the per-proposal maximum in each', () => {
    const count = LEASE_RENEWALS_PER_PROPOSAL_MAX + 10;
    const h = harness(
      Array.from({ length: count }, (_, i) => [BigInt(i + 1), 5] as [bigint, number]),
    );
    h.keeper.setLeading(true, 1);
    for (let i = 1; i <= count; i++) void h.keeper.keepAlive(BigInt(i)).catch(() => {});
    // Renewing the same lease twice before a flush carries it once.
    void h.keeper.keepAlive(1n).catch(() => {});
    h.keeper.flushRenewals();
    assert.deepEqual(
      h.proposals.map((p) => p.length),
      [LEASE_RENEWALS_PER_PROPOSAL_MAX, 10],
    );
    h.keeper.flushRenewals();
    assert.equal(h.proposals.length, 2, 'an empty flush proposes nothing');
    assert.equal(h.keeper.renewalProposals, 2);
  });

  it('refuses keep-alives beyond the renewal batch limit', async () => {
    const count = LEASE_RENEWAL_BATCHES_MAX * LEASE_RENEWALS_PER_PROPOSAL_MAX + 1;
    const h = harness();
    for (let i = 1; i <= count; i++) h.store.leases.set(BigInt(i), { ttlSeconds: 5 });
    h.keeper.setLeading(true, 1);
    for (let i = 1; i < count; i++) void h.keeper.keepAlive(BigInt(i)).catch(() => {});
    await assert.rejects(h.keeper.keepAlive(BigInt(count)), /too many requests/);
  });

  it('fails waiting keep-alives when leadership is lost', async () => {
    const h = harness([[7n, 5]]);
    h.keeper.setLeading(true, 1);
    const waiting = h.keeper.keepAlive(7n);
    h.keeper.setLeading(false, 2);
    await assert.rejects(waiting, /not leader/);
    assert.equal(await h.keeper.keepAlive(7n), 0, 'a follower renews nothing');
  });

  it('on a follower sets deadlines at apply time: grants, checkpoints, revokes', () => {
    const h = harness();
    h.store.leases.set(3n, { ttlSeconds: 5 });
    h.keeper.applied({ leaseGrant: { ID: 3n, TTL: 5 } }, 1);
    assert.equal(h.keeper.deadlineMs(3n), 15_000);
    h.clock.nowMs = 12_000;
    h.keeper.applied({ leaseCheckpoint: { checkpoints: [{ ID: 3n, remainingTtl: 5 }] } }, 1);
    assert.equal(h.keeper.deadlineMs(3n), 17_000);
    // A periodic checkpoint may report less than the renewal did: the newer value wins.
    h.keeper.applied({ leaseCheckpoint: { checkpoints: [{ ID: 3n, remainingTtl: 2 }] } }, 1);
    assert.equal(h.keeper.deadlineMs(3n), 14_000);
    h.store.leases.delete(3n);
    h.keeper.applied({ leaseRevoke: { ID: 3n } }, 1);
    assert.equal(h.keeper.deadlineMs(3n), undefined);
  });

  it('counts from when the entry reached the log, not from its apply', () => {
    const h = harness([[3n, 5]]);
    h.clock.nowMs = 12_000;
    // Appended at 10,300, applied only now (its commit was learned after an election).
    h.keeper.applied(
      { leaseCheckpoint: { checkpoints: [{ ID: 3n, remainingTtl: 5 }] } },
      1,
      10_300,
    );
    assert.equal(h.keeper.deadlineMs(3n), 15_300);
    h.keeper.applied({ leaseGrant: { ID: 3n, TTL: 5 } }, 1, 11_000);
    assert.equal(h.keeper.deadlineMs(3n), 16_000);
  });

  it('a follower never expires anything', () => {
    const h = harness([[3n, 1]]);
    h.clock.nowMs += 60_000;
    h.keeper.check();
    assert.deepEqual(h.revoked, []);
  });

  it('a new leader keeps a recorded deadline later than its promotion grace', () => {
    const h = harness();
    h.store.leases.set(3n, { ttlSeconds: 5 });
    h.keeper.applied({ leaseCheckpoint: { checkpoints: [{ ID: 3n, remainingTtl: 5 }] } }, 1);
    // Keep-alives stop; the old leader dies; this member is elected 1.5 s later.
    h.clock.nowMs = 11_500;
    h.keeper.setLeading(true, 2);
    assert.equal(h.keeper.deadlineMs(3n), 15_000, 'max(15,000, 11,500 + 1,000)');
    h.clock.nowMs = 14_999;
    h.keeper.check();
    assert.deepEqual(h.revoked, [], 'expired before its TTL');
    h.clock.nowMs = 15_000;
    h.keeper.check();
    assert.deepEqual(h.revoked, [3n]);
  });

  it('a new leader gives every lease at least one election timeout', () => {
    const h = harness();
    for (const id of [1n, 2n, 3n]) {
      h.store.leases.set(id, { ttlSeconds: 5 });
      h.keeper.applied({ leaseGrant: { ID: id, TTL: 5 } }, 1);
    }
    // The cluster had no leader for a long time; every recorded deadline has passed.
    h.clock.nowMs = 40_000;
    h.keeper.setLeading(true, 2);
    h.clock.nowMs = 40_000 + graceMs - 1;
    h.keeper.check();
    assert.deepEqual(h.revoked, [], 'a leader change expired leases at once');
    // Leases kept alive during the grace survive it; the others go when it ends.
    void h.keeper.keepAlive(2n).catch(() => {});
    h.clock.nowMs = 40_000 + graceMs;
    h.keeper.check();
    assert.deepEqual(h.revoked.sort(), [1n, 3n]);
  });

  it('a leader ignores its own term checkpoints but not an earlier leader’s', () => {
    const h = harness([[3n, 5]]);
    h.keeper.setLeading(true, 4);
    void h.keeper.keepAlive(3n).catch(() => {});
    h.clock.nowMs = 10_400;
    h.keeper.applied({ leaseCheckpoint: { checkpoints: [{ ID: 3n, remainingTtl: 5 }] } }, 4);
    assert.equal(h.keeper.deadlineMs(3n), 15_000, 'its own renewal moved its exact deadline');
    // A renewal the previous leader committed but this one applies only now.
    h.keeper.applied({ leaseCheckpoint: { checkpoints: [{ ID: 3n, remainingTtl: 5 }] } }, 3);
    assert.equal(h.keeper.deadlineMs(3n), 15_400);
    h.keeper.applied({ leaseCheckpoint: { checkpoints: [{ ID: 3n, remainingTtl: 1 }] } }, 3);
    assert.equal(h.keeper.deadlineMs(3n), 15_400, 'an older entry shortened the lease');
  });

  it('starts from checkpointed remaining TTLs after a restart', () => {
    const h = harness();
    h.store.leases.set(1n, { ttlSeconds: 3600, remainingTtlSeconds: 600 });
    h.store.leases.set(2n, { ttlSeconds: 30 });
    h.keeper.reload();
    assert.equal(h.keeper.deadlineMs(1n), 10_000 + 600_000);
    assert.equal(h.keeper.deadlineMs(2n), 10_000 + 30_000);
    h.store.leases.delete(2n);
    h.keeper.reload();
    assert.equal(h.keeper.deadlineMs(2n), undefined, 'a lease gone from a restored store');
    // A snapshot carried a later renewal: a reset takes every deadline from the store again.
    h.clock.nowMs = 20_000;
    h.store.leases.set(1n, { ttlSeconds: 3600, remainingTtlSeconds: 3600 });
    h.keeper.reload();
    assert.equal(h.keeper.deadlineMs(1n), 10_000 + 600_000, 'kept without a reset');
    h.keeper.reload(true);
    assert.equal(h.keeper.deadlineMs(1n), 20_000 + 3_600_000);
  });

  it('checkpoints only leases longer than the checkpoint interval', () => {
    const h = harness([
      [1n, 3600],
      [2n, 5],
    ]);
    h.keeper.setLeading(true, 1);
    h.clock.nowMs += 100_000;
    h.keeper.checkpointAll();
    assert.deepEqual(h.proposals, [[{ ID: 1n, remainingTtl: 3500 }]]);
  });
});
