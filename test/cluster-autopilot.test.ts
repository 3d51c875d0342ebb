/**
 * Autopilot in real member processes: three members start a cluster, two more start with --join
 * (not in --initial-cluster) and are added as learners by the leader's autopilot; a SIGKILLed
 * voter is replaced (a learner promoted, the dead voter removed) so the cluster is back to three
 * voters. The removed member then restarts with a fresh data dir and --join and is added back as
 * a learner without disturbing the cluster.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { etcdctl } from './support/etcdctl.js';
import {
  type MemberProcess,
  ProcessCluster,
  waitFor,
  waitForLeader,
} from './support/member-process.js';

const AUTOPILOT_ARGS = ['--autopilot-stabilization-ms=1000', '--autopilot-dead-voter-ms=2000'];

interface ListedMember {
  ID: number | string;
  name?: string;
  peerURLs: string[];
  isLearner?: boolean;
}

async function memberList(endpoint: string): Promise<ListedMember[]> {
  const result = await etcdctl(endpoint, ['member', 'list', '-w', 'json']);
  assert.equal(result.code, 0, result.stderr);
  return (JSON.parse(result.stdout) as { members: ListedMember[] }).members;
}

function roles(members: readonly ListedMember[]): { voters: string[]; learners: string[] } {
  const url = (m: ListedMember) => m.peerURLs[0] ?? '';
  return {
    voters: members
      .filter((m) => m.isLearner !== true)
      .map(url)
      .sort(),
    learners: members
      .filter((m) => m.isLearner === true)
      .map(url)
      .sort(),
  };
}

describe('autopilot', { timeout: 90_000 }, () => {
  let cluster: ProcessCluster;

  before(async () => {
    cluster = await ProcessCluster.plan(3, AUTOPILOT_ARGS);
    await cluster.startAll();
  });

  after(async () => {
    await cluster?.stopAll();
  });

  it('adds joiners as learners and replaces a dead voter', async () => {
    const initial = cluster.members.slice(0, 3);
    await waitForLeader(initial);
    const seed = `127.0.0.1:${initial[0]!.spec.peerPort}`;
    const joiners: MemberProcess[] = [];
    for (let i = 0; i < 2; i++) {
      const joiner = await cluster.addSpec([...AUTOPILOT_ARGS, `--join=${seed}`]);
      await joiner.start(cluster.initialCluster(initial), 'new');
      joiners.push(joiner);
    }
    const endpoints = cluster.endpoints(initial);
    await waitFor(
      'the two joiners as learners',
      async () => {
        const r = roles(await memberList(endpoints));
        return r.voters.length === 3 && r.learners.length === 2;
      },
      30_000,
      250,
    );
    const leader = await waitForLeader(initial);
    const victim = initial.find((m) => m !== leader)!;
    await victim.stop('SIGKILL');
    const alive = cluster.members.filter((m) => m !== victim);
    await waitFor(
      'autopilot to replace the dead voter',
      async () => {
        const r = roles(await memberList(cluster.endpoints(alive)));
        return (
          r.voters.length === 3 &&
          !r.voters.includes(victim.peerUrl) &&
          r.learners.length === 1 &&
          !r.learners.includes(victim.peerUrl)
        );
      },
      40_000,
      250,
    );
    const r = roles(await memberList(cluster.endpoints(alive)));
    const promoted = r.voters.filter((u) => joiners.some((j) => j.peerUrl === u));
    assert.equal(promoted.length, 1, 'exactly one joiner was promoted to voter');
    const put = await etcdctl(cluster.endpoints(alive), ['put', 'after-replace', 'ok']);
    assert.equal(put.code, 0, put.stderr);

    // The removed member comes back with a fresh data dir and --join: it must not bootstrap a
    // cluster of its own; autopilot adds it again as a learner.
    rmSync(victim.spec.dataDir, { recursive: true, force: true });
    victim.spec.extraArgs.push(`--join=${seed}`);
    await victim.start(cluster.initialCluster(initial), 'existing');
    await waitFor(
      'the restarted member to rejoin as a learner',
      async () => {
        const r = roles(await memberList(cluster.endpoints(alive)));
        return r.voters.length === 3 && r.learners.includes(victim.peerUrl);
      },
      30_000,
      250,
    );
    const get = await etcdctl(victim.endpoint, ['get', 'after-replace', '--consistency=s']);
    assert.equal(get.code, 0, `${get.stderr}\n${victim.output.slice(-3000)}`);
    await waitFor('the rejoined learner to catch up', async () => {
      const local = await etcdctl(victim.endpoint, [
        'get',
        'after-replace',
        '--consistency=s',
        '--print-value-only',
      ]);
      return local.stdout.trim() === 'ok';
    });
    const afterRejoin = await etcdctl(cluster.endpoints(alive), ['put', 'after-rejoin', 'ok']);
    assert.equal(afterRejoin.code, 0, afterRejoin.stderr);
    const final = roles(await memberList(cluster.endpoints(alive)));
    assert.equal(final.voters.length, 3);
  });
});
