import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Entry, EntryType, type Message, MessageType, message } from '../raft/index.js';
import { CommitNotices, type HoldTimers } from './commit-notices.js';

/** Timers that fire only when the test says so. */
function manualTimers() {
  const pending = new Map<number, () => void>();
  let next = 1;
  const timers: HoldTimers = {
    set: (callback) => {
      pending.set(next, callback);
      return next++;
    },
    clear: (handle) => {
      pending.delete(handle as number);
    },
  };
  const fireAll = () => {
    const callbacks = [...pending.values()];
    pending.clear();
    for (const callback of callbacks) callback();
  };
  return { timers, pending, fireAll };
}

const entry = (index: number): Entry => ({
  term: 2,
  index,
  type: EntryType.Normal,
  data: new Uint8Array([index]),
});
const notice = (to: number, commit: number) =>
  message(MessageType.App, { from: 1, to, term: 2, index: commit, logTerm: 2, commit });
const append = (to: number, commit: number, index: number) =>
  message(MessageType.App, {
    from: 1,
    to,
    term: 2,
    index: index - 1,
    logTerm: 2,
    commit,
    entries: [entry(index)],
  });
const heartbeat = (to: number, commit: number) =>
  message(MessageType.Heartbeat, { from: 1, to, term: 2, commit });

function setup() {
  const sent: Message[][] = [];
  const clock = manualTimers();
  const notices = new CommitNotices(1, (messages) => sent.push([...messages]), clock.timers);
  return { sent, clock, notices };
}

describe('CommitNotices', () => {
  it('holds appends without entries and sends everything else at once, in order', () => {
    const { sent, clock, notices } = setup();
    const vote = message(MessageType.Heartbeat, { from: 1, to: 3, term: 2, commit: 0 });
    const now = notices.route([notice(2, 5), vote, append(3, 5, 6)]);
    assert.deepEqual(now, [vote, append(3, 5, 6)]);
    assert.equal(notices.size, 1);
    assert.equal(clock.pending.size, 1);
    assert.deepEqual(sent, []);
  });

  it('sends held notices when the hold ends, the latest per follower, with one timer', () => {
    const { sent, clock, notices } = setup();
    notices.route([notice(2, 5), notice(3, 5)]);
    notices.route([notice(2, 6)]);
    assert.equal(clock.pending.size, 1, 'a second Ready reuses the running hold');
    clock.fireAll();
    assert.deepEqual(sent, [[notice(2, 6), notice(3, 5)]]);
    assert.equal(notices.size, 0);
    // The next notice starts a new hold.
    notices.route([notice(2, 7)]);
    assert.equal(clock.pending.size, 1);
  });

  it('drops a held notice that a later append to the same follower carries', () => {
    const { sent, clock, notices } = setup();
    notices.route([notice(2, 5), notice(3, 5)]);
    const now = notices.route([append(2, 5, 6)]);
    assert.deepEqual(now, [append(2, 5, 6)]);
    clock.fireAll();
    assert.deepEqual(sent, [[notice(3, 5)]], 'only the follower without a new append is told');
  });

  it('drops a held notice for a heartbeat that reaches its commit index, not for a lower one', () => {
    const { sent, clock, notices } = setup();
    notices.route([notice(2, 5), notice(3, 5)]);
    // A heartbeat carries min(match, commit): lower than the notice for a follower behind.
    notices.route([heartbeat(2, 5), heartbeat(3, 4)]);
    clock.fireAll();
    assert.deepEqual(sent, [[notice(3, 5)]]);
  });

  it('sends nothing when the hold ends with every notice carried by appends', () => {
    const { sent, clock, notices } = setup();
    notices.route([notice(2, 5), notice(3, 5)]);
    notices.route([append(2, 5, 6), append(3, 5, 6)]);
    clock.fireAll();
    assert.deepEqual(sent, []);
  });

  it('clear() cancels the hold and forgets what it held', () => {
    const { sent, clock, notices } = setup();
    notices.route([notice(2, 5)]);
    notices.clear();
    assert.equal(clock.pending.size, 0);
    assert.equal(notices.size, 0);
    notices.release();
    assert.deepEqual(sent, []);
  });

  it('holds with real timers too: a notice goes out within its hold', async () => {
    const sent: Message[][] = [];
    const notices = new CommitNotices(1, (messages) => sent.push([...messages]));
    notices.route([notice(2, 9)]);
    await new Promise<void>((resolve) => {
      const poll = () => (sent.length > 0 ? resolve() : setImmediate(poll));
      poll();
    });
    assert.deepEqual(sent, [[notice(2, 9)]]);
  });
});
