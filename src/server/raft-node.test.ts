/**
 * RaftNode's drain (entries applied while a Ready's WAL write is in flight) on a real DiskStorage,
 * with the two followers played by the test: it sees the leader's messages and answers them when
 * it chooses, and it decides when the leader's own write completes. The state machine is a
 * stand-in that records what it applied and fails on one command: the driver's rules are what is
 * tested, not the store.
 */
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { waitFor } from '../../test/support/wait-for.js';
import { type Entry, EntryType, type Message, MessageType, message } from '../raft/index.js';
import { DiskStorage } from '../storage/index.js';
import { RaftNode } from './raft-node.js';
import type { StateMachine } from './state-machine.js';
import { TRACE_CHANNEL, type TraceEvent } from './trace.js';

const logger = pino({ level: 'silent' });
const text = (data: Uint8Array) => Buffer.from(data).toString();

/** Applies by recording the commands; throws on `failOn`, as a broken store would. */
class RecordingStateMachine {
  appliedIndex = 0;
  readonly applied: string[] = [];
  failOn: string | null = null;

  async apply(entries: readonly Entry[]): Promise<void> {
    for (const entry of entries) {
      if (entry.type === EntryType.Normal && entry.data.length > 0) {
        const command = text(entry.data);
        if (command === this.failOn) throw new Error(`apply of ${command} failed`);
        this.applied.push(command);
      }
      this.appliedIndex = entry.index;
    }
  }

  async install(): Promise<void> {
    throw new Error('no snapshots in this test');
  }
}

/** One turn of the event loop: every microtask queued so far (drains, their applies) has run. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

interface Harness {
  node: RaftNode;
  storage: DiskStorage;
  machine: RecordingStateMachine;
  sent: Message[];
  fatal: unknown[];
  /** The last entry index whose save has resolved (as RaftNode sees it). */
  readonly savedThrough: number;
  /** Makes the next save's promise wait for `release()` (the write itself still runs). */
  holdNextSave(): { release(): void };
  /** Acknowledges, as follower `from`, every entry up to `index`. */
  ack(from: number, index: number): void;
}

async function leaderWithHeldFollowers(dir: string): Promise<Harness> {
  const storage = await DiskStorage.open(dir, { logger });
  const save = storage.save.bind(storage);
  let hold: ((release: () => void) => void) | null = null;
  let savedThrough = 0;
  storage.save = (hardState, entries) => {
    const last = entries.at(-1)?.index ?? 0;
    const written = save(hardState, entries).then(() => {
      savedThrough = Math.max(savedThrough, last);
    });
    const take = hold;
    if (take === null) return written;
    hold = null;
    return new Promise<void>((resolve, reject) => {
      take(() => written.then(resolve, reject));
    });
  };
  const machine = new RecordingStateMachine();
  const sent: Message[] = [];
  const fatal: unknown[] = [];
  const node = new RaftNode({
    id: 1,
    storage,
    stateMachine: machine as unknown as StateMachine,
    // No tick fires during a test: elections and heartbeats happen only when the test asks.
    heartbeatIntervalMs: 3_600_000,
    electionTimeoutMs: 36_000_000,
    send: (messages) => {
      for (const m of messages) {
        sent.push(m);
        // The followers grant every (pre-)vote; appends wait for the test's `ack`.
        if (m.type === MessageType.PreVote || m.type === MessageType.Vote) {
          const type =
            m.type === MessageType.PreVote ? MessageType.PreVoteResp : MessageType.VoteResp;
          queueMicrotask(() => node.step(message(type, { from: m.to, to: 1, term: m.term })));
        }
      }
    },
    logger,
    onFatal: (error) => fatal.push(error),
  });
  node.node.bootstrap([1, 2, 3]);
  node.start();
  // A member campaigns only once its bootstrap configuration is applied.
  await waitFor(() => machine.appliedIndex >= 3, 'the bootstrap entries are applied');
  node.node.campaign();
  node.wake();
  const term = () => node.term;
  const ack = (from: number, index: number) =>
    node.step(message(MessageType.AppResp, { from, to: 1, term: term(), index }));
  await waitFor(() => node.lead === 1, 'the member leads');
  // The leader's empty entry of its term: index 4 after the three bootstrap entries.
  ack(2, 4);
  ack(3, 4);
  await waitFor(() => machine.appliedIndex >= 4, 'the empty entry of the new term is applied');
  return {
    get savedThrough() {
      return savedThrough;
    },
    node,
    storage,
    machine,
    sent,
    fatal,
    holdNextSave() {
      let release: (() => void) | null = null;
      hold = (r) => {
        release = r;
      };
      return {
        release: () => {
          assert.ok(release !== null, 'the held save never started');
          release();
        },
      };
    },
    ack,
  };
}

/**
 * Proposes `durable` in one turn and waits until their save has resolved, then proposes `held`
 * with its save held: the leader is inside that Ready's write, where the drain runs.
 */
async function writeThenHold(h: Harness, durable: string[], held: string) {
  for (const command of durable) h.node.propose(Buffer.from(command));
  const last = h.savedThrough + durable.length;
  await waitFor(() => h.savedThrough >= last, `${durable.join(', ')} durable`);
  const hold = h.holdNextSave();
  h.node.propose(Buffer.from(held));
  await turn();
  return hold;
}

describe('RaftNode drain on a DiskStorage', () => {
  let dir = '';
  let harness: Harness | null = null;
  beforeEach(() => {
    dir = fs.mkdtempSync(join(tmpdir(), 'shoal-raft-node-'));
  });
  afterEach(async () => {
    await harness?.node.stop();
    await harness?.storage.close();
    harness = null;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('applies an entry a follower commits while the leader writes a later one', async () => {
    harness = await leaderWithHeldFollowers(dir);
    const { machine } = harness;
    // a (index 5) is written and durable here; the write of b (index 6) is held.
    const held = await writeThenHold(harness, ['a'], 'b');
    harness.ack(2, 5);
    await turn();
    assert.deepEqual(machine.applied, ['a'], 'a was not applied while the write of b was held');
    held.release();
    harness.ack(2, 6);
    await waitFor(() => machine.applied.length >= 2, 'b is applied');
    assert.deepEqual(machine.applied, ['a', 'b']);
    assert.deepEqual(harness.fatal, []);
  });

  it('publishes the trace steps of a write in order while something listens', async () => {
    harness = await leaderWithHeldFollowers(dir);
    const events: TraceEvent[] = [];
    const listen = (event: unknown) => events.push(event as TraceEvent);
    diagnostics.subscribe(TRACE_CHANNEL, listen);
    try {
      const held = await writeThenHold(harness, ['a'], 'b');
      harness.ack(2, 5);
      await turn();
      held.release();
      harness.ack(2, 6);
      await waitFor(() => harness!.machine.applied.length >= 2, 'b is applied');
    } finally {
      diagnostics.unsubscribe(TRACE_CHANNEL, listen);
    }
    // Where index 6 (b) went: proposed, its write durable, acknowledged, committed, applied.
    const at = (step: string, covers: (e: TraceEvent) => boolean) =>
      events.findIndex((e) => e.step === step && covers(e));
    const range = (e: TraceEvent) => e.a <= 6 && 6 <= e.b;
    const prop = at('prop', (e) => e.a === 6);
    const persist = at('persist', range);
    const ack = at('ack', (e) => e.a === 2 && e.b >= 6);
    const commit = at('commit', range);
    const applied = at('applied', range);
    assert.ok(prop >= 0 && persist > prop && ack > prop, JSON.stringify(events));
    assert.ok(commit > Math.max(persist, ack) && applied > commit, JSON.stringify(events));
    for (let i = 1; i < events.length; i++) assert.ok(events[i]!.atMs >= events[i - 1]!.atMs);
    const count = events.length;
    harness.node.propose(Buffer.from('c'));
    await turn();
    assert.equal(events.length, count, 'nothing is published without a listener');
  });

  it('after a drained apply fails, nothing later is applied and the member stops', async () => {
    harness = await leaderWithHeldFollowers(dir);
    const { machine } = harness;
    machine.failOn = 'a';
    // a (index 5) and c (index 6) are written in one save and durable here; b's (7) is held.
    const held = await writeThenHold(harness, ['a', 'c'], 'b');
    // a commits and is drained: its apply fails.
    harness.ack(2, 5);
    await turn();
    // c commits too, and is durable here. Applying it would leave a gap where a failed: the
    // store would hold c without a, and nothing would tell at restart.
    harness.ack(2, 6);
    await turn();
    await turn();
    assert.deepEqual(machine.applied, [], 'an entry after the failed one was applied');
    assert.deepEqual(harness.fatal, [], 'the member stopped before its write finished');
    held.release();
    await waitFor(() => harness!.fatal.length > 0, 'the member stops');
    assert.equal(harness.fatal.length, 1);
    assert.match(String(harness.fatal[0]), /apply of a failed/);
    assert.deepEqual(machine.applied, []);
  });
});
