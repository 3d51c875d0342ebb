/** Unit tests of the autopilot's pure decisions (autopilot.ts), driven with a hand-made clock. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type AutopilotInput,
  AutopilotPlanner,
  CATCH_UP_ENTRIES_MAX,
  type GossipMemberView,
  type RaftMemberView,
} from './autopilot.js';

const options = { targetVoters: 3, stabilizationMs: 1000, deadVoterMs: 2000 };
const url = (n: number) => `http://127.0.0.1:${2000 + n}`;

function voter(id: number, match = 100): RaftMemberView {
  return { id, peerUrls: [url(id)], isLearner: false, match };
}
function learner(id: number, match = 100): RaftMemberView {
  return { id, peerUrls: [url(id)], isLearner: true, match };
}
function gossip(id: number, state = 'alive', role = 'voter'): GossipMemberView {
  return { name: `m${id}`, state, role, peerUrls: [url(id)] };
}
function input(raft: RaftMemberView[], swim: GossipMemberView[]): AutopilotInput {
  return { leaderId: 1, leaderLastIndex: 100, raft, gossip: swim };
}

describe('AutopilotPlanner', () => {
  it('does nothing for a healthy cluster at the target size', () => {
    const planner = new AutopilotPlanner(options);
    const view = input([voter(1), voter(2), voter(3)], [gossip(1), gossip(2), gossip(3)]);
    assert.equal(planner.step(view, 0), null);
  });

  it('adds an alive gossip member that raft does not know as a learner', () => {
    const planner = new AutopilotPlanner(options);
    const view = input(
      [voter(1), voter(2), voter(3)],
      [gossip(1), gossip(2), gossip(3), gossip(4, 'alive', 'none')],
    );
    assert.deepEqual(planner.step(view, 0), { type: 'addLearner', peerUrls: [url(4)], name: 'm4' });
    const suspect = input(
      [voter(1), voter(2), voter(3)],
      [gossip(1), gossip(4, 'suspect', 'none')],
    );
    assert.equal(new AutopilotPlanner(options).step(suspect, 0), null);
    // A member just removed by an operator still gossips until it stops: it is not added back.
    const removed = input(
      [voter(1), voter(2), voter(3)],
      [gossip(1), gossip(4, 'alive', 'removed')],
    );
    assert.equal(new AutopilotPlanner(options).step(removed, 0), null);
  });

  it('promotes a learner to grow to the target only after it stayed healthy and caught up', () => {
    const planner = new AutopilotPlanner(options);
    const raft = [voter(1), voter(2), learner(3)];
    const swim = [gossip(1), gossip(2), gossip(3)];
    assert.equal(planner.step(input(raft, swim), 0), null);
    assert.equal(planner.step(input(raft, swim), 999), null);
    // Falling behind restarts the stabilization time.
    const behind = [voter(1), voter(2), learner(3, 100 - CATCH_UP_ENTRIES_MAX - 1)];
    assert.equal(planner.step(input(behind, swim), 1000), null);
    assert.equal(planner.step(input(raft, swim), 1500), null);
    assert.deepEqual(planner.step(input(raft, swim), 2500), {
      type: 'promote',
      id: 3,
      reason: 'grow',
    });
  });

  it('keeps a learner a learner when the voters are at the target and all alive', () => {
    const planner = new AutopilotPlanner(options);
    const view = input(
      [voter(1), voter(2), voter(3), learner(4)],
      [gossip(1), gossip(2), gossip(3), gossip(4)],
    );
    assert.equal(planner.step(view, 0), null);
    assert.equal(planner.step(view, 10_000), null);
  });

  it('replaces a dead voter: promotes a healthy learner, then removes the dead voter', () => {
    const planner = new AutopilotPlanner(options);
    const swim = [gossip(1), gossip(2), gossip(3, 'dead'), gossip(4)];
    const before = [voter(1), voter(2), voter(3), learner(4)];
    assert.equal(planner.step(input(before, swim), 0), null);
    assert.equal(planner.step(input(before, swim), 1999), null);
    assert.deepEqual(planner.step(input(before, swim), 2000), {
      type: 'promote',
      id: 4,
      reason: 'replace',
    });
    const after = [voter(1), voter(2), voter(3), voter(4)];
    assert.deepEqual(planner.step(input(after, swim), 3000), { type: 'remove', id: 3 });
    assert.equal(
      planner.step(
        input(
          [voter(1), voter(2), voter(4)],
          swim.filter((g) => g.name !== 'm3'),
        ),
        4000,
      ),
      null,
    );
  });

  it('never removes a dead voter without a replacement, nor below a live majority', () => {
    const planner = new AutopilotPlanner(options);
    const swim = [gossip(1), gossip(2), gossip(3, 'dead')];
    assert.equal(planner.step(input([voter(1), voter(2), voter(3)], swim), 0), null);
    assert.equal(planner.step(input([voter(1), voter(2), voter(3)], swim), 60_000), null);
    const five = new AutopilotPlanner({ ...options, targetVoters: 5 });
    const raft = [voter(1), voter(2), voter(3), voter(4), voter(5), voter(6)];
    const dead = [
      gossip(1),
      gossip(2),
      gossip(3),
      gossip(4, 'dead'),
      gossip(5, 'dead'),
      gossip(6, 'dead'),
    ];
    five.step(input(raft, dead), 0);
    // 6 voters, 3 dead: removing one leaves 5 with 3 alive, a majority.
    assert.deepEqual(five.step(input(raft, dead), 5000), { type: 'remove', id: 4 });
  });

  it('refuses a voter target other than 3 or 5', () => {
    assert.throws(() => new AutopilotPlanner({ ...options, targetVoters: 4 }));
  });
});
