/**
 * The proposer's waiters: resolved by the apply of their own entry, failed by the timeout sweep
 * (oldest first, with etcd's wording), by a raft refusal, or by close.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RaftError } from '../raft/index.js';
import type { RequestId } from './command.js';
import { Proposer } from './proposer.js';
import type { ApplyOutcome } from './state-machine.js';

function harness(requestTimeoutMs: number) {
  let leader = 1;
  const proposed: Uint8Array[] = [];
  let failed = 0;
  const proposer = new Proposer({
    memberId: 7,
    requestTimeoutMs,
    leaderWaitMs: 1000,
    leader: () => leader,
    propose: (data) => proposed.push(data),
    onFailed: () => failed++,
  });
  return {
    proposer,
    proposed,
    failed: () => failed,
    setLeader: (id: number) => {
      leader = id;
    },
    /** Proposes with a fresh id; returns the id and the caller's promise. */
    start(submit?: (data: Uint8Array) => void) {
      const id = proposer.nextId();
      const promise = proposer.proposeWithId(id, new Uint8Array([id.sequence]), (data) =>
        (submit ?? ((d) => proposed.push(d)))(data),
      );
      return { id, promise };
    },
  };
}

const outcome = (index: number): ApplyOutcome => ({ index, status: 'member' });

/** The sweep's timer does not hold the process open; a waiting test must. */
async function keepingAlive<T>(run: () => Promise<T>): Promise<T> {
  const handle = setInterval(() => {}, 1000);
  try {
    return await run();
  } finally {
    clearInterval(handle);
  }
}

test('the apply of its own entry resolves a proposal; other ids and repeats change nothing', async () => {
  const h = harness(60_000);
  const first = h.start();
  const second = h.start();
  assert.equal(h.proposer.pendingCount, 2);
  const stranger: RequestId = { ...first.id, incarnation: first.id.incarnation + 1 };
  h.proposer.applied(stranger, outcome(99));
  h.proposer.applied({ ...first.id, member: 8 }, outcome(98));
  assert.equal(h.proposer.pendingCount, 2);
  h.proposer.applied(second.id, outcome(5));
  h.proposer.applied(first.id, outcome(4));
  h.proposer.applied(first.id, outcome(6));
  assert.deepEqual(await first.promise, outcome(4));
  assert.deepEqual(await second.promise, outcome(5));
  assert.equal(h.proposer.pendingCount, 0);
  assert.equal(h.failed(), 0);
});

test('a proposal never applied fails with etcd timeout errors once its deadline passes', () =>
  keepingAlive(async () => {
    const h = harness(30);
    const plain = h.start();
    await assert.rejects(plain.promise, { message: 'etcdserver: request timed out' });
    const moved = h.start();
    h.setLeader(2);
    await assert.rejects(moved.promise, {
      message: 'etcdserver: request timed out, possibly due to previous leader failure',
    });
    assert.equal(h.failed(), 2);
    assert.equal(h.proposer.pendingCount, 0);
    // Applied after its timeout: nothing is waiting any more, and nothing breaks.
    h.proposer.applied(plain.id, outcome(1));
  }));

test('the sweep fails only the waiters past their deadline, oldest first', async () => {
  let now = 0;
  const proposer = new Proposer({
    memberId: 7,
    requestTimeoutMs: 100,
    leaderWaitMs: 1000,
    leader: () => 1,
    propose: () => {},
    now: () => now,
  });
  const start = () => {
    const id = proposer.nextId();
    return { id, promise: proposer.proposeWithId(id, new Uint8Array(1), () => {}) };
  };
  const old = start();
  now = 60;
  const young = start();
  now = 99;
  proposer.sweep();
  assert.equal(proposer.pendingCount, 2, 'nothing has reached its deadline yet');
  now = 100;
  proposer.sweep();
  await assert.rejects(old.promise, { message: 'etcdserver: request timed out' });
  assert.equal(proposer.pendingCount, 1);
  proposer.applied(young.id, outcome(3));
  assert.deepEqual(await young.promise, outcome(3));
  proposer.close(new Error('done') as never);
});

test('a refused proposal fails at once with the mapped error and leaves no waiter', async () => {
  const h = harness(60_000);
  const refused = h.start(() => {
    throw new RaftError('UNCOMMITTED_LIMIT', 'too much uncommitted');
  });
  await assert.rejects(refused.promise, { message: 'etcdserver: too many requests' });
  assert.equal(h.proposer.pendingCount, 0);
  assert.equal(h.failed(), 1);
});

test('close fails every waiter', async () => {
  const h = harness(60_000);
  const a = h.start();
  const b = h.start();
  h.proposer.close(new Error('stopped') as never);
  await assert.rejects(a.promise, { message: 'stopped' });
  await assert.rejects(b.promise, { message: 'stopped' });
  assert.equal(h.proposer.pendingCount, 0);
});
