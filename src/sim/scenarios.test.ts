/**
 * Scenario tests on the simulator: each reads as a transcript of commands (elect, propose, crash,
 * partition, heal) and the state the cluster must reach. The safety invariants are checked after
 * every simulated step of every scenario; a violation fails the test with its seed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfChangeTransition, ConfChangeType, type NodeId, Role } from '../raft/index.js';
import { SimCluster, type SimOptions } from './cluster.js';
import { RELIABLE, UNRELIABLE } from './network.js';

function cluster(options: Partial<SimOptions> & { voters: number }): SimCluster {
  return new SimCluster({ seed: 7, ...options });
}

function electLeader(c: SimCluster, maxTicks = 100): NodeId {
  c.runUntil(() => c.leader() !== null && agreeOnLeader(c), maxTicks, 'a leader');
  return c.leader()!;
}

/** Every live, unpaused member follows the same leader (in the same term). */
function agreeOnLeader(c: SimCluster): boolean {
  const leader = c.leader();
  if (leader === null) return false;
  const term = c.node(leader).raft.term;
  return c
    .liveIds()
    .filter((id) => !c.member(id).paused && !c.network.isCut(leader, id))
    .every((id) => c.node(id).raft.lead === leader && c.node(id).raft.term === term);
}

function proposeMany(c: SimCluster, count: number, via?: NodeId): number[] {
  const ids: number[] = [];
  for (let i = 0; i < count; i++) {
    const { id, error } = c.propose(via);
    if (error === null) ids.push(id);
  }
  return ids;
}

function awaitCommitted(c: SimCluster, ids: readonly number[], maxTicks = 200): void {
  c.runUntil(() => ids.every((id) => c.committed.has(id)), maxTicks, `commit of ${ids.length}`);
}

/** Every live member has applied everything the leader committed. */
function awaitConverged(c: SimCluster, maxTicks = 300): void {
  c.runUntil(
    () => {
      const leader = c.leader();
      if (leader === null) return false;
      const commit = c.node(leader).raft.log.committed;
      return c.liveIds().every((id) => c.member(id).sm.applied === commit);
    },
    maxTicks,
    'convergence',
  );
}

test('initial election: one leader, everyone agrees, the term is 2', () => {
  const c = cluster({ voters: 3 });
  const ticks = electLeader(c);
  c.runTicks(2);
  assert.ok(ticks > 0);
  assert.equal(
    c.summary(),
    [
      '1: follower term=2 commit=4 applied=4',
      '2: leader term=2 commit=4 applied=4',
      '3: follower term=2 commit=4 applied=4',
    ].join('\n'),
  );
  // Nothing happens while the cluster is healthy: the leader and the term stay.
  c.runTicks(100);
  assert.equal(c.leader(), 2);
  assert.equal(c.node(1).raft.term, 2);
});

test('re-election after the leader is lost, and the old leader rejoins as a follower', () => {
  const c = cluster({ voters: 3 });
  const first = electLeader(c);
  c.network.isolate(first, c.ids());
  c.runUntil(
    () => c.leader() !== null && c.leader() !== first && c.node(c.leader()!).raft.term > 2,
    100,
    'new leader',
  );
  const second = c.leader()!;
  c.network.heal();
  c.runTicks(20);
  assert.equal(c.leader(), second);
  assert.equal(c.node(first).raft.role, Role.Follower);
  assert.equal(c.node(first).raft.lead, second);
});

test('many elections with minorities cut off: a leader always emerges in the majority', () => {
  const c = cluster({ voters: 5, seed: 11 });
  electLeader(c);
  for (let round = 0; round < 10; round++) {
    const ids = c.rng.shuffle(c.ids());
    const minority = ids.slice(0, 2);
    c.network.partition([minority, ids.slice(2)]);
    c.runUntil(
      () => {
        const leader = c.leader();
        return leader !== null && !minority.includes(leader) && agreeOnLeader(c);
      },
      200,
      `round ${round}: a majority leader`,
    );
    const ids2 = proposeMany(c, 3);
    awaitCommitted(c, ids2);
    c.network.heal();
  }
});

test('basic agreement: each proposal is applied by every member, in the same order', () => {
  const c = cluster({ voters: 3 });
  electLeader(c);
  for (let i = 0; i < 5; i++) {
    const ids = proposeMany(c, 1);
    awaitCommitted(c, ids, 10);
  }
  awaitConverged(c);
  assert.equal(
    c.summary(),
    [
      '1: follower term=2 commit=9 applied=9',
      '2: leader term=2 commit=9 applied=9',
      '3: follower term=2 commit=9 applied=9',
    ].join('\n'),
  );
});

test('agreement with a follower down, and the follower catches up when it returns', () => {
  const c = cluster({ voters: 3 });
  const leader = electLeader(c);
  const follower = c.ids().find((id) => id !== leader)!;
  c.crash(follower);
  awaitCommitted(c, proposeMany(c, 10));
  c.restart(follower);
  awaitConverged(c);
  assert.equal(c.member(follower).sm.applied, c.node(leader).raft.log.committed);
});

test('no agreement without a majority, agreement once the majority returns', () => {
  const c = cluster({ voters: 5 });
  const leader = electLeader(c);
  const followers = c.ids().filter((id) => id !== leader);
  for (const id of followers.slice(0, 3)) c.crash(id);
  const commit = c.node(leader).raft.log.committed;
  const ids = proposeMany(c, 3, leader);
  c.runTicks(50);
  assert.equal(c.node(leader).raft.log.committed, commit);
  assert.equal(ids.filter((id) => c.committed.has(id)).length, 0);
  for (const id of followers.slice(0, 3)) c.restart(id);
  awaitCommitted(c, ids);
});

test('concurrent proposals through every member all commit, in one order everywhere', () => {
  const c = cluster({ voters: 5, seed: 3 });
  electLeader(c);
  const ids: number[] = [];
  for (let round = 0; round < 20; round++) {
    for (const via of c.ids()) ids.push(...proposeMany(c, 2, via));
    c.runTicks(1);
  }
  awaitCommitted(c, ids);
  awaitConverged(c);
  assert.equal(ids.length, 200);
});

test('a deposed leader rejoins with conflicting uncommitted entries, which are replaced', () => {
  const c = cluster({ voters: 3 });
  const old = electLeader(c);
  c.network.isolate(old, c.ids());
  const lost = proposeMany(c, 20, old); // Accepted by the deposed leader, never committed.
  c.runUntil(() => c.leader() !== null && c.leader() !== old, 100, 'new leader');
  const kept = proposeMany(c, 5);
  awaitCommitted(c, kept);
  c.network.heal();
  awaitConverged(c);
  assert.equal(lost.filter((id) => c.committed.has(id)).length, 0);
  assert.equal(c.node(old).raft.role, Role.Follower);
});

test('fast backup: a follower with a long divergent log is repaired in a few round trips', () => {
  const c = cluster({ voters: 5, seed: 5, maxSizePerMsgBytes: 1 << 20 });
  const old = electLeader(c);
  const others = c.ids().filter((id) => id !== old);
  c.network.partition([[old, others[0]!], others.slice(1)]);
  for (let i = 0; i < 10; i++) proposeMany(c, 50, old); // 500 uncommitted entries on `old`.
  c.runUntil(() => c.leader() !== null && c.leader() !== old, 100, 'majority leader');
  awaitCommitted(c, proposeMany(c, 300));
  c.network.heal();
  c.resetCounts();
  const ticks = c.runUntil(() => c.member(old).sm.applied >= c.maxApplied(), 100, 'repair');
  assert.ok(ticks < 10, `repaired in ${ticks} ticks`);
});

test('persistence: the cluster survives a crash of every member at once', () => {
  const c = cluster({ voters: 3 });
  electLeader(c);
  const ids = proposeMany(c, 10);
  awaitCommitted(c, ids);
  c.runTicks(5);
  for (const id of c.ids()) c.crash(id);
  for (const id of c.ids()) c.restart(id);
  electLeader(c);
  awaitConverged(c);
  const more = proposeMany(c, 5);
  awaitCommitted(c, more);
  awaitConverged(c);
  // Everything committed before the crash is still applied, at the same indexes (the checker
  // compares every re-application with the first one).
  assert.ok(c.allApplied(c.maxApplied()));
});

test('persistence: crash of the leader, then of a majority, loses nothing committed', () => {
  const c = cluster({ voters: 5, diskDelayMaxUnits: 20 });
  const leader = electLeader(c);
  awaitCommitted(c, proposeMany(c, 10));
  c.crash(leader);
  electLeader(c);
  awaitCommitted(c, proposeMany(c, 10));
  const majority = c.liveIds().slice(0, 3);
  for (const id of majority) c.crash(id);
  c.restart(leader);
  for (const id of majority) c.restart(id);
  electLeader(c);
  awaitCommitted(c, proposeMany(c, 5));
  awaitConverged(c);
});

/** The Figure 8 test of the MIT 6.824 labs, in spirit: leaders crash right after proposing. */
function figure8(seed: number, unreliable: boolean): void {
  const c = cluster({ voters: 5, seed, diskDelayMaxUnits: 10 });
  if (unreliable) c.setFaults(UNRELIABLE);
  for (let round = 0; round < 60; round++) {
    const leader = c.leader();
    if (leader !== null) proposeMany(c, c.rng.int(1, 5), leader);
    c.runTicks(c.rng.chance(0.1) ? c.rng.int(1, 30) : c.rng.int(0, 3));
    if (leader !== null && c.member(leader).alive) c.crash(leader);
    if (c.liveIds().length < 3) {
      const down = c.ids().filter((id) => !c.member(id).alive);
      c.restart(c.rng.pick(down));
    }
  }
  c.setFaults(RELIABLE);
  for (const id of c.ids()) if (!c.member(id).alive) c.restart(id);
  electLeader(c, 300);
  awaitCommitted(c, proposeMany(c, 1), 300);
  awaitConverged(c);
}

test('Figure 8, reliable network', () => {
  for (const seed of [1, 2, 3]) figure8(seed, false);
});

test('Figure 8, unreliable network', () => {
  for (const seed of [1, 2, 3]) figure8(seed, true);
});

test('churn: crashes and restarts under continuous proposals, unreliable network', () => {
  const c = cluster({ voters: 5, seed: 13, snapshotEveryEntries: 30, compactKeepEntries: 5 });
  c.setFaults(UNRELIABLE);
  for (let tick = 0; tick < 400; tick++) {
    proposeMany(c, c.rng.int(0, 2));
    if (c.rng.chance(0.05)) {
      const live = c.liveIds();
      if (live.length > 3) c.crash(c.rng.pick(live));
    }
    if (c.rng.chance(0.05)) {
      const down = c.ids().filter((id) => !c.member(id).alive);
      if (down.length > 0) c.restart(c.rng.pick(down));
    }
    c.runTicks(1);
  }
  c.setFaults(RELIABLE);
  for (const id of c.ids()) if (!c.member(id).alive) c.restart(id);
  electLeader(c, 200);
  awaitCommitted(c, proposeMany(c, 3), 300);
  awaitConverged(c);
  assert.ok(c.committed.size > 200, `${c.committed.size} committed`);
});

test('snapshot: a crashed follower far behind the compacted log is sent a snapshot', () => {
  const c = cluster({ voters: 3, snapshotEveryEntries: 20, compactKeepEntries: 0 });
  const leader = electLeader(c);
  const lagging = c.ids().find((id) => id !== leader)!;
  c.crash(lagging);
  for (let i = 0; i < 10; i++) {
    awaitCommitted(c, proposeMany(c, 10));
  }
  assert.ok(c.member(leader).storage.firstIndex() > 50, 'the leader compacted its log');
  c.setFaults(UNRELIABLE);
  c.restart(lagging);
  c.resetCounts();
  awaitConverged(c, 500);
  assert.ok((c.sentByType.get(7) ?? 0) >= 1, 'a snapshot was sent');
  assert.ok(c.member(lagging).storage.snapshot().metadata.index > 50);
});

test('pre-vote: a member rejoining after a partition does not disrupt the leader', () => {
  const c = cluster({ voters: 3, preVote: true });
  const leader = electLeader(c);
  const loner = c.ids().find((id) => id !== leader)!;
  c.network.isolate(loner, c.ids());
  c.runTicks(200);
  assert.equal(c.node(loner).raft.term, 2, 'pre-votes do not raise the term');
  c.network.heal();
  c.runTicks(50);
  assert.equal(c.leader(), leader);
  assert.equal(c.node(leader).raft.term, 2);
});

test('check-quorum: a leader cut off from the majority steps down', () => {
  const c = cluster({ voters: 3, checkQuorum: true });
  const leader = electLeader(c);
  c.network.isolate(leader, c.ids());
  c.runUntil(() => c.node(leader).raft.role !== Role.Leader, 30, 'step-down');
  c.runUntil(() => c.leader() !== null && c.leader() !== leader, 100, 'new leader');
});

test('leadership transfer hands leadership to the chosen member', () => {
  const c = cluster({ voters: 5 });
  const leader = electLeader(c);
  const target = c.ids().find((id) => id !== leader)!;
  c.node(leader).transferLeader(target);
  c.runUntil(() => c.leader() === target && agreeOnLeader(c), 30, 'transfer');
  assert.equal(c.node(leader).raft.lead, target);
  awaitCommitted(c, proposeMany(c, 3));
});

test('learner: added, catches up, promoted to voter, then a voter is removed', () => {
  const c = cluster({ voters: 3 });
  electLeader(c);
  awaitCommitted(c, proposeMany(c, 20));
  c.addMember(4);
  const single = (type: ConfChangeType, nodeId: NodeId) => ({
    transition: ConfChangeTransition.Auto,
    changes: [{ type, nodeId }],
    context: new Uint8Array(0),
  });
  assert.equal(c.proposeConfChange(single(ConfChangeType.AddLearner, 4)), null);
  awaitConverged(c);
  assert.deepEqual(c.node(c.leader()!).status().config.learners, [4]);
  assert.equal(c.proposeConfChange(single(ConfChangeType.AddNode, 4)), null);
  c.runUntil(() => c.node(4).status().config.voters.length === 4, 50, 'promotion');
  assert.deepEqual(c.node(4).status().config.voters, [1, 2, 3, 4]);
  const removed = c.ids().find((id) => id !== c.leader() && id !== 4)!;
  assert.equal(c.proposeConfChange(single(ConfChangeType.RemoveNode, removed)), null);
  c.runUntil(() => !c.node(c.leader()!).status().config.voters.includes(removed), 50, 'removal');
  c.crash(removed);
  awaitCommitted(c, proposeMany(c, 5));
  awaitConverged(c);
});

test('ReadIndex on the leader and on a follower returns an index covering every prior write', () => {
  const c = cluster({ voters: 3 });
  const leader = electLeader(c);
  awaitCommitted(c, proposeMany(c, 10));
  const follower = c.ids().find((id) => id !== leader)!;
  assert.equal(c.readIndex(leader, new Uint8Array([1])), null);
  assert.equal(c.readIndex(follower, new Uint8Array([2])), null);
  c.runUntil(
    () => c.member(leader).readStates.length === 1 && c.member(follower).readStates.length === 1,
    10,
    'reads',
  );
  assert.equal(c.member(leader).readStates[0]!.index, c.maxApplied());
  assert.equal(c.member(follower).readStates[0]!.index, c.maxApplied());
});

test('a paused leader (e.g. a long GC pause) is replaced, and on resuming follows the new one', () => {
  const c = cluster({ voters: 3, preVote: true, checkQuorum: true });
  const old = electLeader(c);
  c.pause(old);
  const stale = proposeMany(c, 5, old); // Accepted just before the pause took effect.
  c.runUntil(() => c.leader() !== null && c.leader() !== old, 100, 'replacement');
  awaitCommitted(c, proposeMany(c, 5));
  c.resume(old);
  c.runUntil(() => c.node(old).raft.role === Role.Follower, 30, 'old leader steps down');
  awaitConverged(c);
  assert.equal(stale.filter((id) => c.committed.has(id)).length, 0);
});

test('asymmetric link: a leader that can send but not hear back steps down with check-quorum', () => {
  const c = cluster({ voters: 3, preVote: true, checkQuorum: true });
  const leader = electLeader(c);
  for (const id of c.ids()) if (id !== leader) c.network.cutLink(id, leader);
  c.runUntil(() => c.node(leader).raft.role !== Role.Leader, 40, 'step-down');
  // The others still hear the old leader's heartbeats until it steps down, then elect one of
  // themselves; the cut links keep the old leader from ever being re-elected.
  c.runUntil(() => c.leader() !== null && c.leader() !== leader, 200, 'new leader');
  awaitCommitted(c, proposeMany(c, 3));
});
