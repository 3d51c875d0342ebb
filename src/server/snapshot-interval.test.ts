/**
 * The per-member snapshot threshold: more than --snapshot-count (as etcd) and at most half as much
 * again, the same for the same member and index, and spread across members so they do not all
 * snapshot at one index.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { snapshotInterval } from './member-core.js';

test('snapshot thresholds stay above --snapshot-count and within half as much again', () => {
  for (const count of [1, 2, 3, 20, 100_000]) {
    for (let member = 1; member <= 50; member++) {
      for (const index of [0, 1, 99_999, 2 ** 40 + 7]) {
        const every = snapshotInterval(count, member * 7_919_000_013, index);
        assert.ok(
          every > count && every <= count + 1 + Math.floor(count / 2),
          `${count}: ${every}`,
        );
        assert.equal(snapshotInterval(count, member * 7_919_000_013, index), every);
      }
    }
  }
});

test('members of one cluster get different thresholds at the same index', () => {
  // Three members snapshotting from index 0, then from wherever each took its first snapshot.
  const ids = [0x5a3c_91e2_04, 0x11f0_7d3b_9a, 0x7e02_c4a1_5f];
  const first = ids.map((id) => snapshotInterval(100_000, id, 0));
  assert.equal(new Set(first).size, 3, `thresholds ${first.join(', ')}`);
  const spread = Math.max(...first) - Math.min(...first);
  assert.ok(spread > 1000, `thresholds ${first.join(', ')} are too close`);
  // Across many member ids the thresholds cover the whole allowed range.
  const many = Array.from({ length: 2000 }, (_, i) =>
    snapshotInterval(100_000, i * 104_729 + 1, 0),
  );
  assert.ok(Math.min(...many) < 105_000 && Math.max(...many) > 145_000);
});
