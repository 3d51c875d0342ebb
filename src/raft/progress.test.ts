/** Unit tests for the leader's bookkeeping: the inflight window, progress states and quorums. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { changeConfig, configFromConfState } from './confchange.js';
import {
  Inflights,
  majorityCommitted,
  Progress,
  ProgressState,
  ProgressTracker,
  VoteResult,
} from './progress.js';
import { ConfChangeTransition, ConfChangeType, EMPTY_CONF_STATE, RaftError } from './types.js';

test('inflights: bounded by count and bytes, freed by acknowledgement', () => {
  const window = new Inflights(3, 1000);
  window.add(5, 100);
  window.add(9, 100);
  assert.equal(window.full(), false);
  window.add(12, 100);
  assert.equal(window.full(), true);
  assert.throws(() => window.add(13, 1), /full window/);
  window.freeLE(9);
  assert.equal(window.count, 1);
  const bytes = new Inflights(10, 250);
  bytes.add(1, 200);
  bytes.add(2, 60);
  assert.equal(bytes.full(), true, 'over the byte budget');
});

test('progress: probe sends one message at a time, replicate streams, rejections back off', () => {
  const pr = new Progress(11, false, 4, Number.POSITIVE_INFINITY);
  assert.equal(pr.state, ProgressState.Probe);
  pr.sentEntries(15, 10);
  assert.equal(pr.isPaused(), true, 'one probe outstanding');
  assert.equal(pr.maybeDecrTo(10, 6), true);
  assert.equal(pr.next, 7, 'jumps to the hint');
  assert.equal(pr.maybeDecrTo(3, 1), false, 'a stale rejection is ignored');
  assert.equal(pr.maybeUpdate(6), true);
  pr.becomeReplicate();
  for (const last of [8, 10, 12, 14]) pr.sentEntries(last, 10);
  assert.equal(pr.next, 15);
  assert.equal(pr.isPaused(), true, 'window of 4 is full');
  pr.inflights.freeLE(10);
  assert.equal(pr.isPaused(), false);
  assert.equal(pr.maybeDecrTo(12, 9), true);
  assert.equal(pr.next, 7, 'replicate falls back to match + 1');
});

test('quorums: the majority index is the middle of the sorted match indexes (seeded)', () => {
  // Against the plain definition, for voter sets of 1 to 9 and matches with ties; calls follow
  // each other so a scratch array left longer by a bigger set must not leak into a smaller one.
  let seed = 20261124;
  const next = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed;
  };
  for (let round = 0; round < 2000; round++) {
    const n = 1 + (next() % 9);
    const matches = new Map<number, number>();
    for (let id = 1; id <= n; id++) matches.set(id, next() % 6);
    const sorted = [...matches.values()].sort((a, b) => b - a);
    assert.equal(
      majorityCommitted(new Set(matches.keys()), (id) => matches.get(id)!),
      sorted[Math.floor(n / 2)],
      `round ${round} (seed sequence from 20261124): matches ${sorted.join(',')}`,
    );
  }
});

test('quorums: majority commit index, and joint configurations need both halves', () => {
  const matches = new Map([
    [1, 10],
    [2, 7],
    [3, 3],
    [4, 9],
    [5, 1],
  ]);
  assert.equal(
    majorityCommitted(new Set([1, 2, 3, 4, 5]), (id) => matches.get(id)!),
    7,
  );
  assert.equal(
    majorityCommitted(new Set([1, 2, 3]), (id) => matches.get(id)!),
    7,
  );
  const trk = new ProgressTracker(4, Number.POSITIVE_INFINITY);
  trk.config = configFromConfState({
    ...EMPTY_CONF_STATE,
    voters: [1, 2, 3],
    votersOutgoing: [3, 4, 5],
  });
  trk.recordVote(1, true);
  trk.recordVote(2, true);
  assert.equal(trk.voteResult(), VoteResult.Pending, 'incoming won, outgoing undecided');
  trk.recordVote(4, false);
  trk.recordVote(5, false);
  assert.equal(trk.voteResult(), VoteResult.Lost);
});

test('conf changes: one voter at a time, joint for more, invalid ones refused', () => {
  const base = configFromConfState({ ...EMPTY_CONF_STATE, voters: [1, 2, 3] });
  const change = (changes: { type: 0 | 1 | 2; nodeId: number }[], transition = 0) =>
    changeConfig(base, {
      transition: transition as 0,
      changes,
      context: new Uint8Array(0),
    });
  const added = change([{ type: ConfChangeType.AddNode, nodeId: 4 }]);
  assert.deepEqual([...added.voters], [1, 2, 3, 4]);
  assert.equal(added.votersOutgoing.size, 0);
  const joint = change([
    { type: ConfChangeType.AddNode, nodeId: 4 },
    { type: ConfChangeType.RemoveNode, nodeId: 1 },
  ]);
  assert.deepEqual([...joint.votersOutgoing], [1, 2, 3]);
  assert.equal(joint.autoLeave, true);
  const demoted = change(
    [{ type: ConfChangeType.AddLearner, nodeId: 3 }],
    ConfChangeTransition.JointExplicit,
  );
  assert.deepEqual([...demoted.learnersNext], [3], 'a demoted voter learns once the joint ends');
  const left = changeConfig(demoted, { transition: 0, changes: [], context: new Uint8Array(0) });
  assert.deepEqual([...left.learners], [3]);
  assert.deepEqual([...left.voters], [1, 2]);
  const refused = (fn: () => unknown) =>
    assert.throws(fn, (e: unknown) => e instanceof RaftError && e.code === 'BAD_CONF_CHANGE');
  // Leaving a joint configuration when not in one; removing the last voter; changing a joint one.
  refused(() => changeConfig(base, { transition: 0, changes: [], context: new Uint8Array(0) }));
  refused(() =>
    changeConfig(configFromConfState({ ...EMPTY_CONF_STATE, voters: [1] }), {
      transition: 0,
      changes: [{ type: ConfChangeType.RemoveNode, nodeId: 1 }],
      context: new Uint8Array(0),
    }),
  );
  refused(() =>
    changeConfig(joint, {
      transition: 0,
      changes: [{ type: 0, nodeId: 9 }],
      context: new Uint8Array(0),
    }),
  );
});
