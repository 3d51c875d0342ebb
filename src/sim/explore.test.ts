/**
 * CI's fixed set of exploration seeds (the long exploration is `npm run sim -- --seeds N`), and a
 * proof that the checker has teeth: a driver that breaks the persistence contract is caught.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Raft } from '../raft/raft.js';
import { exploreSeed } from './explore.js';

/** Enough seeds to cover every configuration branch many times, in well under a minute. */
const CI_SEEDS = 2000;

test(`exploration: seeds 1..${CI_SEEDS} keep every invariant and recover liveness`, () => {
  const failures: string[] = [];
  let committed = 0;
  for (let seed = 1; seed <= CI_SEEDS; seed++) {
    const result = exploreSeed(seed);
    committed += result.committed;
    if (!result.ok) failures.push(`seed ${seed}: ${result.error?.split('\n')[0]}`);
  }
  assert.deepEqual(failures, []);
  assert.ok(committed > CI_SEEDS * 100, `only ${committed} proposals committed in total`);
});

test('exploration catches a driver that acknowledges before persisting', () => {
  // These seeds are known to expose the broken driver within their run (a leader missing a
  // committed entry, two members applying different entries); the correct driver passes them.
  for (const seed of [46, 88, 115]) {
    const result = exploreSeed(seed, { unsafeSendBeforePersist: true });
    assert.equal(result.ok, false);
    assert.match(result.error ?? '', /SafetyViolation/);
  }
});

test('exploration catches lease reads served after the lease ran out', () => {
  const leaseValid = Raft.prototype.leaseValid;
  Raft.prototype.leaseValid = () => true; // A lease that never expires.
  try {
    // Seed 79 drains while writing (RawNode.drain), seed 514 does not: both modes are caught.
    for (const seed of [79, 514]) {
      const result = exploreSeed(seed);
      assert.equal(result.ok, false);
      assert.match(result.error ?? '', /linearizable read/);
    }
  } finally {
    Raft.prototype.leaseValid = leaseValid;
  }
  assert.equal(exploreSeed(79).ok, true, 'the real lease keeps reads linearizable');
});

test('a seed replays exactly', () => {
  const a = exploreSeed(42);
  const b = exploreSeed(42);
  assert.deepEqual(a, b);
});
