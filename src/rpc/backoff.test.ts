/** Backoff delays grow exponentially up to the cap, stay within the jitter band, and a seeded
 * random source makes them reproducible. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BACKOFF_DEFAULTS, backoffDelayMs, seededRandom } from './backoff.js';

test('delays grow by the multiplier and stop at the cap', () => {
  const options = { ...BACKOFF_DEFAULTS, jitter: 0, initialMs: 100, multiplier: 2, maxMs: 1000 };
  const delays = [1, 2, 3, 4, 5, 6].map((attempt) => backoffDelayMs(options, attempt));
  assert.deepEqual(delays, [100, 200, 400, 800, 1000, 1000]);
});

test('jitter keeps every delay within its band and actually varies it', () => {
  const options = { ...BACKOFF_DEFAULTS, jitter: 0.2, initialMs: 1000, random: seededRandom(7) };
  const delays = Array.from({ length: 200 }, () => backoffDelayMs(options, 1));
  for (const delay of delays) assert.ok(delay >= 800 && delay <= 1200, `delay ${delay}`);
  assert.ok(new Set(delays).size > 50, 'jitter spreads the delays');
});

test('the same seed gives the same delays', () => {
  const run = (seed: number) => {
    const options = { ...BACKOFF_DEFAULTS, random: seededRandom(seed) };
    return [1, 2, 3, 4].map((attempt) => backoffDelayMs(options, attempt));
  };
  assert.deepEqual(run(3), run(3));
  assert.notDeepEqual(run(3), run(4));
});
