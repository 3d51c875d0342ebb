/**
 * Members commit to their key-value store without fsync; raft's WAL and snapshot are the durable
 * copy. These tests simulate a machine crash (another kernel boot id at restart, via
 * SHOAL_TEST_BOOT_ID) after the store file was damaged, and check that the member discards the
 * store and rebuilds it from raft: from the log alone, and from a snapshot plus the log.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { etcdctl } from './support/etcdctl.js';
import {
  type MemberProcess,
  ProcessCluster,
  waitFor,
  waitForLeader,
} from './support/member-process.js';

const KEYS = 60;

async function putKeys(endpoints: string, prefix: string): Promise<void> {
  for (let i = 0; i < KEYS; i++) {
    const result = await etcdctl(endpoints, [
      'put',
      `${prefix}${String(i).padStart(3, '0')}`,
      `v${i}`,
    ]);
    assert.equal(result.code, 0, result.stderr);
  }
}

/** The member's own view (serializable): key count under the prefix and the store's revision. */
async function localView(member: MemberProcess, prefix: string) {
  const result = await etcdctl(member.endpoint, [
    'get',
    prefix,
    '--prefix',
    '--consistency=s',
    '-w',
    'json',
  ]);
  if (result.code !== 0) return undefined;
  const parsed = JSON.parse(result.stdout) as { header: { revision: number }; kvs?: unknown[] };
  return { count: parsed.kvs?.length ?? 0, revision: parsed.header.revision };
}

/** Kills the member, overwrites its store with garbage, restarts it as after a machine crash. */
async function crashMachine(member: MemberProcess, cluster: ProcessCluster): Promise<void> {
  await member.stop('SIGKILL');
  writeFileSync(join(member.spec.dataDir, 'kv', 'db', 'data.mdb'), Buffer.alloc(64 * 1024, 0xab));
  member.env = { SHOAL_TEST_BOOT_ID: `rebooted-${member.spec.name}` };
  member.logLevel = 'info';
  await member.start(cluster.initialCluster(), 'new');
  assert.match(member.output, /discarded it, to be rebuilt/);
}

describe('a machine crash damages an unsynced store', () => {
  const clusters: ProcessCluster[] = [];
  after(async () => {
    await Promise.all(clusters.map((c) => c.stopAll()));
  });

  it('a single member rebuilds its store from the raft log', async () => {
    const cluster = await ProcessCluster.plan(1);
    clusters.push(cluster);
    await cluster.startAll();
    const [member] = cluster.members;
    await putKeys(member!.endpoint, 'solo/');
    const before = await localView(member!, 'solo/');
    assert.deepEqual(before, { count: KEYS, revision: KEYS + 1 });
    await crashMachine(member!, cluster);
    const rebuilt = await waitFor('the rebuilt store', async () => {
      const view = await localView(member!, 'solo/');
      return view?.count === KEYS ? view : undefined;
    });
    assert.deepEqual(rebuilt, before);
  });

  it('a follower rebuilds its store from a raft snapshot and the log', async () => {
    const cluster = await ProcessCluster.plan(3, ['--snapshot-count=20']);
    clusters.push(cluster);
    await cluster.startAll();
    const leader = await waitForLeader(cluster.members);
    await putKeys(leader.endpoint, 'trio/');
    const follower = cluster.members.find((m) => m !== leader)!;
    await crashMachine(follower, cluster);
    assert.match(follower.output, /restoring it/, 'the store was restored from the raft snapshot');
    const views = await waitFor('every member at the same state', async () => {
      const all = await Promise.all(cluster.members.map((m) => localView(m, 'trio/')));
      if (all.some((v) => v?.count !== KEYS)) return undefined;
      return all.every((v) => v!.revision === all[0]!.revision) ? all : undefined;
    });
    assert.equal(views[0]!.revision, KEYS + 1);
    const hashes = await etcdctl(cluster.endpoints(), ['endpoint', 'hashkv', '-w', 'json']);
    assert.equal(hashes.code, 0, hashes.stderr);
    const parsed = JSON.parse(hashes.stdout) as { HashKV: { hash: number } }[];
    assert.equal(new Set(parsed.map((h) => h.HashKV.hash)).size, 1, hashes.stdout);
  });
});
