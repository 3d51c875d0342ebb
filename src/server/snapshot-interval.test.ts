/**
 * The per-member snapshot threshold: more than --snapshot-count (as etcd) and at most half as much
 * again, the same for the same member and index, and spread across members so they do not all
 * snapshot at one index; and when a big store defers its next snapshot (snapshotDue).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  SNAPSHOT_DEFER_FROM_BYTES,
  SNAPSHOT_DEFER_INTERVALS_MAX,
  snapshotDue,
  snapshotInterval,
} from './member-core.js';

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

test('a snapshot of a small store follows the count alone, as etcd', () => {
  const every = 120_000;
  for (const copied of [0, 4096, SNAPSHOT_DEFER_FROM_BYTES - 1]) {
    assert.equal(snapshotDue(every - 1, every, 10 * copied, copied), false, `${copied}`);
    assert.equal(snapshotDue(every, every, 0, copied), true, `${copied}`);
  }
});

test('after a big copy the next snapshot waits until the log written since is as big', () => {
  const every = 120_000;
  const copied = 200 * 1024 * 1024;
  assert.equal(snapshotDue(every, every, copied - 1, copied), false);
  assert.equal(snapshotDue(3 * every, every, copied - 1, copied), false);
  assert.equal(snapshotDue(every, every, copied, copied), true);
  // The count still comes first: a log of huge entries does not snapshot sooner.
  assert.equal(snapshotDue(every - 1, every, 10 * copied, copied), false);
});

test('a deferred snapshot waits no more than a bounded number of intervals', () => {
  const every = 120_000;
  const copied = 2 * 1024 * 1024 * 1024;
  const limit = every * SNAPSHOT_DEFER_INTERVALS_MAX;
  assert.equal(snapshotDue(limit - 1, every, 0, copied), false);
  assert.equal(snapshotDue(limit, every, 0, copied), true);
});
