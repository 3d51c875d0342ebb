/** The Lifeguard suspicion formulas against hand-computed values. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { retransmitLimit } from './broadcast-queue.js';
import { expectedConfirmations, suspicionMinTimeoutMs, suspicionTimeoutMs } from './suspicion.js';

test('minimum suspicion timeout scales with log10 of the cluster size', () => {
  assert.equal(suspicionMinTimeoutMs(4, 1, 1000), 4000);
  assert.equal(suspicionMinTimeoutMs(4, 10, 1000), 4000);
  assert.equal(suspicionMinTimeoutMs(4, 100, 1000), 8000);
  assert.equal(suspicionMinTimeoutMs(4, 1000, 500), 6000);
});

test('the timeout decays logarithmically from max to min with confirmations', () => {
  const timeouts = [0, 1, 2, 3].map((c) => suspicionTimeoutMs(c, 3, 2000, 12_000));
  assert.deepEqual(timeouts, [12_000, 7000, 4075, 2000]);
  assert.equal(suspicionTimeoutMs(5, 3, 2000, 12_000), 2000);
  assert.equal(suspicionTimeoutMs(0, 0, 2000, 12_000), 2000);
});

test('expected confirmations are suspicionMult - 2, or 0 in tiny clusters', () => {
  assert.equal(expectedConfirmations(4, 10), 2);
  assert.equal(expectedConfirmations(4, 3), 0);
  assert.equal(expectedConfirmations(4, 4), 2);
});

test('retransmit limit is retransmitMult * ceil(log10(n + 1))', () => {
  assert.equal(retransmitLimit(4, 1), 4);
  assert.equal(retransmitLimit(4, 9), 4);
  assert.equal(retransmitLimit(4, 10), 8);
  assert.equal(retransmitLimit(4, 100), 12);
});
