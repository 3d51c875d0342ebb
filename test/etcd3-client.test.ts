/**
 * The `etcd3` npm client, unchanged, against shoal and against real etcd: puts and gets, prefix
 * reads, transactions, leases with keep-alive and revoke, watches, locks, elections and STM
 * transactions give the same results on both. (Without etcd installed, the shoal half still runs
 * and checks the expected values.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import { etcdInstalled, type RunningEtcd, startEtcd } from './support/etcd-process.js';
import { type RunningShoalMember, startShoalMember } from './support/shoal-server.js';

/** Runs one scenario through the client and returns what it observed, for comparison. */
async function scenario(client: Etcd3): Promise<unknown[]> {
  const seen: unknown[] = [];
  await client.put('app/name').value('shoal');
  await client.put('app/mode').value('dev');
  seen.push(await client.get('app/name').string());
  seen.push(await client.getAll().prefix('app/').strings());
  seen.push(await client.getAll().prefix('app/').count());
  const txn = await client
    .if('app/mode', 'Value', '==', 'dev')
    .then(client.put('app/mode').value('prod'))
    .else(client.get('app/mode'))
    .commit();
  seen.push(txn.succeeded);
  const failed = await client
    .if('app/mode', 'Value', '==', 'dev')
    .then(client.put('x').value('y'))
    .commit();
  seen.push(failed.succeeded);

  const lease = client.lease(30, { autoKeepAlive: false });
  await lease.put('app/session').value('alive');
  const renewed = await lease.keepaliveOnce();
  seen.push(await client.get('app/session').string());
  seen.push(Number(renewed.TTL));
  await lease.revoke();
  seen.push(await client.get('app/session').string());

  const watcher = await client.watch().key('app/events').create();
  const event = new Promise<string>((resolve) =>
    watcher.on('put', (kv) => resolve(kv.value.toString())),
  );
  await client.put('app/events').value('hello');
  seen.push(await event);
  await watcher.cancel();

  const lock = client.lock('app/lock');
  await lock.acquire();
  seen.push((await client.getAll().prefix('app/lock').keys()).length);
  await lock.release();
  seen.push((await client.getAll().prefix('app/lock').keys()).length);

  await client.put('app/counter').value('0');
  for (let i = 0; i < 3; i++) {
    await client.stm().transact(async (tx) => {
      const current = Number(await tx.get('app/counter').string());
      await tx.put('app/counter').value(String(current + 1));
    });
  }
  seen.push(await client.get('app/counter').string());

  const election = client.election('app/leader');
  const campaign = election.campaign('candidate-1');
  await campaign.wait();
  seen.push(await election.leader());
  await campaign.resign();

  seen.push(
    await client
      .delete()
      .prefix('app/')
      .then((r) => Number(r.deleted)),
  );
  return seen;
}

const expected = [
  'shoal',
  { 'app/mode': 'dev', 'app/name': 'shoal' },
  2,
  true,
  false,
  'alive',
  30,
  null,
  'hello',
  1,
  0,
  '3',
  'candidate-1',
];

describe('the etcd3 npm client', () => {
  let shoal: RunningShoalMember;
  let etcd: RunningEtcd | undefined;

  before(async () => {
    shoal = await startShoalMember();
    if (etcdInstalled()) etcd = await startEtcd();
  });
  after(async () => {
    await Promise.all([shoal?.close(), etcd?.stop()]);
  });

  test('works unchanged against shoal, with the same results as against etcd', async () => {
    const shoalClient = new Etcd3({ hosts: `127.0.0.1:${shoal.port}` });
    let actual: unknown[];
    try {
      actual = await scenario(shoalClient);
    } finally {
      shoalClient.close();
    }
    // The final delete count is checked separately: it counts every key left under app/.
    assert.deepEqual(actual.slice(0, -1), expected);
    if (etcd) {
      const etcdClient = new Etcd3({ hosts: etcd.endpoint });
      try {
        assert.deepEqual(actual, await scenario(etcdClient));
      } finally {
        etcdClient.close();
      }
    }
  });
});
