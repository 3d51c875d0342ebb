/** The transmit-limited queue: order, replacement, byte budget and limits. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BROADCAST_QUEUE_MAX, BroadcastQueue } from './broadcast-queue.js';
import { msgpackSizeBytes } from './size.js';
import type { SuspectMessage } from './types.js';

const suspect = (name: string, incarnation = 0): SuspectMessage => ({
  type: 'suspect',
  name,
  incarnation,
  from: 'z',
});

test('least-transmitted first, newest first among equals', () => {
  const queue = new BroadcastQueue();
  queue.enqueue(suspect('a'));
  queue.enqueue(suspect('b'));
  const size = msgpackSizeBytes(suspect('a'));
  assert.deepEqual(
    queue.take(0, size, 10).map((m) => m.name),
    ['b'],
  );
  assert.deepEqual(
    queue.take(0, size, 10).map((m) => m.name),
    ['a'],
  );
  queue.enqueue(suspect('c'));
  assert.deepEqual(
    queue.take(0, 2 * size, 10).map((m) => m.name),
    ['c', 'b'],
  );
});

test('a newer update about a member replaces the queued one', () => {
  const queue = new BroadcastQueue();
  queue.enqueue(suspect('a', 1));
  queue.enqueue(suspect('a', 2));
  assert.equal(queue.length, 1);
  assert.deepEqual(queue.take(0, 1000, 10), [suspect('a', 2)]);
});

test('updates leave after the limit and the queue stays bounded', () => {
  const queue = new BroadcastQueue();
  queue.enqueue(suspect('a'));
  for (let round = 0; round < 3; round++) assert.equal(queue.take(0, 1000, 3).length, 1);
  assert.equal(queue.length, 0);
  for (let index = 0; index < BROADCAST_QUEUE_MAX + 10; index++)
    queue.enqueue(suspect(`m${index}`));
  assert.equal(queue.length, BROADCAST_QUEUE_MAX);
  assert.equal(queue.dropped, 10);
});
