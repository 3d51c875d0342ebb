/** The flow-control halves in isolation: credit gating on the sender, buffering and credit return on
 * the receiver. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RpcError } from './errors.js';
import { CreditGate, CreditReturner, MessageQueue } from './stream.js';

test('CreditGate blocks at zero credit and wakes on a grant', async () => {
  const gate = new CreditGate(10);
  assert.equal(gate.ready(), null);
  gate.consume(15); // overdraw by one message is allowed
  const waiting = gate.ready();
  assert.ok(waiting !== null);
  let woke = false;
  void waiting.then(() => {
    woke = true;
  });
  gate.grant(3);
  await Promise.resolve();
  assert.equal(woke, false, 'credit still not positive');
  gate.grant(5);
  await waiting;
  assert.equal(gate.available, 3);
});

test('CreditGate failure rejects the waiting sender', async () => {
  const gate = new CreditGate(0);
  const waiting = gate.ready()!;
  gate.fail(new RpcError('CANCELLED', 'gone'));
  await assert.rejects(
    waiting,
    (error: unknown) => error instanceof RpcError && error.code === 'CANCELLED',
  );
});

test('MessageQueue hands messages out in order and reports consumption', async () => {
  const consumed: number[] = [];
  const queue = new MessageQueue<string>(
    (bytes) => consumed.push(bytes),
    () => {},
  );
  queue.push('a', 1);
  queue.push('b', 2);
  assert.equal(queue.bufferedBytes, 3);
  const pending = queue.next();
  assert.deepEqual(await pending, { value: 'a', done: false });
  const waiter = queue.next().then(() => queue.next());
  queue.push('c', 4);
  queue.end();
  assert.deepEqual(await waiter, { value: 'c', done: false });
  assert.deepEqual(await queue.next(), { value: undefined, done: true });
  assert.deepEqual(consumed, [1, 2, 4]);
});

test('abandoning a MessageQueue calls back so the stream can be cancelled', async () => {
  let abandoned = 0;
  const queue = new MessageQueue<number>(
    () => {},
    () => abandoned++,
  );
  queue.push(1, 1);
  for await (const value of queue) {
    assert.equal(value, 1);
    break;
  }
  assert.equal(abandoned, 1);
  assert.equal(queue.finished, true);
});

test('CreditReturner batches grants to half a window', () => {
  const grants: number[] = [];
  const returner = new CreditReturner(100, (bytes) => grants.push(bytes));
  for (let i = 0; i < 10; i++) returner.consumedBytes(20);
  // Threshold 50: a grant goes out on every third 20-byte message; the last 20 bytes wait.
  assert.deepEqual(grants, [60, 60, 60]);
});
