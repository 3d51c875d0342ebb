/**
 * Process faults under write load against a 3-member cluster of real `shoal start` processes:
 * a follower frozen with SIGSTOP (writes continue through the others, and it catches up after
 * SIGCONT), the leader frozen (the others elect a new leader within a few election timeouts, the
 * old leader steps down and catches up after SIGCONT), and a membership change (learner add,
 * promote, voter removal) while writers run. In every case no write that etcdctl saw acknowledged
 * may be missing afterwards on any member.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { etcdctl } from './support/etcdctl.js';
import {
  endpointStatus,
  type MemberProcess,
  ProcessCluster,
  waitFor,
  waitForLeader,
} from './support/member-process.js';

const WRITERS = 3;
/** Writes each phase waits to see acknowledged before and during a fault, so the fault is under load. */
const WRITES_PER_PHASE = 15;
/** The members run with --election-timeout=500; a new leader is due within 2 s of losing the old. */
const ELECTION_BOUND_MS = 2_000;
/** Polling with etcdctl (a process per call) on a busy 2-core machine adds its own delay. */
const POLL_SLACK_MS = 2_000;

/** Writers that put fresh keys under `prefix` through whatever endpoints `endpoints()` names. */
class WriteLoad {
  readonly acknowledged = new Set<string>();
  #stopping = false;
  readonly #loops: Promise<void>[];

  constructor(prefix: string, endpoints: () => string) {
    this.#loops = Array.from({ length: WRITERS }, async (_, id) => {
      for (let n = 0; !this.#stopping; n++) {
        const key = `${prefix}/${id}/${String(n).padStart(5, '0')}`;
        const result = await etcdctl(endpoints(), ['--command-timeout=3s', 'put', key, `v${n}`]);
        if (result.code === 0 && result.stdout.trim() === 'OK') this.acknowledged.add(key);
      }
    });
  }

  /** Waits (bounded) until `count` more writes than now have been acknowledged. */
  async more(count: number, what: string, timeoutMs = 30_000): Promise<void> {
    const target = this.acknowledged.size + count;
    await waitFor(what, () => this.acknowledged.size >= target, timeoutMs);
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.all(this.#loops);
  }
}

/** The member's own (serializable) view of the keys under `prefix`. */
async function keysOn(member: MemberProcess, prefix: string): Promise<Set<string>> {
  const result = await etcdctl(member.endpoint, [
    'get',
    `${prefix}/`,
    '--prefix',
    '--keys-only',
    '--consistency=s',
  ]);
  assert.equal(result.code, 0, result.stderr);
  return new Set(result.stdout.split('\n').filter((line) => line.length > 0));
}

/** Waits until every member holds every acknowledged key (each read from its own state). */
async function assertNoneLost(
  members: readonly MemberProcess[],
  prefix: string,
  acknowledged: ReadonlySet<string>,
): Promise<void> {
  assert.ok(acknowledged.size > 0, 'no write was acknowledged');
  for (const member of members) {
    let lost: string[] = [];
    try {
      await waitFor(`${member.spec.name} to hold every acknowledged write`, async () => {
        const present = await keysOn(member, prefix);
        lost = [...acknowledged].filter((key) => !present.has(key));
        return lost.length === 0;
      });
    } catch {
      assert.deepEqual(lost.slice(0, 10), [], `${member.spec.name} lost acknowledged writes`);
    }
  }
}

interface Read {
  revision: number;
  value: string | null;
}

/** A serializable read of one key on one member: its value and the member's store revision. */
async function localRead(member: MemberProcess, key: string): Promise<Read> {
  const result = await etcdctl(member.endpoint, ['get', key, '-w', 'json', '--consistency=s']);
  assert.equal(result.code, 0, result.stderr);
  const parsed = JSON.parse(result.stdout) as {
    header: { revision: number };
    kvs?: { value: string }[];
  };
  const kv = parsed.kvs?.[0];
  return {
    revision: Number(parsed.header.revision),
    value: kv ? Buffer.from(kv.value, 'base64').toString('utf8') : null,
  };
}

/** Writes a marker through the leader, then waits until `member` reads it at the leader's revision. */
async function assertCaughtUp(member: MemberProcess, leader: MemberProcess, key: string) {
  const put = await etcdctl(leader.endpoint, ['put', key, 'final']);
  assert.equal(put.code, 0, put.stderr);
  const onLeader = await localRead(leader, key);
  assert.equal(onLeader.value, 'final');
  const onMember = await waitFor(`${member.spec.name} to catch up`, async () => {
    const read = await localRead(member, key);
    return read.revision >= onLeader.revision ? read : undefined;
  });
  assert.deepEqual(onMember, onLeader);
}

function signal(member: MemberProcess, name: 'SIGSTOP' | 'SIGCONT'): void {
  assert.ok(member.child, `${member.spec.name} is not running`);
  assert.ok(member.child.kill(name), `could not send ${name} to ${member.spec.name}`);
}

describe('faults under write load', { timeout: 150_000 }, () => {
  let cluster: ProcessCluster;
  const frozen = new Set<MemberProcess>();

  before(async () => {
    cluster = await ProcessCluster.plan(3);
    await cluster.startAll();
  });

  after(async () => {
    // A stopped process still dies on SIGKILL, but continuing it first keeps its exit ordinary.
    for (const member of frozen) member.child?.kill('SIGCONT');
    await cluster?.stopAll();
  });

  it('keeps writing while a follower is frozen, and the follower catches up', async () => {
    const leader = await waitForLeader(cluster.members);
    const [follower, other] = cluster.members.filter((m) => m !== leader);
    const load = new WriteLoad('freeze-follower', () => cluster.endpoints([leader, other!]));
    await load.more(WRITES_PER_PHASE, 'writes before the freeze');
    signal(follower!, 'SIGSTOP');
    frozen.add(follower!);
    await load.more(WRITES_PER_PHASE, 'writes while the follower is frozen');
    signal(follower!, 'SIGCONT');
    frozen.delete(follower!);
    await load.more(WRITES_PER_PHASE, 'writes after the follower resumes');
    await load.stop();

    // Which member leads now is not asserted: on a loaded machine a late heartbeat may lawfully
    // start an election. The resumed follower must hold exactly what the leader holds.
    const current = await waitForLeader(cluster.members);
    await assertCaughtUp(follower!, current, 'freeze-follower-last');
    await assertNoneLost(cluster.members, 'freeze-follower', load.acknowledged);
  });

  it('elects a new leader when the leader is frozen, and the old leader steps down', async (t) => {
    const leader = await waitForLeader(cluster.members);
    const others = cluster.members.filter((m) => m !== leader);
    const termBefore = (await endpointStatus(leader))!.raftTerm;
    let stopped = false;
    const load = new WriteLoad('freeze-leader', () =>
      cluster.endpoints(stopped ? others : cluster.members),
    );
    await load.more(WRITES_PER_PHASE, 'writes before the freeze');
    signal(leader, 'SIGSTOP');
    frozen.add(leader);
    stopped = true;
    const frozenAt = performance.now();
    // The bound is the deadline of the wait: a leader must be agreed within it.
    const newLeader = await waitForLeader(others, ELECTION_BOUND_MS + POLL_SLACK_MS);
    const electedAfterMs = performance.now() - frozenAt;
    assert.notEqual(newLeader, leader);
    const termAfter = (await endpointStatus(newLeader))!.raftTerm;
    assert.ok(termAfter > termBefore, `term ${termAfter} did not advance past ${termBefore}`);
    await load.more(WRITES_PER_PHASE, 'writes after the new election');

    signal(leader, 'SIGCONT');
    frozen.delete(leader);
    stopped = false;
    await load.more(WRITES_PER_PHASE, 'writes after the old leader resumes');
    await load.stop();
    const agreed = await waitForLeader(cluster.members);
    assert.notEqual(agreed, leader, 'the old leader did not step down');
    await assertCaughtUp(leader, agreed, 'freeze-leader-last');
    await assertNoneLost(cluster.members, 'freeze-leader', load.acknowledged);
    // Informational only: wall-clock figures are not asserted beyond the wait's deadline.
    t.diagnostic(`new leader agreed ${Math.round(electedAfterMs)} ms after SIGSTOP`);
  });

  it('adds a learner, promotes it and removes a voter while writes run', async () => {
    const leader = await waitForLeader(cluster.members);
    const victim = cluster.members.find((m) => m !== leader)!;
    const keepers = cluster.members.filter((m) => m !== victim);
    const newcomer = await cluster.addSpec();
    let joined = false;
    // The victim is left out from the start: its removal would fail writes aimed at it.
    const load = new WriteLoad('membership', () =>
      cluster.endpoints(joined ? [...keepers, newcomer] : keepers),
    );
    await load.more(WRITES_PER_PHASE, 'writes before the add');

    const add = await etcdctl(leader.endpoint, [
      'member',
      'add',
      newcomer.spec.name,
      `--peer-urls=${newcomer.peerUrl}`,
      '--learner',
    ]);
    assert.equal(add.code, 0, add.stderr);
    const idHex = /Member\s+([0-9a-f]+)\s+added/.exec(add.stdout)?.[1];
    assert.ok(idHex, add.stdout);
    await newcomer.start(cluster.initialCluster(), 'existing');
    await load.more(WRITES_PER_PHASE, 'writes while the learner catches up');

    // etcd refuses to promote a learner that lags; like an operator, retry until it is in sync.
    await waitFor(
      'the learner to be promoted',
      async () => {
        const promote = await etcdctl(cluster.endpoints(keepers), ['member', 'promote', idHex]);
        if (promote.code === 0) return true;
        if (!/not in sync|not leader|timed out|no leader/.test(promote.stderr)) {
          throw new Error(`promote failed: ${promote.stderr}`);
        }
        return false;
      },
      30_000,
      300,
    );
    joined = true;
    await load.more(WRITES_PER_PHASE, 'writes after the promotion');

    const victimId = await memberIdOf(leader, victim);
    const remove = await etcdctl(cluster.endpoints(keepers), ['member', 'remove', victimId]);
    assert.equal(remove.code, 0, remove.stderr);
    assert.equal(await victim.exited(20_000), 0, 'the removed member did not exit cleanly');
    await load.more(WRITES_PER_PHASE, 'writes after the removal');
    await load.stop();

    const remaining = [...keepers, newcomer];
    const listed = await waitFor('a member list without the removed member', async () => {
      const members = await memberList(leader);
      return members.length === 3 ? members : undefined;
    });
    assert.deepEqual(
      listed.map((m) => [m.name, m.peerURLs, m.isLearner ?? false]).sort(),
      remaining.map((m) => [m.spec.name, [m.peerUrl], false]).sort(),
    );
    await waitForLeader(remaining);
    await assertNoneLost(remaining, 'membership', load.acknowledged);
  });
});

interface ListedMember {
  ID: number | string;
  name?: string;
  peerURLs: string[];
  isLearner?: boolean;
}

async function memberList(via: MemberProcess): Promise<ListedMember[]> {
  const result = await etcdctl(via.endpoint, ['member', 'list', '-w', 'json']);
  assert.equal(result.code, 0, result.stderr);
  // Member ids are 64-bit; JSON.parse would round them, so they are quoted before parsing.
  const text = result.stdout.replace(/"ID":(\d+)/g, '"ID":"$1"');
  return (JSON.parse(text) as { members: ListedMember[] }).members;
}

async function memberIdOf(via: MemberProcess, member: MemberProcess): Promise<string> {
  const found = (await memberList(via)).find((m) => m.peerURLs.includes(member.peerUrl));
  assert.ok(found, `no member with ${member.peerUrl}`);
  return BigInt(found.ID).toString(16);
}
