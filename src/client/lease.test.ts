/**
 * Lease's keep-alive loop against scripted keep-alive answers: it renews at about a third of the
 * TTL, signals loss (event and promise, once) when the cluster says the lease is gone or when no
 * renewal succeeds before the TTL runs out (calls failing or hanging), and close/revoke stop it.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import type { ShoalError } from './errors.js';
import { Lease, type LeaseCalls } from './lease.js';
import type { LeaseKeepAliveResponse } from './protocol.js';

const header = { clusterId: 1n, memberId: 1n, revision: 1, raftTerm: 1n };
/** Bound on every wait in this file: far above a 1 s TTL, so only a broken loop hits it. */
const waitMs = 10_000;

function scripted(answer: (call: number) => Promise<LeaseKeepAliveResponse>) {
  const log = { keepAlives: 0, revokes: 0 };
  const calls: LeaseCalls = {
    leaseKeepAlive: (id) => answer(log.keepAlives++).then((r) => ({ ...r, id })),
    leaseRevoke: async () => {
      log.revokes++;
      return { header };
    },
    leaseTimeToLive: async (id) => ({ header, id, ttlSeconds: 1, grantedTtlSeconds: 1, keys: [] }),
  };
  return { calls, log };
}

const alive = (ttlSeconds: number) => async () => ({ header, id: 0n, ttlSeconds });

function bounded<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), waitMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

describe('Lease keep-alive loop', () => {
  it('renews repeatedly while the cluster answers', async () => {
    const { calls, log } = scripted(alive(1));
    const lease = new Lease(calls, 0x1fn, 1, performance.now(), () => {});
    assert.equal(lease.idHex, '1f');
    for (let i = 0; i < 4; i++) await bounded(once(lease, 'keepalive'), 'a keep-alive');
    assert.equal(lease.state, 'alive');
    assert.ok(lease.keepAlives >= 4 && log.keepAlives >= 4);
    lease.close();
    assert.equal(lease.state, 'closed');
  });

  it('is lost with NOT_FOUND when the cluster says the lease is gone', async () => {
    const { calls } = scripted(alive(0));
    const lease = new Lease(calls, 2n, 1, performance.now(), () => {});
    const events: ShoalError[] = [];
    lease.on('lost', (error) => events.push(error));
    const error = await bounded(lease.lost, 'the loss');
    assert.equal(error.code, 'NOT_FOUND');
    assert.equal(lease.state, 'lost');
    assert.deepEqual(events, [error]);
    await assert.rejects(lease.revoke(), { code: 'FAILED_PRECONDITION' });
  });

  it('is lost with DEADLINE_EXCEEDED when renewals fail until the TTL runs out', async () => {
    const { calls, log } = scripted(async () => {
      throw new Error('member unreachable');
    });
    const lease = new Lease(calls, 3n, 1, performance.now(), () => {});
    const error = await bounded(lease.lost, 'the loss');
    assert.equal(error.code, 'DEADLINE_EXCEEDED');
    assert.ok(log.keepAlives >= 2, 'it retried after the first failure');
    assert.equal(lease.keepAlives, 0);
  });

  it('is lost at the TTL even while a renewal hangs', async () => {
    const { calls } = scripted(() => new Promise(() => {}));
    let stopped = 0;
    const lease = new Lease(calls, 4n, 1, performance.now(), () => stopped++);
    const error = await bounded(lease.lost, 'the loss');
    assert.equal(error.code, 'DEADLINE_EXCEEDED');
    assert.equal(stopped, 1);
  });

  it('stops renewing once revoked', async () => {
    const { calls, log } = scripted(alive(1));
    const lease = new Lease(calls, 5n, 1, performance.now(), () => {});
    await bounded(once(lease, 'keepalive'), 'a keep-alive');
    await lease.revoke();
    assert.equal(lease.state, 'revoked');
    assert.equal(log.revokes, 1);
    const renewals = log.keepAlives;
    // The timer was cleared: a timer set now for a full TTL fires with no renewal in between.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.equal(log.keepAlives, renewals);
  });
});
