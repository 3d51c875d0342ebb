/**
 * etcdctl against a 3-member etcd cluster and a 3-member shoal cluster (real processes on both
 * sides): the same command sequence as etcd-compat.test.ts (KV, txn, compaction errors, size
 * limits, member list, endpoint status/health/hashkv, lock, snapshot, leases) alternates between
 * the leader (host:port) and a follower (as an http:// URL), the same role on both sides, and
 * every step must give the same normalized output; then the watch scenario runs with watchers on
 * a follower and writes on the leader. Only what legitimately differs is masked (ids, terms, raft indexes, versions, sizes,
 * endpoints). Both clusters start once, in parallel, for all cases.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { type EtcdCluster, EtcdCluster as EtcdProcesses } from './support/etcd-cluster.js';
import { etcdInstalled } from './support/etcd-process.js';
import { etcdctl, normalize } from './support/etcdctl.js';
import { compareSteps, snapshotPath } from './support/etcdctl-steps.js';
import {
  assertSameWatchOutputs,
  type RunningWatch,
  runWatchScenario,
} from './support/etcdctl-watch.js';
import { ProcessCluster, waitFor } from './support/member-process.js';

interface Roles {
  leader: string;
  follower: string;
}

/** The leader's and one follower's host:port, once every member reports the same leader. */
async function roles(endpoints: string[]): Promise<Roles> {
  return waitFor(
    'a leader all members agree on',
    async () => {
      const statuses = await Promise.all(
        endpoints.map(async (endpoint) => {
          const result = await etcdctl(endpoint, ['endpoint', 'status', '-w', 'json']);
          if (result.code !== 0) return null;
          // Ids are read as text: etcd's exceed 2^53.
          const member = /"member_id":(\d+)/.exec(result.stdout)?.[1];
          const leader = /"leader":(\d+)/.exec(result.stdout)?.[1];
          return member && leader ? { endpoint, member, leader } : null;
        }),
      );
      if (statuses.some((s) => s === null || s.leader === '0')) return undefined;
      const leaderId = statuses[0]!.leader;
      if (statuses.some((s) => s!.leader !== leaderId)) return undefined;
      const leader = statuses.find((s) => s!.member === leaderId);
      const follower = statuses.find((s) => s!.member !== leaderId);
      return leader && follower
        ? { leader: leader.endpoint, follower: follower.endpoint }
        : undefined;
    },
    30_000,
    200,
  );
}

describe('etcdctl against 3-member etcd and shoal clusters', {
  skip: etcdInstalled() ? false : 'etcd and etcdctl are not installed',
  timeout: 170_000,
}, () => {
  let etcd: EtcdCluster;
  let shoal: ProcessCluster;
  let etcdRoles: Roles;
  let shoalRoles: Roles;
  const watches: RunningWatch[] = [];

  before(async () => {
    shoal = await ProcessCluster.plan(3);
    [etcd] = await Promise.all([EtcdProcesses.start(3), shoal.startAll()]);
    [etcdRoles, shoalRoles] = await Promise.all([
      roles(etcd.members.map((m) => m.endpoint)),
      roles(shoal.members.map((m) => m.endpoint)),
    ]);
    assert.notEqual(etcdRoles.leader, etcdRoles.follower);
    assert.notEqual(shoalRoles.leader, shoalRoles.follower);
  });

  after(async () => {
    await Promise.all(watches.map((w) => w.stop()));
    await Promise.all([etcd?.stopAll(), shoal?.stopAll()]);
    rmSync(snapshotPath, { force: true });
  });

  test('member list and endpoint status over all three members match', async () => {
    for (const args of [
      ['member', 'list', '-w', 'json'],
      ['endpoint', 'status', '-w', 'json'],
      ['endpoint', 'health'],
    ]) {
      const etcdEndpoints = etcd.members.map((m) => m.endpoint).join(',');
      const shoalEndpoints = shoal.endpoints();
      const reference = await etcdctl(etcdEndpoints, args);
      const actual = await etcdctl(shoalEndpoints, args);
      assert.equal(reference.code, 0, reference.stderr);
      const sorted = (result: typeof actual, endpoints: string) => {
        const normalized = normalize(result, endpoints);
        // endpoint health prints one line per member (on stderr) in the order they answer.
        if (args[1] === 'health') {
          normalized.stderr = normalized.stderr
            .split('\n')
            .map((line) => line.replace(/^127\.0\.0\.1:\d+/, '<endpoint>'))
            .sort()
            .join('\n');
        }
        return normalized;
      };
      assert.deepEqual(
        sorted(actual, shoalEndpoints),
        sorted(reference, etcdEndpoints),
        args.join(' '),
      );
    }
    const members = await etcdctl(shoal.endpoints(), ['member', 'list', '-w', 'json']);
    assert.equal((JSON.parse(members.stdout) as { members: unknown[] }).members.length, 3);
  });

  /** Runs a case; a failure carries the end of each shoal member's log (warnings and errors). */
  const withLogs = async (run: () => Promise<void>) => {
    try {
      await run();
    } catch (error) {
      const logs = shoal.members.map((m) => `--- ${m.spec.name}:\n${m.output.slice(-4000)}`);
      throw new Error(`${(error as Error).message}\n${logs.join('\n')}`, { cause: error });
    }
  };

  test('every step gives the same result, alternating leader and follower (as a URL)', () =>
    withLogs(() =>
      compareSteps((step, index) => {
        if (step.leaderOnly || index % 2 === 0) {
          return { etcd: etcdRoles.leader, shoal: shoalRoles.leader };
        }
        // Follower steps give the endpoint as an http:// URL, the form etcd's docs use.
        return { etcd: `http://${etcdRoles.follower}`, shoal: `http://${shoalRoles.follower}` };
      }),
    ));

  test('a follower watches what the leader writes', () =>
    withLogs(async () => {
      const reference = await runWatchScenario(etcdRoles.follower, etcdRoles.leader, watches);
      const actual = await runWatchScenario(shoalRoles.follower, shoalRoles.leader, watches);
      assertSameWatchOutputs(actual, reference);
    }));
});
