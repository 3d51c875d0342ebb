/**
 * The NOSPACE alarm in a 3-member cluster of real processes: a write refused by the space quota
 * raises the alarm through raft, so every member lists the same alarm (naming the member that
 * raised it) and refuses growing writes with etcd's error while reads, deletes, compaction and
 * defragmentation still work; the alarm survives a member's restart; `alarm disarm` sent to a
 * follower clears it everywhere. The same etcdctl steps against a single real etcd with the same
 * quota must give the same normalized output.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { etcdInstalled, type RunningEtcd, startEtcd } from './support/etcd-process.js';
import { etcdctl, normalize } from './support/etcdctl.js';
import {
  endpointStatus,
  type MemberProcess,
  ProcessCluster,
  waitFor,
  waitForLeader,
} from './support/member-process.js';

const QUOTA_BYTES = 256 * 1024;
const VALUE = 'v'.repeat(16 * 1024);
const NOSPACE = 'etcdserver: mvcc: database space exceeded';
/** Enough 16 KiB puts to pass a 256 KiB quota on either server. */
const FILL_PUTS_MAX = 64;

/** Steps run while NOSPACE is raised, on etcd and on every shoal member. */
const whileRaised: { args: string[]; stdin?: string; refused: boolean }[] = [
  { args: ['put', 'small', 'x'], refused: true },
  { args: ['lease', 'grant', '10'], refused: true },
  { args: ['txn'], stdin: '\n\nput t 1\n\n', refused: true },
  { args: ['txn'], stdin: '\n\nget fill/1\n\n', refused: false },
  { args: ['get', 'fill/1', '--print-value-only'], refused: false },
  { args: ['alarm', 'list'], refused: false },
];

async function fill(endpoint: string): Promise<string> {
  for (let i = 0; i < FILL_PUTS_MAX; i++) {
    const put = await etcdctl(endpoint, ['put', `fill/${i}`, VALUE]);
    if (put.code !== 0) return put.stderr;
  }
  return '';
}

const alarmList = async (member: MemberProcess) =>
  (await etcdctl(member.endpoint, ['alarm', 'list'])).stdout.trim();

describe('NOSPACE in a 3-member cluster', { skip: skipReason(), timeout: 120_000 }, () => {
  let cluster: ProcessCluster;
  let etcd: RunningEtcd;

  before(async () => {
    cluster = await ProcessCluster.plan(3, [`--quota-backend-bytes=${QUOTA_BYTES}`]);
    [etcd] = await Promise.all([
      startEtcd({ extraArgs: [`--quota-backend-bytes=${QUOTA_BYTES}`] }),
      cluster.startAll(),
    ]);
  });

  after(async () => {
    await Promise.all([cluster?.stopAll(), etcd?.stop()]);
  });

  it('is raised through raft, held by every member, survives a restart, and disarms', async () => {
    const members = cluster.members;
    const leader = await waitForLeader(members);
    const followers = members.filter((m) => m !== leader);
    const writer = followers[0]!;
    const writerId = (await endpointStatus(writer))!.memberId;

    // Filling through a follower: that member's quota check raises the alarm for itself.
    assert.match(await fill(writer.endpoint), new RegExp(NOSPACE));
    assert.match(await fill(etcd.endpoint), new RegExp(NOSPACE));
    const expected = `memberID:${writerId} alarm:NOSPACE`;
    for (const member of members) {
      await waitFor(
        `the alarm on ${member.spec.name}`,
        async () => (await alarmList(member)) === expected,
      );
    }

    for (const step of whileRaised) {
      const reference = await etcdctl(etcd.endpoint, step.args, step.stdin);
      assert.equal(reference.code !== 0, step.refused, `etcd: ${step.args.join(' ')}`);
      for (const member of members) {
        const label = `${member.spec.name}: etcdctl ${step.args.join(' ')}`;
        const actual = await etcdctl(member.endpoint, step.args, step.stdin);
        if (step.refused) assert.match(actual.stderr, new RegExp(NOSPACE), label);
        assert.deepEqual(
          normalize(actual, member.endpoint),
          normalize(reference, etcd.endpoint),
          label,
        );
      }
    }
    const health = await fetch(`http://${followers[1]!.endpoint}/health`);
    assert.equal(health.status, 503, 'a member that did not raise the alarm reports it too');

    // The alarm is replicated state: a restarted member still holds it.
    const restarted = followers[1]!;
    await restarted.stop('SIGTERM');
    await restarted.start(cluster.initialCluster(), 'new');
    assert.equal(await alarmList(restarted), expected);
    await waitForLeader(members);

    // Deletes, compaction and defragmentation are allowed while the alarm is raised.
    for (const endpoint of [leader.endpoint, etcd.endpoint]) {
      const deleted = await etcdctl(endpoint, ['del', 'fill/', '--prefix']);
      assert.equal(deleted.code, 0, deleted.stderr);
      const revision = /"revision":(\d+)/.exec(
        (await etcdctl(endpoint, ['get', 'x', '-w', 'json'])).stdout,
      )![1]!;
      const compacted = await etcdctl(endpoint, ['compact', revision, '--physical']);
      assert.equal(compacted.code, 0, compacted.stderr);
    }
    for (const endpoints of [cluster.endpoints(), etcd.endpoint]) {
      const defrag = await etcdctl(endpoints, ['defrag']);
      assert.equal(defrag.code, 0, defrag.stderr);
    }

    const disarmed = await etcdctl(restarted.endpoint, ['alarm', 'disarm']);
    const reference = await etcdctl(etcd.endpoint, ['alarm', 'disarm']);
    assert.deepEqual(
      normalize(disarmed, restarted.endpoint),
      normalize(reference, etcd.endpoint),
      'alarm disarm',
    );
    assert.equal(disarmed.stdout.trim(), expected);
    for (const member of members) {
      await waitFor(
        `no alarm on ${member.spec.name}`,
        async () => (await alarmList(member)) === '',
      );
      const put = await etcdctl(member.endpoint, ['put', `after/${member.spec.name}`, 'ok']);
      assert.equal(put.code, 0, `${member.spec.name}: ${put.stderr}`);
    }
    assert.equal((await etcdctl(etcd.endpoint, ['put', 'after', 'ok'])).code, 0);
  });
});

function skipReason(): string | false {
  return etcdInstalled() ? false : 'etcd and etcdctl are not installed';
}
