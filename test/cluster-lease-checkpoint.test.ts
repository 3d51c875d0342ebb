/**
 * Lease checkpoints on a 3-member cluster of real processes: the leader records each long lease's
 * remaining TTL through raft, so after every member is SIGKILLed and restarted the lease continues
 * from (about) where it was instead of getting its full TTL back. Only reported TTL values are
 * compared; the slack covers one checkpoint interval, rounding and the new leader's grace.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { etcdctl } from './support/etcdctl.js';
import { ProcessCluster, waitFor, waitForLeader } from './support/member-process.js';

const ttlSeconds = 30;
/** Checkpoint often so the test is quick (etcd's default is 5 minutes). */
const checkpointIntervalMs = 1000;
/** Restart once the lease reports this much left: well below its full TTL. */
const restartBelowSeconds = 23;
/** Seconds a restarted lease may report above the last value seen before the restart. */
const slackSeconds = 4;

async function remainingSeconds(endpoint: string, id: string): Promise<number | undefined> {
  const result = await etcdctl(endpoint, ['lease', 'timetolive', id]);
  const match = /remaining\((-?\d+)s\)/.exec(result.stdout);
  return match ? Number(match[1]) : undefined;
}

describe('lease checkpoints across a restart of every member', { timeout: 90_000 }, () => {
  let cluster: ProcessCluster;

  before(async () => {
    cluster = await ProcessCluster.plan(3, [`--lease-checkpoint-interval=${checkpointIntervalMs}`]);
    await cluster.startAll();
  });

  after(async () => {
    await cluster?.stopAll();
  });

  it('does not give a lease its full TTL back after the restart', async () => {
    const leader = await waitForLeader(cluster.members);
    const grant = await etcdctl(leader.endpoint, ['lease', 'grant', String(ttlSeconds)]);
    const id = /lease ([0-9a-f]+) granted/.exec(grant.stdout)?.[1];
    assert.ok(id, grant.stdout + grant.stderr);
    const put = await etcdctl(leader.endpoint, ['put', 'cp/key', 'v', `--lease=${id}`]);
    assert.equal(put.code, 0, put.stderr);

    const before = await waitFor(
      'the lease to run down past several checkpoints',
      async () => {
        const left = await remainingSeconds(leader.endpoint, id);
        return left !== undefined && left <= restartBelowSeconds ? left : undefined;
      },
      30_000,
      250,
    );
    await Promise.all(cluster.members.map((m) => m.stop('SIGKILL')));
    const initial = cluster.initialCluster();
    await Promise.all(cluster.members.map((m) => m.start(initial, 'new')));
    const newLeader = await waitForLeader(cluster.members);
    const afterRestart = await waitFor(
      'the lease TTL after the restart',
      () => remainingSeconds(newLeader.endpoint, id),
      20_000,
      250,
    );
    assert.ok(afterRestart > 0, `the lease expired early: ${afterRestart}`);
    assert.ok(
      afterRestart <= before + slackSeconds,
      `the lease got its TTL back: ${before}s before the restart, ${afterRestart}s after`,
    );
    assert.ok(afterRestart < ttlSeconds - 2, `near-full TTL after the restart: ${afterRestart}`);
    const kept = await etcdctl(newLeader.endpoint, ['get', 'cp/key', '--print-value-only']);
    assert.equal(kept.stdout.trim(), 'v');
  });
});
