/**
 * Crash consistency of the WAL, tested on file images: the last write torn at every possible byte
 * (the file cut there, or zeros after it as in a preallocated segment), random bit flips in the
 * tail (recovery must yield a prefix holding every durable entry), bit flips in the middle (must be
 * reported as corruption naming the file and offset, never skipped), and missing segments.
 * Randomness is seeded; failure messages name the case.
 */
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir as osTmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import type { Entry, HardState } from '../raft/types.js';
import { comparable, entry } from './contract.js';
import { DiskStorage } from './disk-storage.js';
import { CorruptionError } from './errors.js';
import { encodeBatch } from './record.js';
import { FIRST_BATCH_OFFSET_BYTES } from './segment.js';
import { Wal } from './wal.js';

/**
 * These cases test recovery logic on file images, not the disk, and open thousands of images: a
 * memory file system (where fsync costs nothing) keeps them fast on a loaded machine.
 */
function tmpdir(): string {
  return existsSync('/dev/shm') ? '/dev/shm' : osTmpdir();
}

const segmentBytes = 8 * 1024;
const options = { segmentBytes, cacheBytesMax: 1024, logger: pino({ level: 'silent' }) };

/**
 * Recovery is the WAL's job, so most cases open the WAL alone: thousands of opens stay cheap (no
 * snapshot directory, no lock file). The release case below goes through DiskStorage.
 */
function openWal(dir: string): Promise<Wal> {
  return Wal.open(join(dir, 'wal'), options);
}

/** mulberry32: a small seeded generator, so every run damages the same bytes. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The WAL directory's files by name. */
type Image = Map<string, Buffer>;

function readImage(dir: string): Image {
  const image: Image = new Map();
  const walDir = join(dir, 'wal');
  for (const name of readdirSync(walDir).sort()) {
    image.set(name, readFileSync(join(walDir, name)));
  }
  return image;
}

function writeImage(image: Image): string {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-crash-'));
  mkdirSync(join(dir, 'wal'));
  for (const [name, bytes] of image) writeFileSync(join(dir, 'wal', name), bytes);
  return dir;
}

function segmentNames(image: Image): string[] {
  return [...image.keys()].filter((name) => name.endsWith('.wal'));
}

/** The state before and after one last write, and the bytes that write changed. */
interface Scenario {
  readonly durable: Image;
  readonly full: Image;
  readonly durableEntries: Entry[];
  readonly fullEntries: Entry[];
  readonly durableHardState: HardState;
  readonly fullHardState: HardState;
  /** The file the last write went to, its image before that write, and the changed range. */
  readonly file: string;
  readonly before: Buffer;
  readonly start: number;
  readonly end: number;
}

async function buildScenario(saves: number, entryBytes: number, lastBytes: number) {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-scenario-'));
  const storage = await openWal(dir);
  let index = 0;
  let hardState: HardState = { term: 1, vote: 1, commit: 0 };
  for (let save = 0; save < saves; save++) {
    const entries = [entry(++index, 1, entryBytes), entry(++index, 1, entryBytes + 1)];
    hardState = { term: 1, vote: 1, commit: index - 1 };
    await storage.save(hardState, entries);
  }
  const durableEntries = storage.entries(1, index + 1, Infinity);
  const durable = readImage(dir);
  const last = [entry(index + 1, 2, lastBytes), entry(index + 2, 2, 0), entry(index + 3, 2, 5)];
  const fullHardState = { term: 2, vote: 3, commit: index };
  await storage.save(fullHardState, last);
  const full = readImage(dir);
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
  const changed = segmentNames(full).find((name) => !durable.get(name)?.equals(full.get(name)!));
  assert.ok(changed !== undefined, 'the last write changed no segment');
  const after = full.get(changed)!;
  // A segment the write rolled into existed (header, zeros) before the batch was written.
  const before = durable.get(changed) ?? Buffer.from(after).fill(0, FIRST_BATCH_OFFSET_BYTES);
  let start = 0;
  while (before[start] === after[start]) start++;
  let end = after.length;
  while (before[end - 1] === after[end - 1]) end--;
  return {
    durable,
    full,
    durableEntries,
    fullEntries: [...durableEntries, ...last],
    durableHardState: hardState,
    fullHardState,
    file: changed,
    before,
    start,
    end,
  } satisfies Scenario;
}

/**
 * Opens a damaged image and checks it recovered to one of the two consistent states: everything
 * durable, or everything durable plus the whole last write. Sometimes also checks that the log
 * keeps working: a new append survives another restart.
 */
async function expectPrefix(scenario: Scenario, image: Image, label: string, extend: boolean) {
  const dir = writeImage(image);
  try {
    let storage = await openWal(dir);
    const last = storage.lastIndex();
    const withLast = last === scenario.fullEntries.length;
    const expected = withLast ? scenario.fullEntries : scenario.durableEntries;
    assert.equal(last, expected.length, `${label}: last index ${last}`);
    assert.deepEqual(
      comparable(storage.entries(1, last + 1, Infinity)),
      comparable(expected),
      `${label}: entries`,
    );
    const hardState = withLast ? scenario.fullHardState : scenario.durableHardState;
    assert.deepEqual(storage.hardState(), hardState, `${label}: hard state`);
    if (extend) {
      await storage.save(null, [entry(last + 1, 9, 3)]);
      await storage.close();
      storage = await openWal(dir);
      assert.equal(storage.lastIndex(), last + 1, `${label}: append after recovery`);
      assert.equal(storage.term(last + 1), 9);
    }
    await storage.close();
    return withLast;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function expectCorruption(image: Image, file: string, position: number, label: string) {
  const dir = writeImage(image);
  try {
    await assert.rejects(openWal(dir), (error: unknown) => {
      assert.ok(error instanceof CorruptionError, `${label}: got ${String(error)}`);
      assert.equal(error.code, 'CORRUPT');
      assert.ok(error.file.endsWith(file), `${label}: error names ${error.file}`);
      assert.ok(
        error.offsetBytes <= position,
        `${label}: offset ${error.offsetBytes} > ${position}`,
      );
      assert.match(error.message, new RegExp(`${file} at byte ${error.offsetBytes}`));
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function withFile(image: Image, name: string, bytes: Buffer): Image {
  const copy = new Map(image);
  copy.set(name, bytes);
  return copy;
}

/** The image with the last write torn at byte `cut`: zeros after it, or the file cut there. */
function torn(scenario: Scenario, cut: number, truncate: boolean): Image {
  const after = scenario.full.get(scenario.file)!;
  const bytes = truncate
    ? Buffer.from(after.subarray(0, cut))
    : Buffer.concat([after.subarray(0, cut), scenario.before.subarray(cut)]);
  return withFile(scenario.full, scenario.file, bytes);
}

for (const [label, saves, entryBytes, lastBytes] of [
  ['within a segment', 6, 40, 90],
  ['into a new segment', 10, 300, 1000],
] as const) {
  test(`a last write torn at every byte ${label} recovers to a prefix`, async () => {
    const scenario = await buildScenario(saves, entryBytes, lastBytes);
    if (label === 'into a new segment') {
      assert.ok(segmentNames(scenario.full).length > segmentNames(scenario.durable).length);
    }
    let sawOld = false;
    let sawNew = false;
    for (let cut = scenario.start; cut <= scenario.end; cut++) {
      for (const truncate of [false, true]) {
        const name = `cut at ${cut}${truncate ? ' (file truncated)' : ''}`;
        const extend = cut % 13 === 0;
        const withLast = await expectPrefix(scenario, torn(scenario, cut, truncate), name, extend);
        if (withLast) sawNew = true;
        else sawOld = true;
        // Only the complete write may come back with the last entries.
        if (withLast) assert.equal(cut, scenario.end, `${name}: a partial write was accepted`);
      }
    }
    assert.ok(sawOld && sawNew);
    // A crash before the new segment was even renamed into place.
    await expectPrefix(scenario, scenario.durable, 'durable image', true);
  });
}

test('random bit flips in the tail recover to a prefix holding every durable entry', async () => {
  const scenario = await buildScenario(8, 60, 200);
  const next = random(0x7a11);
  const after = scenario.full.get(scenario.file)!;
  const limit = Math.min(after.length, scenario.end + 64);
  for (let trial = 0; trial < 200; trial++) {
    const position = scenario.start + Math.floor(next() * (limit - scenario.start));
    const bit = Math.floor(next() * 8);
    const bytes = Buffer.from(after);
    bytes[position]! ^= 1 << bit;
    const name = `flip of bit ${bit} at ${position}`;
    await expectPrefix(
      scenario,
      withFile(scenario.full, scenario.file, bytes),
      name,
      trial % 10 === 0,
    );
  }
});

test('random bit flips in the middle are reported as corruption with file and offset', async () => {
  const scenario = await buildScenario(10, 50, 80);
  const next = random(0xc0ffee);
  const name = segmentNames(scenario.full)[0]!;
  const bytes = scenario.full.get(name)!;
  // Every byte before the last write's batch belongs to a batch that another batch follows.
  for (let trial = 0; trial < 200; trial++) {
    const position = Math.floor(next() * scenario.start);
    const damaged = Buffer.from(bytes);
    damaged[position]! ^= 1 << Math.floor(next() * 8);
    await expectCorruption(
      withFile(scenario.full, name, damaged),
      name,
      position,
      `at ${position}`,
    );
  }
});

test('any damage in a completed segment is corruption, even in its last batch', async () => {
  const scenario = await buildScenario(12, 300, 1500);
  const names = segmentNames(scenario.full);
  assert.ok(names.length >= 2);
  const first = scenario.full.get(names[0]!)!;
  let end = first.length;
  while (first[end - 1] === 0) end--;
  const next = random(42);
  for (let trial = 0; trial < 60; trial++) {
    // Bias towards the final batch of the completed segment, where a torn tail would look alike.
    const position =
      trial % 2 === 0 ? end - 1 - Math.floor(next() * 200) : Math.floor(next() * end);
    const damaged = Buffer.from(first);
    damaged[position]! ^= 1 << Math.floor(next() * 8);
    await expectCorruption(
      withFile(scenario.full, names[0]!, damaged),
      names[0]!,
      position,
      `${position}`,
    );
  }
  // Garbage in the unwritten space of a completed segment is corruption too.
  const garbage = Buffer.from(first);
  garbage[first.length - 3] = 0x55;
  await expectCorruption(
    withFile(scenario.full, names[0]!, garbage),
    names[0]!,
    first.length,
    'garbage',
  );
});

test('a missing segment in the middle of the retained log is corruption', async () => {
  const scenario = await buildScenario(30, 300, 100);
  const names = segmentNames(scenario.full);
  assert.ok(names.length >= 3, `only ${names.length} segments`);
  const image = new Map(scenario.full);
  image.delete(names[1]!);
  const dir = writeImage(image);
  try {
    await assert.rejects(openWal(dir), (error: unknown) => {
      assert.ok(error instanceof CorruptionError);
      assert.match(error.message, /missing/);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('compaction releases whole segments and the log reopens from the rest', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-release-'));
  try {
    let storage = await DiskStorage.open(dir, options);
    for (let index = 1; index <= 120; index++) {
      await storage.save({ term: 1, vote: 1, commit: index }, [entry(index, 1, 200)]);
    }
    const before = storage.walSegmentPaths();
    assert.ok(before.length >= 4, `expected several segments, got ${before.length}`);
    await storage.createSnapshot(100, conf, new Uint8Array([1]));
    await storage.compact(100);
    const after = storage.walSegmentPaths();
    assert.ok(after.length < before.length, 'no segment was released');
    assert.ok(!after.includes(before[0]!));
    await storage.close();
    storage = await DiskStorage.open(dir, options);
    assert.equal(storage.firstIndex(), 101);
    assert.equal(storage.lastIndex(), 120);
    assert.equal(storage.term(100), 1);
    assert.deepEqual(storage.initialState().hardState, { term: 1, vote: 1, commit: 120 });
    assert.deepEqual(
      comparable(storage.entries(101, 121, Infinity)),
      comparable(Array.from({ length: 20 }, (_, i) => entry(101 + i, 1, 200))),
    );
    await storage.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const conf = { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };

test('entry data that looks like a batch header cannot turn a torn tail into corruption', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-fake-'));
  try {
    const storage = await openWal(dir);
    await storage.save(null, [entry(1, 1, 40)]);
    const durable = readImage(dir);
    // Payload: 3 bytes to reach 8-byte alignment in the file, then a valid batch header record.
    const fake = Buffer.alloc(3 + 24 + 200);
    encodeBatch(fake, 3, 64);
    await storage.save(null, [{ ...entry(2, 1), data: new Uint8Array(fake) }, entry(3, 1, 300)]);
    const full = readImage(dir);
    await storage.close();
    const name = segmentNames(full)[0]!;
    const before = durable.get(name)!;
    const after = full.get(name)!;
    let end = after.length;
    while (before[end - 1] === after[end - 1]) end--;
    // Tear off the end of the last record: the batch header is intact, its last record is not.
    const torn = Buffer.concat([after.subarray(0, end - 100), before.subarray(end - 100)]);
    const recovered = writeImage(withFile(full, name, torn));
    try {
      const reopened = await openWal(recovered);
      assert.equal(reopened.lastIndex(), 1);
      await reopened.close();
    } finally {
      rmSync(recovered, { recursive: true, force: true });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
