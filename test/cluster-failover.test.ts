/**
 * SIGKILL of the leader under write load: the survivors elect a new leader, and every write that
 * etcdctl saw acknowledged is still there, on the survivors and on the killed member after it
 * restarts from its data dir.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { etcdctl } from './support/etcdctl.js';
import {
  type MemberProcess,
  ProcessCluster,
  waitFor,
  waitForLeader,
} from './support/member-process.js';

const WRITERS = 4;

async function writeLoop(
  id: number,
  endpoints: () => string,
  stop: () => boolean,
  acknowledged: Set<string>,
): Promise<void> {
  for (let n = 0; !stop(); n++) {
    const key = `load/${id}/${String(n).padStart(5, '0')}`;
    const result = await etcdctl(endpoints(), ['--command-timeout=3s', 'put', key, `v${n}`]);
    if (result.code === 0 && result.stdout.trim() === 'OK') acknowledged.add(key);
  }
}

/** The member's own (serializable) view of the written keys. */
async function keysOn(member: MemberProcess): Promise<Set<string>> {
  const result = await etcdctl(member.endpoint, [
    'get',
    'load/',
    '--prefix',
    '--keys-only',
    '--consistency=s',
  ]);
  assert.equal(result.code, 0, result.stderr);
  return new Set(result.stdout.split('\n').filter((line) => line.length > 0));
}

describe('leader SIGKILL under write load', { timeout: 90_000 }, () => {
  let cluster: ProcessCluster;

  before(async () => {
    cluster = await ProcessCluster.plan(3);
    await cluster.startAll();
  });

  after(async () => {
    await cluster?.stopAll();
  });

  it('elects a new leader and loses no acknowledged write', async () => {
    const leader = await waitForLeader(cluster.members);
    const survivors = cluster.members.filter((m) => m !== leader);
    const acknowledged = new Set<string>();
    let stopping = false;
    let killed = false;
    // Writers use every endpoint until the kill, then only the survivors.
    const endpoints = () => cluster.endpoints(killed ? survivors : cluster.members);
    const writers = Array.from({ length: WRITERS }, (_, id) =>
      writeLoop(id, endpoints, () => stopping, acknowledged),
    );
    await waitFor('some writes before the kill', () => acknowledged.size >= 20, 20_000);
    const beforeKill = acknowledged.size;
    await leader.stop('SIGKILL');
    killed = true;
    const newLeader = await waitForLeader(survivors);
    assert.notEqual(newLeader, leader);
    await waitFor('writes after the kill', () => acknowledged.size >= beforeKill + 20, 30_000);
    stopping = true;
    await Promise.all(writers);

    for (const member of survivors) {
      const present = await keysOn(member);
      const lost = [...acknowledged].filter((key) => !present.has(key));
      assert.deepEqual(lost, [], `${member.spec.name} lost acknowledged writes`);
    }
    await leader.start(cluster.initialCluster(), 'new');
    const restarted = await waitFor('the killed member to catch up', async () => {
      const present = await keysOn(leader);
      return [...acknowledged].every((key) => present.has(key)) ? present : undefined;
    });
    assert.ok(restarted.size >= acknowledged.size);
  });

  it('fails writes and linearizable reads with etcd errors when no quorum is left', async () => {
    const leader = await waitForLeader(cluster.members);
    const [alone, ...others] = [leader, ...cluster.members.filter((m) => m !== leader)];
    await Promise.all(others.map((m) => m.stop('SIGKILL')));
    const put = await etcdctl(alone!.endpoint, ['--command-timeout=15s', 'put', 'no-quorum', 'x']);
    assert.notEqual(put.code, 0);
    assert.match(put.stderr, /etcdserver: (no leader|request timed out)/);
    const get = await etcdctl(alone!.endpoint, ['--command-timeout=15s', 'get', 'no-quorum']);
    assert.notEqual(get.code, 0);
    assert.match(get.stderr, /etcdserver: (no leader|request timed out)/);
    // A serializable read still answers from local state.
    const local = await etcdctl(alone!.endpoint, [
      'get',
      'load/',
      '--prefix',
      '--keys-only',
      '--consistency=s',
      '--limit=1',
    ]);
    assert.equal(local.code, 0, local.stderr);
  });
});
