/**
 * Model-based check: long seeded random sequences of writes (appends, conflicting overwrites, hard
 * states, snapshots, compactions, installed snapshots, restarts) applied to MemoryStorage (the
 * model) and DiskStorage side by side. After every step both must show the same state, and a step
 * must fail on both or on neither. Tiny segments and cache make segment rolls, releases and reads
 * from disk frequent.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { MemoryStorage } from '../raft/memory-storage.js';
import type { RaftStorage } from '../raft/storage.js';
import { type ConfState, type Entry, StorageError } from '../raft/types.js';
import { entry, visibleState } from './contract.js';
import { DiskStorage } from './disk-storage.js';

const options = { segmentBytes: 4096, cacheBytesMax: 700, logger: pino({ level: 'silent' }) };
const stepsPerSeed = 250;

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

type Step = { name: string; run: (storage: RaftStorage) => unknown };

function confOf(size: number): ConfState {
  const voters = Array.from({ length: size }, (_, i) => i + 1);
  return { voters, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
}

/** Picks the next step from the model's state; some steps are deliberately invalid. */
function nextStep(model: RaftStorage, next: () => number, term: { value: number }): Step {
  const pick = (n: number) => Math.floor(next() * n);
  const first = model.firstIndex();
  const last = model.lastIndex();
  const snapshotIndex = model.snapshot().metadata.index;
  const choice = pick(100);
  if (choice < 55) {
    // Append, sometimes overwriting a suffix (a new leader), sometimes leaving a gap (invalid).
    const overwrite = choice < 12 && last >= first;
    const from = overwrite ? first + pick(last - first + 1) : choice < 14 ? last + 2 : last + 1;
    if (overwrite) term.value++;
    const count = 1 + pick(6);
    const entries: Entry[] = [];
    for (let i = 0; i < count; i++) entries.push(entry(from + i, term.value, pick(300)));
    const hardState = pick(3) === 0 ? { term: term.value, vote: 1, commit: from - 1 } : null;
    return { name: `save ${from}+${count}`, run: (s) => s.save(hardState, entries) };
  }
  if (choice < 65) {
    const hardState = { term: term.value, vote: pick(4), commit: pick(last + 1) };
    return { name: 'hard state', run: (s) => s.save(hardState, []) };
  }
  if (choice < 77) {
    const index = snapshotIndex + 1 + pick(Math.max(1, last - snapshotIndex + 2));
    const data = new Uint8Array(pick(500)).fill(index & 0xff);
    return {
      name: `createSnapshot ${index}`,
      run: (s) => s.createSnapshot(index, confOf(3), data),
    };
  }
  if (choice < 90) {
    const index = first - 2 + pick(Math.max(1, snapshotIndex - first + 4));
    return { name: `compact ${index}`, run: (s) => s.compact(index) };
  }
  if (choice < 94) {
    const index = snapshotIndex + pick(last + 20 - snapshotIndex);
    term.value++;
    const snapshot = {
      metadata: { index, term: term.value, confState: confOf(5) },
      data: new Uint8Array([index & 0xff]),
    };
    return { name: `applySnapshot ${index}`, run: (s) => s.applySnapshot(snapshot) };
  }
  return { name: 'restart', run: () => 'restart' };
}

async function outcome(run: () => unknown): Promise<string> {
  try {
    const result = await run();
    return result === 'restart' ? 'restart' : 'ok';
  } catch (error) {
    return error instanceof StorageError ? `StorageError ${error.code}` : 'refused';
  }
}

for (const seed of [1, 2, 3]) {
  test(`DiskStorage matches MemoryStorage over ${stepsPerSeed} random steps (seed ${seed})`, async () => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'shoal-model-'));
    const model = new MemoryStorage();
    let disk = await DiskStorage.open(dir, options);
    const next = random(seed);
    const term = { value: 1 };
    const counts = new Map<string, number>();
    try {
      for (let step = 0; step < stepsPerSeed; step++) {
        const { name, run } = nextStep(model, next, term);
        const expected = await outcome(() => run(model));
        const actual = await outcome(() => run(disk));
        assert.equal(actual, expected, `step ${step} (${name})`);
        if (actual === 'restart') {
          await disk.close();
          disk = await DiskStorage.open(dir, options);
        }
        assert.deepEqual(visibleState(disk), visibleState(model), `after step ${step} (${name})`);
        const kind = `${name.split(' ')[0]} ${actual}`;
        counts.set(kind, (counts.get(kind) ?? 0) + 1);
      }
      // The walk must have exercised the interesting paths, not only appends.
      for (const kind of [
        'compact ok',
        'applySnapshot ok',
        'createSnapshot ok',
        'restart restart',
      ]) {
        assert.ok(
          (counts.get(kind) ?? 0) > 0,
          `no "${kind}" step in ${JSON.stringify([...counts])}`,
        );
      }
    } finally {
      await disk.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
