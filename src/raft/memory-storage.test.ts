import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryStorage } from './memory-storage.js';
import { type Entry, EntryType, StorageError } from './types.js';

function entry(index: number, term: number, size = 0): Entry {
  return { index, term, type: EntryType.Normal, data: new Uint8Array(size) };
}

test('append, overwrite a conflicting suffix, read back', () => {
  const storage = new MemoryStorage();
  assert.equal(storage.firstIndex(), 1);
  assert.equal(storage.lastIndex(), 0);
  storage.save(null, [entry(1, 1), entry(2, 1), entry(3, 1)]);
  storage.save({ term: 2, vote: 3, commit: 1 }, [entry(2, 2)]);
  assert.equal(storage.lastIndex(), 2);
  assert.equal(storage.term(2), 2);
  assert.deepEqual(storage.initialState().hardState, { term: 2, vote: 3, commit: 1 });
  assert.throws(() => storage.save(null, [entry(5, 2)]), /gap/);
});

test('entries are limited by bytes but always return one', () => {
  const storage = new MemoryStorage();
  storage.save(null, [entry(1, 1, 100), entry(2, 1, 100), entry(3, 1, 100)]);
  assert.equal(storage.entries(1, 4, 1).length, 1);
  assert.equal(storage.entries(1, 4, 250).length, 2);
  assert.equal(storage.entries(1, 4, Number.POSITIVE_INFINITY).length, 3);
});

test('snapshot then compact keeps the boundary term', () => {
  const storage = new MemoryStorage();
  storage.save(null, [entry(1, 1), entry(2, 1), entry(3, 2), entry(4, 2)]);
  assert.throws(() => storage.compact(2), /not covered/);
  storage.createSnapshot(
    3,
    { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
    new Uint8Array([7]),
  );
  storage.compact(3);
  assert.equal(storage.firstIndex(), 4);
  assert.equal(storage.term(3), 2);
  assert.throws(
    () => storage.entries(3, 5, 1000),
    (error: unknown) => error instanceof StorageError && error.code === 'COMPACTED',
  );
  assert.deepEqual(
    storage.entries(4, 5, 1000).map((e) => e.index),
    [4],
  );
});
