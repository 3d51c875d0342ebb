/**
 * The shared contract suite for `RaftStorage` implementations. `MemoryStorage` and `DiskStorage`
 * both run it (contract.test.ts), so they behave identically for everything the raft core and the
 * member driver rely on.
 *
 * Decisions this suite pins down where src/raft/storage.ts leaves room:
 * - Writes may return void (MemoryStorage) or a promise (DiskStorage); a rejected write is either a
 *   synchronous throw or a rejected promise, and leaves the storage unchanged.
 * - Reads see a write as soon as it is issued (read-your-writes), before its promise settles.
 * - `entries(lo, lo, n)` is an empty array; `entries` returns at least one entry when the range is
 *   not empty, even if that entry alone exceeds `maxBytes`.
 * - `compact(i)` with `i` at or below the current compaction point is a no-op, not an error.
 * - `applySnapshot` raises `hardState.commit` to the snapshot index if it was lower, and the
 *   snapshot's membership becomes `initialState().confState`.
 * - `createSnapshot` at an index not newer than the current snapshot is SNAPSHOT_OUT_OF_DATE, and
 *   beyond `lastIndex()` is UNAVAILABLE; `term(firstIndex() - 1)` is always answered.
 * - After a restart (`reopen`), everything whose write settled is present, unchanged.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RaftStorage } from '../raft/storage.js';
import {
  type ConfState,
  type Entry,
  EntryType,
  entrySizeBytes,
  StorageError,
} from '../raft/types.js';

/** How the suite gets storages: a fresh one, and the same one after a restart. */
export interface StorageHarness {
  open(): Promise<RaftStorage>;
  /** Simulates a restart; an in-memory harness may return the same object. */
  reopen(storage: RaftStorage): Promise<RaftStorage>;
  close(storage: RaftStorage): Promise<void>;
}

export function entry(index: number, term: number, size = 8, type: EntryType = EntryType.Normal) {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (index * 31 + term * 7 + i) & 0xff;
  return { index, term, type, data } satisfies Entry;
}

export function range(from: number, to: number, term: number, size = 8): Entry[] {
  const result: Entry[] = [];
  for (let index = from; index <= to; index++) result.push(entry(index, term, size));
  return result;
}

/** Entries in a comparable form (payload as hex), independent of Buffer vs Uint8Array. */
export function comparable(entries: readonly Entry[]) {
  return entries.map((e) => ({
    index: e.index,
    term: e.term,
    type: e.type,
    data: Buffer.from(e.data).toString('hex'),
  }));
}

const conf: ConfState = {
  voters: [1, 2, 3],
  learners: [4],
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
};

function hasCode(code: StorageError['code']) {
  return (error: unknown) => error instanceof StorageError && error.code === code;
}

async function rejects(action: () => unknown, expected: RegExp | ((e: unknown) => boolean)) {
  await assert.rejects(async () => action(), expected as RegExp);
}

/** A storage's whole visible state, for comparing before and after a restart or a refusal. */
export function visibleState(storage: RaftStorage) {
  const first = storage.firstIndex();
  const last = storage.lastIndex();
  return {
    first,
    last,
    boundaryTerm: storage.term(first - 1),
    entries: comparable(storage.entries(first, last + 1, Number.POSITIVE_INFINITY)),
    hardState: storage.initialState().hardState,
    snapshot: storage.snapshot().metadata,
    snapshotData: Buffer.from(storage.snapshot().data).toString('hex'),
  };
}

type ContractCase = (
  storage: RaftStorage,
  harness: StorageHarness,
) => Promise<RaftStorage | undefined>;

/** The cases, by title. Each returns the storage it ends with if it reopened it. */
const contractCases: Record<string, ContractCase> = {
  'an empty log': async (s) => {
    assert.equal(s.firstIndex(), 1);
    assert.equal(s.lastIndex(), 0);
    assert.equal(s.term(0), 0);
    assert.equal(s.snapshot().metadata.index, 0);
    assert.deepEqual(s.initialState().hardState, { term: 0, vote: 0, commit: 0 });
    assert.deepEqual(s.entries(1, 1, 100), []);
    assert.throws(() => s.term(1), hasCode('UNAVAILABLE'));
    assert.throws(() => s.entries(1, 2, 100), hasCode('UNAVAILABLE'));
    return undefined;
  },
  'append and read back, overwrite a conflicting suffix': async (s, harness) => {
    await s.save(null, range(1, 5, 1));
    assert.deepEqual(comparable(s.entries(1, 6, Infinity)), comparable(range(1, 5, 1)));
    await s.save({ term: 2, vote: 3, commit: 2 }, [entry(3, 2), entry(4, 2)]);
    assert.equal(s.lastIndex(), 4);
    assert.deepEqual(
      [1, 2, 3, 4].map((i) => s.term(i)),
      [1, 1, 2, 2],
    );
    assert.deepEqual(comparable(s.entries(3, 5, Infinity)), comparable([entry(3, 2), entry(4, 2)]));
    await s.save(null, [entry(5, 2)]);
    const reopened = await harness.reopen(s);
    assert.equal(reopened.lastIndex(), 5);
    assert.deepEqual(comparable(reopened.entries(1, 6, Infinity)), [
      ...comparable(range(1, 2, 1)),
      ...comparable([entry(3, 2), entry(4, 2), entry(5, 2)]),
    ]);
    assert.deepEqual(reopened.initialState().hardState, { term: 2, vote: 3, commit: 2 });
    return reopened;
  },
  'refused writes change nothing': async (s) => {
    await s.save(null, range(1, 3, 1));
    const before = visibleState(s);
    await rejects(() => s.save(null, [entry(5, 1)]), /gap/);
    await rejects(() => s.save(null, [entry(4, 1), entry(6, 1)]), /contiguous/);
    await rejects(() => s.compact(2), /not covered/);
    assert.deepEqual(visibleState(s), before);
    return undefined;
  },
  'hard state alone and with entries': async (s, harness) => {
    await s.save({ term: 1, vote: 1, commit: 0 }, []);
    assert.deepEqual(s.initialState().hardState, { term: 1, vote: 1, commit: 0 });
    await s.save({ term: 3, vote: 2, commit: 1 }, range(1, 2, 3));
    const reopened = await harness.reopen(s);
    assert.deepEqual(reopened.initialState().hardState, { term: 3, vote: 2, commit: 1 });
    assert.equal(reopened.lastIndex(), 2);
    return reopened;
  },
  'entries are limited by bytes but always return one': async (s) => {
    await s.save(null, range(1, 4, 1, 100));
    const one = entrySizeBytes(entry(1, 1, 100));
    assert.equal(s.entries(1, 5, 0).length, 1);
    assert.equal(s.entries(1, 5, one).length, 1);
    assert.equal(s.entries(1, 5, 2 * one - 1).length, 1);
    assert.equal(s.entries(1, 5, 2 * one).length, 2);
    assert.equal(s.entries(2, 5, 3 * one).length, 3);
    assert.equal(s.entries(1, 5, Infinity).length, 4);
    assert.deepEqual(s.entries(3, 3, Infinity), []);
    return undefined;
  },
  'terms and ranges at the boundaries': async (s) => {
    await s.save(null, [...range(1, 3, 1), ...range(4, 6, 2)]);
    await s.createSnapshot(3, conf, new Uint8Array([1, 2, 3]));
    await s.compact(3);
    assert.equal(s.firstIndex(), 4);
    assert.equal(s.term(3), 1);
    assert.equal(s.term(6), 2);
    assert.throws(() => s.term(2), hasCode('COMPACTED'));
    assert.throws(() => s.term(7), hasCode('UNAVAILABLE'));
    assert.throws(() => s.entries(3, 5, Infinity), hasCode('COMPACTED'));
    assert.throws(() => s.entries(4, 8, Infinity), hasCode('UNAVAILABLE'));
    assert.deepEqual(comparable(s.entries(4, 7, Infinity)), comparable(range(4, 6, 2)));
    await rejects(() => s.save(null, [entry(3, 2)]), /compacted/);
    return undefined;
  },
  'snapshot then compact, and both survive a restart': async (s, harness) => {
    await s.save({ term: 2, vote: 1, commit: 8 }, [...range(1, 4, 1), ...range(5, 10, 2)]);
    await rejects(() => s.createSnapshot(11, conf, new Uint8Array()), hasCode('UNAVAILABLE'));
    await s.createSnapshot(6, conf, new Uint8Array([9, 9]));
    assert.equal(s.firstIndex(), 1, 'createSnapshot keeps the entries');
    assert.deepEqual(s.snapshot().metadata, { index: 6, term: 2, confState: conf });
    await rejects(
      () => s.createSnapshot(6, conf, new Uint8Array()),
      hasCode('SNAPSHOT_OUT_OF_DATE'),
    );
    await rejects(() => s.compact(7), /not covered/);
    await s.compact(5);
    await s.compact(4); // At or below the compaction point: a no-op.
    assert.equal(s.firstIndex(), 6);
    assert.equal(s.term(5), 2);
    const reopened = await harness.reopen(s);
    assert.equal(reopened.firstIndex(), 6);
    assert.equal(reopened.term(5), 2);
    assert.equal(reopened.lastIndex(), 10);
    assert.deepEqual(reopened.snapshot().metadata, { index: 6, term: 2, confState: conf });
    assert.deepEqual([...reopened.snapshot().data], [9, 9]);
    assert.deepEqual(reopened.initialState().confState, conf);
    assert.deepEqual(comparable(reopened.entries(6, 11, Infinity)), comparable(range(6, 10, 2)));
    return reopened;
  },
  'applySnapshot replaces the log': async (s, harness) => {
    await s.save({ term: 1, vote: 1, commit: 2 }, range(1, 5, 1));
    const snapshot = {
      metadata: { index: 20, term: 4, confState: conf },
      data: new Uint8Array([5]),
    };
    await s.applySnapshot(snapshot);
    assert.equal(s.firstIndex(), 21);
    assert.equal(s.lastIndex(), 20);
    assert.equal(s.term(20), 4);
    assert.deepEqual(s.initialState().hardState, { term: 1, vote: 1, commit: 20 });
    assert.deepEqual(s.initialState().confState, conf);
    await rejects(() => s.applySnapshot(snapshot), hasCode('SNAPSHOT_OUT_OF_DATE'));
    await s.save(null, range(21, 22, 4));
    const reopened = await harness.reopen(s);
    assert.equal(reopened.firstIndex(), 21);
    assert.equal(reopened.lastIndex(), 22);
    assert.equal(reopened.term(20), 4);
    assert.deepEqual(reopened.snapshot().metadata, snapshot.metadata);
    assert.deepEqual([...reopened.snapshot().data], [5]);
    assert.deepEqual(reopened.initialState().hardState, { term: 1, vote: 1, commit: 20 });
    return reopened;
  },
  'writes issued without waiting are all kept, in order': async (s, harness) => {
    const writes: unknown[] = [];
    for (let index = 1; index <= 50; index++) {
      writes.push(s.save({ term: 1, vote: 0, commit: index - 1 }, [entry(index, 1, index)]));
    }
    writes.push(s.save(null, [entry(40, 2, 3)])); // Replaces 40..50 while they are in flight.
    assert.equal(s.lastIndex(), 40, 'reads see issued writes at once');
    await Promise.all(writes);
    const reopened = await harness.reopen(s);
    assert.equal(reopened.lastIndex(), 40);
    assert.equal(reopened.term(40), 2);
    assert.deepEqual(
      comparable(reopened.entries(1, 40, Infinity)),
      comparable(Array.from({ length: 39 }, (_, i) => entry(i + 1, 1, i + 1))),
    );
    assert.deepEqual(reopened.initialState().hardState, { term: 1, vote: 0, commit: 49 });
    return reopened;
  },
  'a long log with large entries survives restarts and compaction': async (s, harness) => {
    let storage = s;
    let term = 1;
    for (let round = 0; round < 6; round++) {
      const from = storage.lastIndex() + 1;
      await storage.save(null, range(from, from + 39, term, 700));
      if (round % 2 === 1) {
        const at = storage.lastIndex() - 10;
        await storage.createSnapshot(at, conf, new Uint8Array(2000).fill(round));
        await storage.compact(at - 5);
      }
      term++;
      const before = visibleState(storage);
      storage = await harness.reopen(storage);
      assert.deepEqual(visibleState(storage), before);
    }
    assert.equal(storage.lastIndex(), 240);
    return storage;
  },
};

/** Registers every contract case as a node:test test named `<name>: <case>`. */
export function runStorageContract(name: string, harness: StorageHarness): void {
  for (const [title, body] of Object.entries(contractCases)) {
    test(`${name}: ${title}`, async () => {
      let storage = await harness.open();
      try {
        storage = (await body(storage, harness)) ?? storage;
      } finally {
        await harness.close(storage);
      }
    });
  }
}
