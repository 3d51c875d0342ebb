/** AppendTimes: the newest append covering an index wins; evicted and unknown indexes have none. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { APPEND_TIME_RECORDS_MAX, AppendTimes } from './append-times.js';

describe('AppendTimes', () => {
  it('answers with the newest append of an index', () => {
    const times = new AppendTimes();
    times.record(1, 5, 100);
    times.record(6, 6, 110);
    // A new leader overwrote 4..7 with entries of its own term.
    times.record(4, 7, 200);
    assert.equal(times.appendedAtMs(2), 100);
    assert.equal(times.appendedAtMs(4), 200);
    assert.equal(times.appendedAtMs(6), 200);
    assert.equal(times.appendedAtMs(8), undefined);
  });

  it('forgets the oldest records beyond its maximum', () => {
    const times = new AppendTimes();
    for (let i = 1; i <= APPEND_TIME_RECORDS_MAX + 1; i++) times.record(i, i, i * 10);
    assert.equal(times.appendedAtMs(1), undefined);
    assert.equal(times.appendedAtMs(2), 20);
    assert.equal(
      times.appendedAtMs(APPEND_TIME_RECORDS_MAX + 1),
      (APPEND_TIME_RECORDS_MAX + 1) * 10,
    );
  });

  it('refuses an empty range', () => {
    assert.throws(() => new AppendTimes().record(5, 4, 0), RangeError);
  });
});
