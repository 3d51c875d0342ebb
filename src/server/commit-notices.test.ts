import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Entry, EntryType, type Message, MessageType, message } from '../raft/index.js';
import { CommitNotices, type HoldTimers } from './commit-notices.js';

/** Timers that fire only when the test says so. */
function manualTimers() {
  const pending = new Map<number, () => void>();
  const callbacks = new Map<number, () => void>();
  let next = 1;
  let created = 0;
  const timers: HoldTimers = {
    set: (callback) => {
      created++;
      callbacks.set(next, callback);
      pending.set(next, callback);
      return next++;
    },
    restart: (handle) => {
      pending.set(handle as number, callbacks.get(handle as number)!);
    },
    clear: (handle) => {
      pending.delete(handle as number);
      callbacks.delete(handle as number);
    },
  };
  const fireAll = () => {
    const due = [...pending.values()];
    pending.clear();
    for (const callback of due) callback();
  };
  return { timers, pending, fireAll, created: () => created };
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
    // The next notice starts a new hold, on the same timer.
    notices.route([notice(2, 7)]);
    assert.equal(clock.pending.size, 1);
    assert.equal(clock.created(), 1);
    clock.fireAll();
    assert.deepEqual(sent.at(-1), [notice(2, 7)]);
  });

  it('passes a Ready without notices through as it is', () => {
    const { notices } = setup();
    const messages = [append(2, 5, 6), heartbeat(3, 5)];
    assert.equal(notices.route(messages), messages);
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
    // A hold after clear() makes a new timer (a cleared one cannot be restarted).
    notices.route([notice(2, 6)]);
    assert.equal(clock.created(), 2);
    clock.fireAll();
    assert.deepEqual(sent, [[notice(2, 6)]]);
  });

  it('holds with real timers too: each hold ends, the timer restarted for the next', async () => {
    const sent: Message[][] = [];
    const notices = new CommitNotices(1, (messages) => sent.push([...messages]));
    const until = (count: number) =>
      new Promise<void>((resolve) => {
        const poll = () => (sent.length >= count ? resolve() : setImmediate(poll));
        poll();
      });
    notices.route([notice(2, 9)]);
    await until(1);
    notices.route([notice(2, 10)]);
    await until(2);
    assert.deepEqual(sent, [[notice(2, 9)], [notice(2, 10)]]);
    notices.clear();
  });
  it('sends at once the notice that commits what a follower forwarded, and only that one', () => {
    const { sent, clock, notices } = setup();
    // Follower 2 forwarded proposals the leader appended up to index 7.
    notices.awaited(2, 7);
    const early = notice(2, 6);
    assert.deepEqual(notices.route([early, notice(3, 6)]), [], 'index 7 is not committed yet');
    assert.equal(notices.size, 2);
    const reaching = notice(2, 7);
    const other = notice(3, 7);
    assert.deepEqual(notices.route([other, reaching]), [reaching]);
    assert.equal(notices.size, 1, 'the older notice to 2 is dropped, 3 still waits');
    // The wait is over: the next notice to 2 is held again.
    assert.deepEqual(notices.route([notice(2, 8)]), []);
    clock.fireAll();
    assert.deepEqual(sent, [[notice(3, 7), notice(2, 8)]]);
  });

  it('forgets a forwarded wait once an append with entries tells the commit index', () => {
    const { notices } = setup();
    notices.awaited(2, 7);
    notices.awaited(2, 5); // an older report never lowers the wait
    assert.deepEqual(notices.route([notice(2, 6)]), []);
    const carrying = append(2, 7, 8);
    assert.deepEqual(notices.route([carrying]), [carrying]);
    assert.equal(notices.size, 0, 'the append replaced the held notice');
    assert.deepEqual(notices.route([notice(2, 8)]), [], 'held: nothing is awaited any more');
  });
});
