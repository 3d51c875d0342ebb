import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EtcdError, etcdErrors } from './etcd/errors.js';
import { ReadQueue } from './read-queue.js';

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

function makeQueue(applied: { index: number }, refuse = false) {
  const contexts: Uint8Array[] = [];
  const queue = new ReadQueue({
    memberId: 7,
    readIndex: (context) => {
      if (refuse) throw new Error('refused');
      contexts.push(context);
    },
    appliedIndex: () => applied.index,
    timeoutMs: 60_000,
    mapError: () => etcdErrors.noLeader(),
  });
  return { queue, contexts };
}

describe('ReadQueue', () => {
  it('batches the reads of one event-loop turn into one ReadIndex round', async () => {
    const applied = { index: 10 };
    const { queue, contexts } = makeQueue(applied);
    const reads = Array.from({ length: 50 }, () => queue.wait());
    await nextTurn();
    assert.equal(contexts.length, 1);
    queue.onReadStates([{ index: 9, requestCtx: contexts[0]! }]);
    await Promise.all(reads);
    queue.close(etcdErrors.stopped());
  });

  it('starts a round at once when idle and gathers reads for a turn while one is in flight', async () => {
    const applied = { index: 10 };
    const { queue, contexts } = makeQueue(applied);
    const reads = [queue.wait()];
    await Promise.resolve();
    // Idle: the round started within the same turn, without waiting for setImmediate.
    assert.equal(contexts.length, 1);
    reads.push(queue.wait());
    await Promise.resolve();
    reads.push(queue.wait());
    await Promise.resolve();
    // A round is in flight: later reads wait for the end of the turn and share the next round.
    assert.equal(contexts.length, 1);
    await nextTurn();
    assert.equal(contexts.length, 2);
    queue.onReadStates(contexts.map((requestCtx) => ({ index: 9, requestCtx })));
    await Promise.all(reads);
    queue.close(etcdErrors.stopped());
  });

  it('holds a confirmed round until the state machine applies its index', async () => {
    const applied = { index: 3 };
    const { queue, contexts } = makeQueue(applied);
    let released = false;
    const read = queue.wait().then(() => {
      released = true;
    });
    await nextTurn();
    queue.onReadStates([{ index: 5, requestCtx: contexts[0]! }]);
    await nextTurn();
    assert.equal(released, false);
    applied.index = 5;
    queue.onApplied(5);
    await read;
    assert.equal(released, true);
    queue.close(etcdErrors.stopped());
  });

  it('gives every read of a refused round the mapped etcd error', async () => {
    const { queue } = makeQueue({ index: 0 }, true);
    const reads = [queue.wait(), queue.wait()];
    const results = await Promise.allSettled(reads);
    for (const result of results) {
      assert.equal(result.status, 'rejected');
      assert.ok(result.reason instanceof EtcdError);
      assert.equal(result.reason.message, 'etcdserver: no leader');
    }
  });

  it('uses contexts that differ between rounds and between members', async () => {
    const first = makeQueue({ index: 0 });
    const reads = [first.queue.wait()];
    await nextTurn();
    reads.push(first.queue.wait());
    await nextTurn();
    const other = makeQueue({ index: 0 });
    reads.push(other.queue.wait());
    await nextTurn();
    const all = [...first.contexts, ...other.contexts].map((c) => Buffer.from(c).toString('hex'));
    assert.equal(new Set(all).size, 3);
    first.queue.close(etcdErrors.stopped());
    other.queue.close(etcdErrors.stopped());
    await Promise.allSettled(reads);
  });
});
