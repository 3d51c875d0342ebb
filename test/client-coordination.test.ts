/**
 * Leases with automatic keep-alive, Mutex and Election (src/client) against a real 3-member shoal
 * cluster: a counter incremented by read/modify/write from several clients under the lock ends
 * exact (a control run without the lock loses updates); a holder whose lease is revoked or runs
 * out hands the lock to the next waiter; `etcdctl lock` queues behind our mutex and `etcdctl
 * elect` behind our leader on the same name (the key layout is etcd's); a second campaigner leads
 * only after the first resigns or its lease dies, and an observer sees the sequence of leaders; a
 * short lease outlives its TTL many times, also across the SIGKILL of the member it renews through.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { Election, type Lease, Mutex, ShoalClient } from '../src/client/index.js';
import { etcdInstalled } from './support/etcd-process.js';
import { type MemberProcess, ProcessCluster, waitFor } from './support/member-process.js';

const text = (bytes: Uint8Array | undefined) => Buffer.from(bytes ?? []).toString();
const nativeEndpoint = (member: MemberProcess) => `127.0.0.1:${member.spec.peerPort}`;

/** Tracks whether a promise has settled, so a test can assert it has not (yet). */
function track<T>(promise: Promise<T>): { promise: Promise<T>; settled: () => boolean } {
  let done = false;
  const tracked = promise.finally(() => {
    done = true;
  });
  tracked.catch(() => {});
  return { promise: tracked, settled: () => done };
}

describe('leases, mutex and election on a 3-member cluster', { timeout: 150_000 }, () => {
  let cluster: ProcessCluster;
  const clients: ShoalClient[] = [];
  /** A new client; `first` rotates the endpoint order so clients start on different members. */
  const newClient = (first = clients.length) => {
    const endpoints = cluster.members.map(nativeEndpoint);
    const rotated = [...endpoints.slice(first % 3), ...endpoints.slice(0, first % 3)];
    const client = new ShoalClient({ endpoints: rotated, timeoutMs: 3_000 });
    clients.push(client);
    return client;
  };
  /** Keys under `prefix/`, in create order. */
  const contenders = async (prefix: string) => {
    const response = await clients[0]!.range(`${prefix}/`, {
      prefix: true,
      sortTarget: 'create',
      sortOrder: 'ascend',
    });
    return response.kvs.map((kv) => text(kv.key));
  };

  before(async () => {
    cluster = await ProcessCluster.plan(3);
    await cluster.startAll();
    newClient();
  });

  after(async () => {
    for (const client of clients) await client.close();
    await cluster?.stopAll();
  });

  it('keeps a counter exact under the lock; without it, updates are lost', async () => {
    const workers = 4;
    const rounds = 8;
    const sessions = await Promise.all(
      Array.from({ length: workers }, async (_, i) => {
        const client = newClient(i);
        return { client, mutex: new Mutex(client, await client.grant(10), 'locks/counter') };
      }),
    );
    await clients[0]!.put('counter', '0');
    let inside = 0;
    let overlaps = 0;
    await Promise.all(
      sessions.map(async ({ client, mutex }) => {
        for (let round = 0; round < rounds; round++) {
          await mutex.lock({ timeoutMs: 30_000 });
          inside++;
          if (inside > 1) overlaps++;
          const value = Number(text((await client.get('counter'))?.value));
          await client.put('counter', String(value + 1));
          inside--;
          await mutex.unlock();
        }
      }),
    );
    assert.equal(overlaps, 0, 'two holders inside the critical section at once');
    assert.equal(text((await clients[0]!.get('counter'))?.value), String(workers * rounds));
    assert.deepEqual(await contenders('locks/counter'), [], 'every lock key was deleted');

    // Control: the same read/modify/write with every read before any write (the interleaving
    // concurrent clients may hit without the lock) loses all but one update.
    await clients[0]!.put('counter', '0');
    const read = await Promise.all(sessions.map(({ client }) => client.get('counter')));
    await Promise.all(
      sessions.map(({ client }, i) =>
        client.put('counter', String(Number(text(read[i]?.value)) + 1)),
      ),
    );
    assert.equal(text((await clients[0]!.get('counter'))?.value), '1');
    for (const { mutex } of sessions) await mutex.lease.revoke();
  });

  it('hands the lock to the next waiter when the holder lease is revoked or expires', async () => {
    const [a, b, c] = [newClient(0), newClient(1), newClient(2)];
    const holder = new Mutex(a, await a.grant(10), 'locks/handover');
    await holder.lock();
    assert.ok(await holder.isOwner());
    const waiter = new Mutex(b, await b.grant(2), 'locks/handover');
    const waiting = track(waiter.lock({ timeoutMs: 30_000 }));
    await waitFor(
      'the waiter to queue',
      async () => (await contenders('locks/handover')).length === 2,
    );
    assert.equal(waiting.settled(), false, 'the waiter got the lock while it was held');
    const other = new Mutex(c, await c.grant(10), 'locks/handover');
    assert.equal(await other.tryLock(), false, 'tryLock took a held lock');
    assert.equal((await contenders('locks/handover')).length, 2, 'tryLock left its key behind');
    await other.lease.revoke();

    // Revoked elsewhere: the holder's keep-alive learns the lease is gone and signals the loss.
    await c.leaseRevoke(holder.lease.id);
    const lost = await holder.lost;
    assert.equal(lost.code, 'NOT_FOUND');
    await waiting.promise;
    assert.ok(await waiter.isOwner());

    // Expired: the new holder's client stops renewing (close revokes nothing), its 2 s lease runs
    // out, and a third contender gets the lock.
    const third = new Mutex(c, await c.grant(10), 'locks/handover');
    const thirdWaiting = track(third.lock({ timeoutMs: 30_000 }));
    await waitFor('the third contender to queue', async () => {
      return (await contenders('locks/handover')).length === 2;
    });
    assert.equal(thirdWaiting.settled(), false);
    await b.close();
    await thirdWaiting.promise;
    assert.ok(await third.isOwner());
    const ttl = await c.leaseTimeToLive(waiter.lease.id);
    assert.equal(ttl.ttlSeconds, -1, 'the closed client lease expired');
    await third.unlock();
    await third.lease.revoke();
  });

  it('gives up a wait on timeout or abort and leaves no queued key behind', async () => {
    const [a, b] = [newClient(0), newClient(1)];
    const holder = new Mutex(a, await a.grant(10), 'locks/abort');
    await holder.lock();
    const waiter = new Mutex(b, await b.grant(10), 'locks/abort');
    await assert.rejects(waiter.lock({ timeoutMs: 300 }), { code: 'DEADLINE_EXCEEDED' });
    const controller = new AbortController();
    const aborted = waiter.lock({ signal: controller.signal });
    await waitFor(
      'the waiter to queue',
      async () => (await contenders('locks/abort')).length === 2,
    );
    controller.abort();
    await assert.rejects(aborted, { code: 'CANCELLED' });
    assert.deepEqual(await contenders('locks/abort'), [text(holder.key)]);
    await holder.unlock();
    await holder.lease.revoke();
    await waiter.lease.revoke();
  });

  it('queues etcdctl lock behind our mutex on the same name (etcd key layout)', {
    skip: etcdInstalled() ? false : 'etcdctl is not installed',
  }, async () => {
    const client = newClient(0);
    const mutex = new Mutex(client, await client.grant(10), 'locks/interop');
    await mutex.lock();
    assert.match(text(mutex.key), /^locks\/interop\/[0-9a-f]+$/);
    const member = cluster.members[1]!;
    const etcdctl = spawn('etcdctl', [`--endpoints=${member.endpoint}`, 'lock', 'locks/interop'], {
      env: { ...process.env, ETCDCTL_API: '3' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    etcdctl.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    try {
      await waitFor(
        'etcdctl to queue',
        async () => (await contenders('locks/interop')).length === 2,
      );
      const queued = (await contenders('locks/interop'))[1]!;
      assert.match(queued, /^locks\/interop\/[0-9a-f]+$/, 'etcdctl uses the same layout');
      assert.equal(output, '', 'etcdctl got the lock while we held it');
      await mutex.unlock();
      await waitFor('etcdctl to take the lock', () => output.includes(queued) || undefined);
      assert.equal(await mutex.tryLock(), false, 'our mutex sees etcdctl as the holder');
    } finally {
      etcdctl.kill('SIGINT');
    }
    await mutex.lock({ timeoutMs: 30_000 });
    await mutex.unlock();
    await mutex.lease.revoke();
  });

  it('queues etcdctl elect behind our leader on the same name', {
    skip: etcdInstalled() ? false : 'etcdctl is not installed',
  }, async () => {
    const client = newClient(0);
    const election = new Election(client, await client.grant(10), 'elections/interop');
    await election.campaign('ours');
    const etcdctl = spawn(
      'etcdctl',
      [`--endpoints=${cluster.members[2]!.endpoint}`, 'elect', 'elections/interop', 'theirs'],
      { env: { ...process.env, ETCDCTL_API: '3' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    etcdctl.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    try {
      await waitFor('etcdctl to campaign', async () => {
        return (await contenders('elections/interop')).length === 2;
      });
      assert.equal(output, '', 'etcdctl led while we did');
      await election.resign();
      await waitFor('etcdctl to lead', () => output.includes('theirs') || undefined);
      const leader = await election.leader();
      assert.equal(text(leader?.value), 'theirs');
      assert.match(text(leader?.key), /^elections\/interop\/[0-9a-f]+$/);
    } finally {
      etcdctl.kill('SIGINT');
    }
    await election.lease.revoke();
  });

  it('elects campaigners in turn; observe sees each leader', async () => {
    const [a, b, c, watcher] = [newClient(0), newClient(1), newClient(2), newClient(0)];
    const observed: string[] = [];
    const observer = new Election(watcher, await watcher.grant(10), 'elections/e');
    const controller = new AbortController();
    const observing = (async () => {
      for await (const leader of observer.observe({ signal: controller.signal }))
        observed.push(text(leader.value));
    })();
    const first = new Election(a, await a.grant(10), 'elections/e');
    await first.campaign('a');
    assert.ok(first.isLeader);
    await first.proclaim('a2');
    const second = new Election(b, await b.grant(2), 'elections/e');
    const secondCampaign = track(second.campaign('b'));
    await waitFor('b to queue', async () => (await contenders('elections/e')).length === 2);
    assert.equal(secondCampaign.settled(), false, 'b led while a had not resigned');
    assert.equal(text((await second.leader())?.value), 'a2');
    await first.resign();
    await secondCampaign.promise;
    assert.equal(text((await first.leader())?.value), 'b');

    // The leader's lease dies (its client stops renewing): the next campaigner takes over.
    const third = new Election(c, await c.grant(10), 'elections/e');
    const thirdCampaign = track(third.campaign('c'));
    await waitFor('c to queue', async () => (await contenders('elections/e')).length === 2);
    assert.equal(thirdCampaign.settled(), false);
    await b.close();
    await thirdCampaign.promise;
    await third.proclaim('c2');
    await waitFor('the observer to see c2', () => observed.includes('c2') || undefined);
    controller.abort();
    await observing;
    // The observer may start after a's first value was replaced; from 'a2' on it sees every one.
    assert.deepEqual(observed.slice(observed.indexOf('a2')), ['a2', 'b', 'c', 'c2']);
    await third.resign();
    await assert.rejects(third.proclaim('c3'), /election: not leader/);
  });

  it('keeps a 2 s lease alive far past its TTL, across the death of its member', async () => {
    const client = newClient(0);
    const lease: Lease = await client.grant(2);
    await client.put('leased/key', 'v', { lease: lease.id });
    const keepAlivesAfter = (count: number) =>
      waitFor(`${count} keep-alives`, () => lease.keepAlives >= count || undefined, 30_000);
    // Nine renewals at ttl/3 span three TTLs.
    await keepAlivesAfter(9);
    assert.equal(lease.state, 'alive');
    assert.ok((await lease.timeToLive()).ttlSeconds > 0);

    // Keep-alives go to the leader; SIGKILL it and the lease must still be renewed elsewhere.
    const leaderAddress = await client.leaderEndpoint();
    const leader = cluster.members.find((m) => nativeEndpoint(m) === leaderAddress)!;
    await leader.stop('SIGKILL');
    await keepAlivesAfter(lease.keepAlives + 9);
    assert.equal(lease.state, 'alive');
    const ttl = await lease.timeToLive({ keys: true });
    assert.ok(ttl.ttlSeconds > 0);
    assert.deepEqual(ttl.keys.map(text), ['leased/key']);
    assert.equal(text((await client.get('leased/key'))?.value), 'v');
    await lease.revoke();
    assert.equal(await client.get('leased/key'), undefined);
  });
});
