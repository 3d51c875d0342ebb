/**
 * Protocol tests of the raft core over the synchronous TestNetwork: elections, the persistence
 * contract, replication, Figure 8, fast backup, message counts, pre-vote, check-quorum, transfer,
 * learners, ReadIndex, snapshots and refused requests. Where the exact message flow matters the
 * test compares a transcript.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeConfChange, encodeConfChange } from './confchange.js';
import { MemoryStorage } from './memory-storage.js';
import { RawNode } from './raw-node.js';
import { TestNetwork, testConfig } from './testing.js';
import {
  ConfChangeTransition,
  ConfChangeType,
  EntryType,
  type Message,
  MessageType,
  RaftError,
  Role,
} from './types.js';

const data = (n: number) => new Uint8Array([n]);
const single = (type: ConfChangeType, nodeId: number) => ({
  transition: ConfChangeTransition.Auto,
  changes: [{ type, nodeId }],
  context: new Uint8Array(0),
});

function elect(net: TestNetwork, id: number): void {
  net.settle(); // Apply pending conf changes first: a member does not campaign before that.
  net.node(id).campaign();
  net.settle();
  assert.equal(net.node(id).status().role, Role.Leader);
}

function codeOf(fn: () => void): string | null {
  try {
    fn();
    return null;
  } catch (error) {
    if (error instanceof RaftError) return error.code;
    throw error;
  }
}

test('election: a campaign in a healthy cluster, as a transcript', () => {
  const net = new TestNetwork([1, 2, 3]);
  net.settle();
  net.takeTranscript();
  net.node(1).campaign();
  net.settle();
  assert.deepEqual(net.takeTranscript(), [
    '1->2 Vote term=2 last=3@1',
    '1->3 Vote term=2 last=3@1',
    '2->1 VoteResp term=2 grant',
    '3->1 VoteResp term=2 grant',
    '1->2 App term=2 prev=3@1 entries=[4@2] commit=3',
    '1->3 App term=2 prev=3@1 entries=[4@2] commit=3',
    '2->1 AppResp term=2 index=4',
    '3->1 AppResp term=2 index=4',
    '1->2 App term=2 prev=4@2 entries=[] commit=4',
    '1->3 App term=2 prev=4@2 entries=[] commit=4',
    '2->1 AppResp term=2 index=4',
    '3->1 AppResp term=2 index=4',
  ]);
  for (const id of [1, 2, 3]) assert.equal(net.node(id).status().commit, 4);
});

test('elections are started by randomized timeouts, and a lost leader is replaced', () => {
  const net = new TestNetwork([1, 2, 3]);
  let ticks = 0;
  while (net.node(1).status().lead === 0 && ticks < 100) {
    net.tickAll();
    ticks++;
  }
  const first = net.node(1).status().lead;
  assert.notEqual(first, 0);
  assert.ok(ticks >= 10 && ticks < 20, `elected after ${ticks} ticks`);
  net.isolate(first);
  const others = [1, 2, 3].filter((id) => id !== first);
  for (let i = 0; i < 40 && net.node(others[0]!).status().lead === first; i++) net.tickAll();
  for (let i = 0; i < 40 && net.node(others[0]!).status().lead === 0; i++) net.tickAll();
  const second = net.node(others[0]!).status().lead;
  assert.ok(others.includes(second), `new leader ${second} is one of ${others}`);
  assert.ok(net.node(second).status().term > net.node(first).status().term);
});

test('persistence: a candidate counts its own vote only after its hard state is durable', () => {
  const storage = new MemoryStorage();
  const node = new RawNode(testConfig(1, storage, {}));
  node.bootstrap([1]);
  const first = node.ready();
  storage.save(first.hardState, first.entries);
  node.advance();
  node.ready(); // Applies the bootstrap entry.
  node.advance();
  node.campaign();
  assert.equal(node.status().role, Role.Candidate);
  const rd = node.ready();
  assert.deepEqual(rd.hardState, { term: 2, vote: 1, commit: 1 });
  assert.equal(rd.mustSync, true);
  // Not yet durable: still a candidate even though it is the only voter.
  assert.equal(node.status().role, Role.Candidate);
  storage.save(rd.hardState, rd.entries);
  node.advance();
  assert.equal(node.status().role, Role.Leader);
});

test('persistence: votes and append acks wait for persistence, the leader appends go at once', () => {
  const net = new TestNetwork([1, 2, 3]);
  net.settle();
  const voter = net.node(2);
  voter.step(voteRequest(1, 2, 2, 3, 1));
  const rd = voter.ready();
  assert.deepEqual(rd.messages, []);
  assert.deepEqual(
    rd.messagesAfterPersist.map((m) => [m.type, m.reject]),
    [[MessageType.VoteResp, false]],
  );
  assert.deepEqual(rd.hardState, { term: 2, vote: 1, commit: 3 });
});

function voteRequest(
  from: number,
  to: number,
  term: number,
  index: number,
  logTerm: number,
): Message {
  return {
    type: MessageType.Vote,
    from,
    to,
    term,
    index,
    logTerm,
    entries: [],
    commit: 0,
    snapshot: null,
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(0),
  };
}

test('persistence: the leader counts itself toward a commit only for entries it made durable', () => {
  const net = new TestNetwork([1, 2, 3]);
  elect(net, 1);
  net.isolate(3);
  const leader = net.node(1);
  leader.propose(data(1));
  const rd = leader.ready(); // The leader is "writing" entry 5 and sending it at the same time.
  assert.deepEqual(
    rd.messages.filter((m) => m.type === MessageType.App).map((m) => m.to),
    [2, 3],
  );
  const follower = net.node(2);
  follower.step(rd.messages.find((m) => m.to === 2)!);
  const frd = follower.ready();
  net.members.get(2)!.storage.save(frd.hardState, frd.entries);
  follower.advance();
  leader.step(frd.messagesAfterPersist[0]!);
  // Follower 2 has entry 5 durable, the leader does not yet: 1 of 3 is not a quorum.
  assert.equal(leader.status().commit, 4);
  net.members.get(1)!.storage.save(rd.hardState, rd.entries);
  leader.advance();
  assert.equal(leader.status().commit, 5);
});

test('at most one Ready is outstanding', () => {
  const net = new TestNetwork([1]);
  const node = net.node(1);
  node.ready();
  assert.equal(node.hasReady(), false);
  assert.equal(
    codeOf(() => node.ready()),
    'READY_OUTSTANDING',
  );
  node.advance();
  assert.equal(
    codeOf(() => node.advance()),
    'READY_OUTSTANDING',
  );
});

test('drain: while a write is in flight, new appends go out and newly committed entries apply', () => {
  const net = new TestNetwork([1, 2, 3]);
  elect(net, 1);
  const leader = net.node(1);
  assert.equal(
    codeOf(() => leader.drain()),
    'READY_OUTSTANDING',
  );
  leader.propose(data(1));
  const first = leader.ready(); // Entry 5: the leader starts writing it and sends it.
  net.members.get(1)!.storage.save(first.hardState, first.entries); // Durable, not advanced.
  const follower = net.node(2);
  follower.step(first.messages.find((m) => m.to === 2 && m.type === MessageType.App)!);
  const frd = follower.ready();
  net.members.get(2)!.storage.save(frd.hardState, frd.entries);
  follower.advance();
  leader.advance(); // The leader counts entry 5 as its own now.
  leader.propose(data(2));
  const second = leader.ready(); // Entry 6 is being written; entry 5 is not committed yet.
  assert.deepEqual(
    second.entries.map((e) => e.index),
    [6],
  );
  assert.deepEqual(second.committedEntries, []);
  // Follower 2's ack for entry 5 arrives while entry 6 is being written: 5 is committed now.
  leader.step(frd.messagesAfterPersist[0]!);
  leader.propose(data(3)); // Entry 7: proposed meanwhile.
  const drained = leader.drain()!;
  assert.deepEqual(
    drained.committedEntries.map((e) => e.index),
    [5],
  );
  const appends = drained.messages.filter((m) => m.type === MessageType.App);
  assert.deepEqual(
    appends.map((m) => [m.to, m.entries.map((e) => e.index)]),
    [
      [2, [7]],
      [3, [7]],
    ],
  );
  assert.equal(leader.drain(), null, 'nothing new: nothing drained twice');
  // Entry 6 is durable on the leader only once its write finishes: it is not applied early.
  assert.equal(leader.status().commit, 5);
  net.members.get(1)!.storage.save(second.hardState, second.entries);
  leader.advance();
  assert.equal(leader.status().applied, 5, 'advance() marks the drained entries applied');
  const third = leader.ready();
  assert.deepEqual(
    third.entries.map((e) => e.index),
    [7],
    'an entry sent by a drain is still written by the next Ready',
  );
  assert.deepEqual(third.committedEntries, [], 'a drained entry is not handed out again');
});

test('drain: an entry committed while it is still being written here is not handed out', () => {
  const net = new TestNetwork([1, 2, 3]);
  elect(net, 1);
  const leader = net.node(1);
  const [f2, f3] = [net.node(2), net.node(3)];
  const persist = (id: number, rd: ReturnType<RawNode['ready']>) =>
    net.members.get(id)!.storage.save(rd.hardState, rd.entries);
  /** A follower takes the appends of these Readies, writes them, and returns its last answer. */
  const ack = (follower: RawNode, id: number, ...from: ReturnType<RawNode['ready']>[]) => {
    for (const rd of from) {
      follower.step(rd.messages.find((m) => m.to === id && m.type === MessageType.App)!);
    }
    const rd = follower.ready();
    persist(id, rd);
    follower.advance();
    return rd.messagesAfterPersist.filter((m) => m.type === MessageType.AppResp).at(-1)!;
  };
  leader.propose(data(1));
  const first = leader.ready(); // Entry 5.
  persist(1, first);
  leader.advance();
  leader.step(ack(f2, 2, first)); // 5 is committed (leader and follower 2).
  leader.propose(data(2));
  const second = leader.ready(); // Applies 5, writes 6: both followers get 6 meanwhile.
  assert.deepEqual(
    second.committedEntries.map((e) => e.index),
    [5],
  );
  leader.step(ack(f2, 2, second));
  leader.step(ack(f3, 3, first, second));
  assert.equal(leader.status().commit, 6, 'the two followers hold 6: it is committed');
  const drained = leader.drain();
  assert.deepEqual(
    drained?.committedEntries ?? [],
    [],
    'neither 5 again (the Ready has it) nor 6 (not durable on the leader yet)',
  );
  persist(1, second);
  leader.advance();
  assert.deepEqual(
    leader.ready().committedEntries.map((e) => e.index),
    [6],
  );
  leader.advance();
  // A follower: the commit index for 7 arrives while it is still writing 7.
  leader.propose(data(3));
  const third = leader.ready();
  persist(1, third);
  leader.advance();
  f2.step(third.messages.find((m) => m.to === 2 && m.type === MessageType.App)!);
  const writing = f2.ready(); // Entry 7, being written by follower 2.
  assert.deepEqual(
    writing.entries.map((e) => e.index),
    [7],
  );
  leader.step(ack(f3, 3, third)); // 7 is committed by the leader and follower 3.
  const notice = leader.ready().messages.find((m) => m.to === 2 && m.type === MessageType.App)!;
  leader.advance();
  assert.equal(notice.commit, 7);
  f2.step(notice);
  assert.equal(f2.status().commit, 7);
  assert.deepEqual(f2.drain()?.committedEntries ?? [], [], 'entry 7 is not durable here yet');
  persist(2, writing);
  f2.advance();
  assert.equal(f2.ready().committedEntries.at(-1)?.index, 7, 'the next Ready hands it out');
});

test('a snapshot index counts as committed at restart, even when the hard state is older', () => {
  const net = new TestNetwork([1, 2, 3]);
  elect(net, 1);
  for (let i = 0; i < 3; i++) net.node(1).propose(data(i));
  net.settle();
  const member = net.members.get(2)!;
  const applied = member.applied.at(-1)!.index;
  const confState = member.storage.initialState().confState;
  member.storage.createSnapshot(applied, confState, new Uint8Array([1]));
  // The hard state on disk says less was committed (its commit index was to ride on a later save).
  member.storage.save({ ...member.storage.initialState().hardState, commit: applied - 2 }, []);
  net.restart(2);
  assert.equal(net.node(2).status().commit, applied);
  assert.equal(net.node(2).status().applied, applied);
});

test('Figure 8: a leader never commits an older term entry by counting replicas', () => {
  const net = new TestNetwork([1, 2, 3]);
  elect(net, 1); // Term 2; entry 4 is its empty entry, committed everywhere.
  net.isolate(1);
  net.node(1).propose(data(9)); // Entry 5 of term 2, only on member 1.
  net.settle();
  // Member 2 wins term 3 with 3's vote, but its entry 5@3 never leaves it.
  net.heal();
  net.isolate(1);
  net.filter = (m) => !(m.from === 2 && m.type === MessageType.App);
  elect(net, 2);
  // Member 1 learns of term 3 from member 3, then wins term 4 with 3's vote.
  net.heal();
  net.isolate(2);
  net.filter = (m) => !(m.from === 1 && m.type === MessageType.App);
  net.tickAll(1);
  assert.equal(net.node(1).status().role, Role.Follower);
  elect(net, 1);
  const raft = net.node(1).raft;
  assert.equal(raft.term, 4);
  assert.deepEqual([raft.log.term(5), raft.log.term(6)], [2, 4]);
  // Entry 5 (term 2) is now on a majority, {1, 3}; it must still not count as committed,
  // because member 2 (term 3 entry at 5) could win an election without it.
  raft.trk.progress.get(3)!.match = 5;
  assert.equal(raft.maybeCommit(), false);
  assert.equal(raft.log.committed, 4);
  // Once an entry of the leader's own term is on a majority, everything before it commits.
  raft.trk.progress.get(3)!.match = 6;
  assert.equal(raft.maybeCommit(), true);
  assert.equal(raft.log.committed, 6);
});

test('fast backup: a deposed leader with a long divergent log is repaired in a few round trips', () => {
  const net = new TestNetwork([1, 2, 3], { maxSizePerMsgBytes: 1 << 20 });
  elect(net, 1);
  net.isolate(1);
  for (let i = 0; i < 200; i++) net.node(1).propose(data(i)); // Uncommitted, term 2.
  net.settle();
  elect(net, 2);
  for (let i = 0; i < 150; i++) net.node(2).propose(data(i)); // Committed, term 3.
  net.settle();
  net.heal();
  net.takeTranscript();
  net.tickAll(1); // A heartbeat round lets the leader probe member 1.
  net.settle();
  const rejects = net
    .takeTranscript()
    .filter((line) => line.startsWith('1->2 AppResp') && line.includes('reject'));
  assert.ok(rejects.length <= 2, `repaired with ${rejects.length} rejections: ${rejects}`);
  assert.equal(net.node(1).status().commit, net.node(2).status().commit);
  assert.equal(net.node(1).status().lastIndex, net.node(2).status().lastIndex);
});

test('bounded messages: an idle cluster sends only heartbeats; one proposal costs one append round', () => {
  const net = new TestNetwork([1, 2, 3]);
  elect(net, 1);
  net.takeTranscript();
  net.tickAll(1);
  assert.deepEqual(net.takeTranscript(), [
    '1->2 Heartbeat term=2 commit=4',
    '1->3 Heartbeat term=2 commit=4',
    '2->1 HeartbeatResp term=2',
    '3->1 HeartbeatResp term=2',
  ]);
  net.node(1).propose(data(1));
  net.settle();
  assert.deepEqual(net.takeTranscript(), [
    '1->2 App term=2 prev=4@2 entries=[5@2] commit=4',
    '1->3 App term=2 prev=4@2 entries=[5@2] commit=4',
    '2->1 AppResp term=2 index=5',
    '3->1 AppResp term=2 index=5',
    // The new commit index is announced with an empty append.
    '1->2 App term=2 prev=5@2 entries=[] commit=5',
    '1->3 App term=2 prev=5@2 entries=[] commit=5',
    '2->1 AppResp term=2 index=5',
    '3->1 AppResp term=2 index=5',
  ]);
});

test('batching: proposals made before a Ready share one append message per follower', () => {
  const net = new TestNetwork([1, 2, 3]);
  elect(net, 1);
  net.takeTranscript();
  for (let i = 0; i < 100; i++) net.node(1).propose(data(i));
  net.settle();
  const appends = net
    .takeTranscript()
    .filter((l) => l.includes(' App ') && !l.includes('entries=[]'));
  assert.equal(appends.length, 2);
  assert.equal(net.node(2).status().commit, 104);
});

test('pipelining: no more than maxInflightMsgs appends are outstanding to a silent follower', () => {
  const net = new TestNetwork([1, 2], { maxInflightMsgs: 3, maxSizePerMsgBytes: 1 });
  elect(net, 1);
  net.cutLink(2, 1); // Member 2 receives but its acks are lost.
  net.takeTranscript();
  for (let i = 0; i < 10; i++) net.node(1).propose(data(i));
  net.settle();
  const appends = net.takeTranscript().filter((l) => l.startsWith('1->2 App'));
  assert.equal(appends.length, 3);
});

test('pre-vote: a member rejoining from a partition does not disrupt the leader', () => {
  for (const preVote of [true, false]) {
    const net = new TestNetwork([1, 2, 3], { preVote });
    elect(net, 1);
    net.isolate(3);
    for (let i = 0; i < 50; i++) net.tickAll();
    net.heal();
    net.tickAll(2);
    const leaderTerm = net.node(1).status().term;
    if (preVote) {
      assert.equal(net.node(3).status().term, 2);
      assert.equal(net.node(1).status().role, Role.Leader);
      assert.equal(leaderTerm, 2);
    } else {
      // Without pre-vote the rejoining member's inflated term deposes the leader.
      assert.ok(net.node(3).status().term > 2);
      assert.ok(leaderTerm > 2);
    }
  }
});

test('check-quorum: a leader that cannot hear from a majority steps down', () => {
  const net = new TestNetwork([1, 2, 3], { checkQuorum: true });
  elect(net, 1);
  net.isolate(1);
  for (let i = 0; i < 21; i++) net.tickAll();
  assert.equal(net.node(1).status().role, Role.Follower);
  assert.equal(net.node(1).status().lead, 0);
});

test('check-quorum: followers that heard from a leader ignore a disruptive candidate', () => {
  const net = new TestNetwork([1, 2, 3], { checkQuorum: true });
  elect(net, 1);
  net.node(3).campaign(); // e.g. after being partitioned from the leader only.
  net.settle();
  assert.equal(net.node(1).status().role, Role.Leader);
  assert.equal(net.node(2).status().term, 2);
});

test('leadership transfer: the transferee catches up, gets TimeoutNow and wins', () => {
  const net = new TestNetwork([1, 2, 3]);
  elect(net, 1);
  net.isolate(3);
  for (let i = 0; i < 5; i++) net.node(1).propose(data(i));
  net.settle();
  net.heal();
  net.takeTranscript();
  net.node(1).transferLeader(3);
  assert.equal(
    codeOf(() => net.node(1).propose(data(1))),
    'TRANSFERRING',
  );
  net.settle();
  const lines = net.takeTranscript();
  assert.ok(lines.includes('1->3 TimeoutNow term=2'), lines.join('\n'));
  assert.equal(net.node(3).status().role, Role.Leader);
  assert.equal(net.node(1).status().lead, 3);
});

test('learners: receive the log, do not vote, can be promoted and removed', () => {
  const net = new TestNetwork([1, 2, 3]);
  elect(net, 1);
  net.addEmpty(4);
  net.node(1).proposeConfChange(single(ConfChangeType.AddLearner, 4));
  net.settle();
  net.node(1).propose(data(7));
  net.settle();
  assert.equal(net.node(4).status().commit, net.node(1).status().commit);
  assert.deepEqual(net.node(1).status().config.learners, [4]);
  // A learner never campaigns.
  for (let i = 0; i < 40; i++) net.tick(4);
  net.settle();
  assert.equal(net.node(4).status().role, Role.Follower);
  // Two voters down: with the learner the leader still cannot commit (the learner does not count).
  net.isolate(2);
  net.isolate(3);
  const before = net.node(1).status().commit;
  net.node(1).propose(data(8));
  net.settle();
  assert.equal(net.node(1).status().commit, before);
  net.heal();
  net.settle();
  net.node(1).proposeConfChange(single(ConfChangeType.AddNode, 4));
  net.settle();
  assert.deepEqual(net.node(1).status().config.voters, [1, 2, 3, 4]);
  net.node(1).proposeConfChange(single(ConfChangeType.RemoveNode, 2));
  net.settle();
  assert.deepEqual(net.node(1).status().config.voters, [1, 3, 4]);
  assert.deepEqual(net.node(4).status().config.voters, [1, 3, 4]);
});

test('joint consensus: two voters swapped at once enter and leave a joint configuration', () => {
  const net = new TestNetwork([1, 2, 3], {}, [4]);
  elect(net, 1);
  net.node(1).proposeConfChange({
    transition: ConfChangeTransition.Auto,
    changes: [
      { type: ConfChangeType.AddNode, nodeId: 4 },
      { type: ConfChangeType.RemoveNode, nodeId: 3 },
    ],
    context: new Uint8Array(0),
  });
  net.settle();
  const config = net.node(1).status().config;
  assert.deepEqual(config.voters, [1, 2, 4]);
  assert.deepEqual(config.votersOutgoing, [], 'the joint config was left automatically');
});

test('membership: a new leader accepts a conf change only after committing its own entry', () => {
  const net = new TestNetwork([1, 2, 3]);
  net.settle();
  net.node(1).campaign();
  // Deliver until member 1 is leader, but not yet its first entry's commit.
  net.filter = (m) => m.type !== MessageType.AppResp;
  net.settle();
  assert.equal(net.node(1).status().role, Role.Leader);
  assert.equal(
    codeOf(() => net.node(1).proposeConfChange(single(ConfChangeType.AddLearner, 9))),
    'CONF_CHANGE_PENDING',
  );
  net.filter = () => true;
  net.tickAll(1);
  net.settle();
  assert.equal(
    codeOf(() => net.node(1).proposeConfChange(single(ConfChangeType.AddLearner, 9))),
    null,
  );
  // A second change waits for the first to be applied.
  assert.equal(
    codeOf(() => net.node(1).proposeConfChange(single(ConfChangeType.AddLearner, 8))),
    'CONF_CHANGE_PENDING',
  );
});

test('ReadIndex: many reads share one heartbeat round; a follower read is forwarded', () => {
  const net = new TestNetwork([1, 2, 3]);
  elect(net, 1);
  net.takeTranscript();
  for (let i = 0; i < 10; i++) net.node(1).readIndex(data(i));
  net.settle();
  const lines = net.takeTranscript();
  assert.equal(lines.filter((l) => l.includes('Heartbeat ')).length, 2, lines.join('\n'));
  const reads = net.members.get(1)!.readStates;
  assert.equal(reads.length, 10);
  assert.ok(reads.every((r) => r.index === 4));
  net.node(2).readIndex(data(42));
  net.settle();
  assert.deepEqual(net.members.get(2)!.readStates, [{ index: 4, requestCtx: data(42) }]);
});

test('ReadIndex: a partitioned leader cannot confirm reads', () => {
  const net = new TestNetwork([1, 2, 3]);
  elect(net, 1);
  net.isolate(1);
  net.node(1).readIndex(data(1));
  net.settle();
  assert.deepEqual(net.members.get(1)!.readStates, []);
});

test('lease reads need check-quorum, answer without a round trip, and lapse when cut off', () => {
  assert.throws(
    () => new TestNetwork([1], { readOnly: 'lease' }),
    (e: unknown) => e instanceof RaftError && e.code === 'BAD_CONFIG',
  );
  const net = new TestNetwork([1, 2, 3], { readOnly: 'lease', checkQuorum: true });
  elect(net, 1);
  net.tickAll(1); // One acknowledged heartbeat round starts the lease.
  net.takeTranscript();
  net.node(1).readIndex(data(1));
  net.settle();
  assert.deepEqual(net.takeTranscript(), []);
  assert.equal(net.members.get(1)!.readStates.length, 1);
  // Cut off, the leader's lease runs out before anyone else may be elected.
  net.isolate(1);
  for (let i = 0; i < 9; i++) net.tick(1);
  net.settle();
  assert.equal(net.node(1).status().role, Role.Leader);
  assert.equal(net.node(1).raft.leaseValid(), false);
  net.node(1).readIndex(data(2));
  net.settle();
  assert.equal(net.members.get(1)!.readStates.length, 1, 'no read answered without a lease');
});

test('refusals carry codes: no leader, uncommitted limit', () => {
  const net = new TestNetwork([1, 2, 3], { maxUncommittedEntriesBytes: 10 });
  net.settle();
  assert.equal(
    codeOf(() => net.node(2).propose(data(1))),
    'NO_LEADER',
  );
  elect(net, 1);
  net.isolate(1);
  assert.equal(
    codeOf(() => net.node(1).propose(new Uint8Array(8))),
    null,
  );
  assert.equal(
    codeOf(() => net.node(1).propose(new Uint8Array(8))),
    'UNCOMMITTED_LIMIT',
  );
  net.heal();
  net.settle();
  net.tickAll(1);
  assert.equal(
    codeOf(() => net.node(1).propose(new Uint8Array(8))),
    null,
  );
});

test('proposals on a follower are forwarded to the leader', () => {
  const net = new TestNetwork([1, 2, 3]);
  elect(net, 1);
  net.node(3).propose(data(5));
  net.settle();
  const applied = net.members.get(2)!.applied.filter((e) => e.data.length === 1);
  assert.deepEqual(
    applied.map((e) => e.data[0]),
    [5],
  );
});

test('snapshots: a follower behind the compacted log gets a snapshot and catches up', () => {
  const net = new TestNetwork([1, 2, 3]);
  elect(net, 1);
  net.isolate(3);
  for (let i = 0; i < 20; i++) net.node(1).propose(data(i));
  net.settle();
  const leader = net.members.get(1)!;
  const index = leader.raw.status().applied;
  leader.storage.createSnapshot(index, leader.raw.status().config, new Uint8Array([1, 2, 3]));
  leader.storage.compact(index);
  net.heal();
  net.takeTranscript();
  net.tickAll(1);
  net.settle();
  const lines = net.takeTranscript();
  assert.ok(lines.includes(`1->3 Snap term=2 snapshot=${index}@2`), lines.join('\n'));
  const follower = net.members.get(3)!;
  assert.equal(follower.storage.snapshot().metadata.index, index);
  assert.deepEqual(follower.storage.snapshot().data, new Uint8Array([1, 2, 3]));
  net.node(1).reportSnapshot(3, 'finish');
  net.tickAll(2);
  assert.equal(net.node(3).status().commit, net.node(1).status().commit);
});

test('transport reports: unreachable and failed snapshots send a follower back to probing', () => {
  const net = new TestNetwork([1, 2, 3]);
  elect(net, 1);
  const state = (id: number) => net.node(1).status().progress!.get(id)!.state;
  assert.equal(state(2), 'replicate');
  net.node(1).reportUnreachable(2);
  assert.equal(state(2), 'probe');
  net.isolate(3);
  for (let i = 0; i < 10; i++) net.node(1).propose(data(i));
  net.settle();
  const leader = net.members.get(1)!;
  const applied = leader.raw.status().applied;
  leader.storage.createSnapshot(applied, leader.raw.status().config, new Uint8Array(0));
  leader.storage.compact(applied);
  net.heal();
  net.filter = (m) => m.type !== MessageType.Snap; // The snapshot transfer fails.
  net.tickAll(1);
  assert.equal(state(3), 'snapshot');
  net.node(1).reportSnapshot(3, 'failure');
  assert.equal(state(3), 'probe');
  net.filter = () => true;
  net.tickAll(2);
  net.node(1).reportSnapshot(3, 'finish');
  net.tickAll(2);
  assert.equal(state(3), 'replicate');
  assert.equal(net.node(3).status().commit, net.node(1).status().commit);
});

test('restart: a member recovers term, vote and log from storage', () => {
  const net = new TestNetwork([1, 2, 3]);
  elect(net, 1);
  net.node(1).propose(data(3));
  net.settle();
  net.restart(2);
  const status = net.node(2).status();
  assert.equal(status.term, 2);
  assert.equal(status.lastIndex, 5);
  assert.equal(status.commit, 5);
  net.tickAll(3);
  assert.ok(net.members.get(2)!.applied.some((e) => e.index === 5));
});

test('membership: a removed leader steps down and the rest elect a new one', () => {
  const net = new TestNetwork([1, 2, 3]);
  elect(net, 1);
  net.node(1).proposeConfChange(single(ConfChangeType.RemoveNode, 1));
  net.settle();
  // The removed leader hands over to the most up-to-date remaining voter, and steps down when
  // the answers to its next heartbeat carry the successor's term.
  assert.equal(net.node(2).status().role, Role.Leader);
  net.tickAll(1);
  assert.equal(net.node(1).status().role, Role.Follower);
  assert.deepEqual(net.node(2).status().config.voters, [2, 3]);
  const hasNewLeader = () => [2, 3].includes(net.node(2).status().lead);
  for (let i = 0; i < 40 && !hasNewLeader(); i++) net.tickAll();
  const lead = net.node(2).status().lead;
  assert.ok(lead === 2 || lead === 3, `new leader ${lead}`);
  net.node(lead).propose(data(1));
  net.settle();
  assert.equal(net.node(2).status().commit, net.node(3).status().commit);
  // The removed member never campaigns again.
  for (let i = 0; i < 40; i++) net.tick(1);
  net.settle();
  assert.equal(net.node(1).status().role, Role.Follower);
});

test('conf change encoding round-trips and rejects garbage', () => {
  const cc = {
    transition: ConfChangeTransition.JointExplicit,
    changes: [
      { type: ConfChangeType.AddNode, nodeId: 12 },
      { type: ConfChangeType.RemoveNode, nodeId: 3 },
    ],
    context: new Uint8Array([9, 9]),
  };
  assert.deepEqual(decodeConfChange(encodeConfChange(cc)), cc);
  assert.throws(() => decodeConfChange(new Uint8Array([7, 0, 0, 0])), /BAD_CONF_CHANGE|version/);
  assert.equal(EntryType.ConfChange, 1);
});

test('configuration is validated', () => {
  assert.throws(
    () => new RawNode({ ...testConfig(1, new MemoryStorage(), {}), heartbeatTick: 10 }),
    (e: unknown) => e instanceof RaftError && e.code === 'BAD_CONFIG',
  );
  assert.throws(
    () => new RawNode({ ...testConfig(0, new MemoryStorage(), {}) }),
    (e: unknown) => e instanceof RaftError && e.code === 'BAD_CONFIG',
  );
});
