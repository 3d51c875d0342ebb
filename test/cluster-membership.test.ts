/**
 * Membership changes through etcdctl against real member processes: a learner is added with
 * `member add --learner`, started with `--initial-cluster-state existing`, catches up, is
 * promoted (through a follower, which forwards to the leader) and removed, after which its process
 * exits. Promoting a voter fails with etcd's error.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { etcdctl } from './support/etcdctl.js';
import { ProcessCluster, waitFor, waitForLeader } from './support/member-process.js';

interface ListedMember {
  ID: number;
  name?: string;
  peerURLs: string[];
  clientURLs?: string[];
  isLearner?: boolean;
}

async function memberList(endpoint: string): Promise<ListedMember[]> {
  const result = await etcdctl(endpoint, ['member', 'list', '-w', 'json']);
  assert.equal(result.code, 0, result.stderr);
  return (JSON.parse(result.stdout) as { members: ListedMember[] }).members;
}

describe('member add (learner), promote, remove', { timeout: 90_000 }, () => {
  let cluster: ProcessCluster;

  before(async () => {
    cluster = await ProcessCluster.plan(3);
    await cluster.startAll();
  });

  after(async () => {
    await cluster?.stopAll();
  });

  it('adds a learner that catches up, promotes it, then removes it', async () => {
    const leader = await waitForLeader(cluster.members);
    const follower = cluster.members.find((m) => m !== leader)!;
    for (let i = 0; i < 20; i++) {
      const put = await etcdctl(cluster.endpoints(), ['put', `before-join/${i}`, `v${i}`]);
      assert.equal(put.code, 0, put.stderr);
    }
    const newcomer = await cluster.addSpec();
    const add = await etcdctl(follower.endpoint, [
      'member',
      'add',
      newcomer.spec.name,
      `--peer-urls=${newcomer.peerUrl}`,
      '--learner',
    ]);
    assert.equal(add.code, 0, add.stderr);
    const idHex = /Member\s+([0-9a-f]+)\s+added/.exec(add.stdout)?.[1];
    assert.ok(idHex, add.stdout);
    const id = BigInt(`0x${idHex}`);
    let listed = (await memberList(leader.endpoint)).find((m) => BigInt(m.ID) === id);
    assert.equal(listed?.isLearner, true);

    await newcomer.start(cluster.initialCluster(), 'existing');
    await waitFor('the learner to hold the earlier writes', async () => {
      const get = await etcdctl(newcomer.endpoint, [
        'get',
        'before-join/',
        '--prefix',
        '--keys-only',
        '--consistency=s',
      ]);
      return get.stdout.split('\n').filter((l) => l.startsWith('before-join/')).length === 20;
    });
    await waitFor('the learner to publish its name', async () => {
      const m = (await memberList(leader.endpoint)).find((x) => BigInt(x.ID) === id);
      return m?.name === newcomer.spec.name && (m.clientURLs ?? []).length === 1;
    });

    const promoteVoter = await etcdctl(follower.endpoint, [
      'member',
      'promote',
      BigInt(leaderId(await memberList(leader.endpoint), leader.peerUrl)).toString(16),
    ]);
    assert.notEqual(promoteVoter.code, 0);
    assert.match(promoteVoter.stderr, /can only promote a learner member/);

    const promote = await etcdctl(follower.endpoint, ['member', 'promote', idHex]);
    assert.equal(promote.code, 0, promote.stderr);
    listed = (await memberList(follower.endpoint)).find((m) => BigInt(m.ID) === id);
    assert.equal(listed?.isLearner ?? false, false);
    const viaNewcomer = await etcdctl(newcomer.endpoint, ['put', 'from-newcomer', 'yes']);
    assert.equal(viaNewcomer.code, 0, viaNewcomer.stderr);

    const remove = await etcdctl(leader.endpoint, ['member', 'remove', idHex]);
    assert.equal(remove.code, 0, remove.stderr);
    // The removed member learns it was removed (from the log or from a peer) and exits cleanly.
    assert.equal(await newcomer.exited(20_000), 0);
    const remaining = await memberList(follower.endpoint);
    assert.equal(remaining.length, 3);
    assert.ok(remaining.every((m) => BigInt(m.ID) !== id));
    const put = await etcdctl(cluster.endpoints(cluster.members.slice(0, 3)), [
      'put',
      'after-remove',
      'ok',
    ]);
    assert.equal(put.code, 0, put.stderr);
  });
});

describe('move-leader', { timeout: 60_000 }, () => {
  let cluster: ProcessCluster;
  before(async () => {
    cluster = await ProcessCluster.plan(3);
    await cluster.startAll();
  });
  after(async () => {
    await cluster?.stopAll();
  });

  it('hands leadership to the chosen member', async () => {
    const leader = await waitForLeader(cluster.members);
    const target = cluster.members.find((m) => m !== leader)!;
    const id = leaderId(await memberList(leader.endpoint), target.peerUrl);
    const move = await etcdctl(cluster.endpoints(), ['move-leader', id.toString(16)]);
    assert.equal(move.code, 0, move.stderr);
    assert.equal(await waitForLeader(cluster.members), target);
  });
});

function leaderId(members: ListedMember[], peerUrl: string): number {
  const member = members.find((m) => m.peerURLs.includes(peerUrl));
  assert.ok(member, `no member with ${peerUrl}`);
  return member.ID;
}
