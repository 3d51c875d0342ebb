/**
 * The `etcd3` npm client's lock and election helpers against a 3-member shoal cluster of real
 * processes, each contender connected to a different member: the lock is mutually exclusive (the
 * second contender fails to acquire it while the first holds it and gets it once released), and an
 * election elects the first campaigner, tells an observer, and hands over on resignation.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Etcd3, EtcdLockFailedError } from 'etcd3';
import { ProcessCluster, waitFor, waitForLeader } from './support/member-process.js';

describe('etcd3 lock and election on a cluster', { timeout: 90_000 }, () => {
  let cluster: ProcessCluster;
  const clients: Etcd3[] = [];
  const clientOf = (i: number) => {
    const client = new Etcd3({ hosts: cluster.members[i]!.endpoint });
    clients.push(client);
    return client;
  };

  before(async () => {
    cluster = await ProcessCluster.plan(3);
    await cluster.startAll();
    await waitForLeader(cluster.members);
  });

  after(async () => {
    for (const client of clients) client.close();
    await cluster?.stopAll();
  });

  it('holds a lock for one contender at a time', async () => {
    const [a, b] = [clientOf(0), clientOf(1)];
    const first = await a.lock('locks/job').ttl(10).acquire();
    await assert.rejects(b.lock('locks/job').ttl(10).acquire(), EtcdLockFailedError);
    await first.release();
    const second = await b.lock('locks/job').ttl(10).acquire();
    await assert.rejects(a.lock('locks/job').ttl(10).acquire(), EtcdLockFailedError);
    // `do` runs its body under the lock only after the holder released it.
    await second.release();
    const ran = await a.lock('locks/job').do(async () => 'ran under the lock');
    assert.equal(ran, 'ran under the lock');
  });

  it('elects, reports to an observer and hands over on resignation', async () => {
    const [a, b, c] = [clientOf(0), clientOf(1), clientOf(2)];
    const campaignA = a.election('elect/main', 5).campaign('alpha');
    await campaignA.wait();
    const campaignB = b.election('elect/main', 5).campaign('beta');
    let betaElected = false;
    campaignB.on('elected', () => {
      betaElected = true;
    });
    const observer = await c.election('elect/main').observe();
    assert.equal(observer.leader(), 'alpha');
    const changes: (string | undefined)[] = [];
    observer.on('change', (value) => changes.push(value));
    assert.equal(await c.election('elect/main').leader(), 'alpha');
    assert.equal(betaElected, false, 'the second campaigner waits');
    await campaignA.resign();
    await waitFor('beta to be elected', () => betaElected, 20_000);
    await waitFor('the observer to see beta', () => observer.leader() === 'beta', 20_000);
    assert.ok(changes.includes('beta'), JSON.stringify(changes));
    assert.equal(await c.election('elect/main').leader(), 'beta');
    await observer.cancel();
    await campaignB.resign();
  });
});
