/**
 * The WAL's log index against a plain model: terms, record locations and the entry cache after any
 * sequence of appends, truncations, compactions, resets, location updates and evictions, with
 * payloads small and large enough to fill and cross the cache's chunks.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { runShapeFixture } from '../../test/support/v8-shape.js';
import { type Entry, EntryType, entrySizeBytes } from '../raft/types.js';
import { CACHE_CHUNK_BYTES, type EntryLocation, LogIndex } from './log-index.js';

interface ModelEntry {
  entry: Entry;
  generation: number;
  location: EntryLocation | null;
}

type Op =
  | { kind: 'append'; count: number; bytes: number; term: number; written: boolean }
  | { kind: 'truncate'; back: number }
  | { kind: 'compact'; ahead: number }
  | { kind: 'reset'; ahead: number }
  | { kind: 'write'; back: number; stale: boolean }
  | { kind: 'evict' };

const payloadBytes = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 400 }) },
  { weight: 3, arbitrary: fc.integer({ min: 20_000, max: CACHE_CHUNK_BYTES / 8 }) },
  { weight: 1, arbitrary: fc.integer({ min: CACHE_CHUNK_BYTES / 8 + 1, max: 300_000 }) },
);

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('append' as const),
      count: fc.integer({ min: 1, max: 12 }),
      bytes: payloadBytes,
      term: fc.integer({ min: 0, max: 2 }),
      written: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), back: fc.nat(20) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('compact' as const), ahead: fc.nat(30) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reset' as const), ahead: fc.nat(5) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('write' as const),
      back: fc.nat(40),
      stale: fc.boolean(),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('evict' as const) }) },
);

/** Payload bytes that tell entries (and their terms) apart. */
function payload(index: number, term: number, bytes: number): Uint8Array {
  const data = Buffer.alloc(bytes);
  for (let i = 0; i + 4 <= bytes; i += 4096)
    data.writeUInt32LE((index * 7 + term * 13 + i) >>> 0, i);
  if (bytes > 0) data[bytes - 1] = index & 0xff;
  return data;
}

function check(index: LogIndex, model: ModelEntry[], offset: { index: number; term: number }) {
  assert.equal(index.offsetIndex, offset.index);
  assert.equal(index.term(offset.index), offset.term);
  assert.equal(index.count, model.length);
  if (model.length > 0) assert.equal(index.first, model[0]!.entry.index);
  let cachedBytes = 0;
  let cachedSeen = false;
  for (const { entry, location } of model) {
    assert.equal(index.term(entry.index), entry.term, `term of ${entry.index}`);
    const cached = index.cachedEntry(entry.index);
    if (cached === undefined) {
      assert.ok(!cachedSeen, `entry ${entry.index} left the cache before an older one`);
      assert.ok(location !== null, `unwritten entry ${entry.index} left the cache`);
    } else {
      cachedSeen = true;
      cachedBytes += entrySizeBytes(entry);
      assert.equal(cached.index, entry.index);
      assert.equal(cached.term, entry.term);
      assert.equal(cached.type, entry.type);
      assert.ok(Buffer.from(cached.data).equals(Buffer.from(entry.data)), `data of ${entry.index}`);
    }
    const at = index.location(entry.index);
    if (location === null) assert.equal(at.segment, -1, `location of unwritten ${entry.index}`);
    else assert.deepEqual({ ...at }, location, `location of ${entry.index}`);
  }
  assert.equal(index.cachedBytes, cachedBytes);
  const oldest = model[0]?.location;
  assert.equal(index.oldestSegment(), oldest ? oldest.segment : null);
}

test('the log index matches a plain model of the log and its cache', () => {
  fc.assert(
    fc.property(
      fc.array(op, { minLength: 1, maxLength: 80 }),
      fc.integer({ min: 0, max: 2 * CACHE_CHUNK_BYTES }),
      (ops, cacheBytesMax) => {
        const index = new LogIndex(cacheBytesMax);
        let model: ModelEntry[] = [];
        const offset = { index: 0, term: 0 };
        /** Entries handed out earlier, with a copy of their bytes: later operations keep them. */
        const handedOut: { data: Uint8Array; copy: Buffer }[] = [];
        let generations = 0;
        const next = () => (model.at(-1)?.entry.index ?? offset.index) + 1;
        for (const o of ops) {
          switch (o.kind) {
            case 'append': {
              for (let i = 0; i < o.count; i++) {
                const at = next();
                const term = Math.max(offset.term, model.at(-1)?.entry.term ?? 0) + o.term;
                const entry: Entry = {
                  term,
                  index: at,
                  type: at % 5 === 0 ? EntryType.ConfChange : EntryType.Normal,
                  data: payload(at, term, o.bytes),
                };
                const location = o.written
                  ? { segment: 1 + (at >> 4), positionBytes: at * 100, recordBytes: 40 + o.bytes }
                  : null;
                const generation = index.append(entry, location ?? undefined);
                assert.ok(generation > generations, 'generations grow');
                generations = generation;
                model.push({ entry, generation, location });
              }
              break;
            }
            case 'truncate': {
              if (model.length === 0) break;
              const from = Math.max(model[0]!.entry.index, next() - o.back);
              index.truncateFrom(from);
              model = model.filter((m) => m.entry.index < from);
              break;
            }
            case 'compact': {
              const to = offset.index + o.ahead;
              if (to <= offset.index || to > next() - 1) break;
              const term = model.find((m) => m.entry.index === to)!.entry.term;
              index.compactTo(to, term);
              offset.index = to;
              offset.term = term;
              model = model.filter((m) => m.entry.index > to);
              break;
            }
            case 'reset': {
              const to = next() - 1 + o.ahead;
              const term = Math.max(offset.term, model.at(-1)?.entry.term ?? 0) + 1;
              index.resetTo(to, term);
              offset.index = to;
              offset.term = term;
              model = [];
              break;
            }
            case 'write': {
              const target = model[model.length - 1 - o.back];
              if (target === undefined || target.location !== null) break;
              const location = {
                segment: 9,
                positionBytes: target.entry.index * 10,
                recordBytes: 50,
              };
              const generation = o.stale ? target.generation - 1 : target.generation;
              index.setLocation(
                target.entry.index,
                generation,
                location.segment,
                location.positionBytes,
                location.recordBytes,
              );
              if (!o.stale) target.location = location;
              break;
            }
            case 'evict': {
              index.evict();
              // The cache is within its budget unless its oldest entry is not written yet.
              const oldestCached = model.find(
                (m) => index.cachedEntry(m.entry.index) !== undefined,
              );
              assert.ok(
                index.cachedBytes <= cacheBytesMax || oldestCached?.location === null,
                `cache holds ${index.cachedBytes} bytes over ${cacheBytesMax}`,
              );
              break;
            }
          }
          check(index, model, offset);
          const newest = model.at(-1);
          const cached = newest && index.cachedEntry(newest.entry.index);
          if (cached) handedOut.push({ data: cached.data, copy: Buffer.from(cached.data) });
        }
        for (const { data, copy } of handedOut) {
          assert.ok(Buffer.from(data).equals(copy), 'a handed-out entry changed later');
        }
      },
    ),
    { seed: 20261125, numRuns: 200 },
  );
});

test('a cached entry is a copy: changing the appended data later does not change the cache', () => {
  const index = new LogIndex(1 << 20);
  const data = Buffer.from('put a=1');
  index.append({ term: 1, index: 1, type: EntryType.Normal, data });
  data.fill(0);
  assert.equal(Buffer.from(index.cachedEntry(1)!.data).toString(), 'put a=1');
});

test('the columns grow and move down over compacted slots without losing entries', () => {
  const index = new LogIndex(64 * 1024);
  const term = (i: number) => 1 + Math.floor(i / 1000);
  for (let i = 1; i <= 5000; i++) {
    index.append(
      { term: term(i), index: i, type: EntryType.Normal, data: payload(i, term(i), 16) },
      { segment: 1, positionBytes: i * 64, recordBytes: 64 },
    );
    // Compacting as it goes makes the columns move down instead of growing without end.
    if (i % 700 === 0) index.compactTo(i - 300, term(i - 300));
    index.evict();
  }
  assert.equal(index.first, 4900 - 300 + 1);
  for (let i = index.first; i <= 5000; i++) {
    assert.equal(index.term(i), term(i));
    assert.equal(index.location(i).positionBytes, i * 64);
  }
  const newest = index.cachedEntry(5000)!;
  assert.ok(Buffer.from(newest.data).equals(Buffer.from(payload(5000, term(5000), 16))));
  assert.ok(index.cachedBytes <= 64 * 1024);
});

test('a log index keeps its hidden class through evictions, compactions and 2 GiB of payloads', () => {
  const outcome = runShapeFixture<{ sameBefore: boolean; sameAfter: boolean }>(
    new URL('../../test/fixtures/log-index-shape.ts', import.meta.url),
  );
  assert.equal(outcome.sameBefore, true, 'two fresh log indexes should share a hidden class');
  assert.equal(
    outcome.sameAfter,
    true,
    'a field of LogIndex changed representation: every optimized function using it deoptimizes',
  );
});

test('the first eviction does not deoptimize an optimized writer (the eviction path is warmed)', () => {
  const outcome = runShapeFixture<{
    optimizedBefore: boolean;
    evicted: boolean;
    optimizedAfter: boolean;
  }>(new URL('../../test/fixtures/log-index-eviction-feedback.ts', import.meta.url));
  assert.equal(outcome.optimizedBefore, true, 'the fixture could not get its writer optimized');
  assert.equal(outcome.evicted, true, 'the fixture never filled the cache');
  assert.equal(
    outcome.optimizedAfter,
    true,
    "the first eviction ran code without type feedback and deoptimized its caller (as the WAL's flusher)",
  );
});
