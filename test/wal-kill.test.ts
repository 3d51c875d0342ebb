/**
 * Process-level durability: a child process appends with group commit and reports each entry once
 * its save is durable; the parent SIGKILLs it at seeded-random moments (counted in reported
 * entries, so the schedule is reproducible), reopens the data directory and checks that every
 * entry ever reported durable is present with exactly the bytes written, then starts the next
 * generation on the same directory. Snapshots and compactions happen in the child as it runs, so
 * kills also land during segment rolls, snapshot writes and segment releases.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { DiskStorage } from '../src/storage/index.js';
import { killTestEntry, killTestSnapshotData } from './fixtures/wal-kill-data.js';

const generations = 16;
const seed = 0x5eed;
/** Longest a generation may take to reach its kill point before the test fails. */
const generationDeadlineMs = 30_000;
const writer = fileURLToPath(new URL('./fixtures/wal-writer.ts', import.meta.url));
const root = fileURLToPath(new URL('..', import.meta.url));

function random(state: number): () => number {
  let s = state >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Runs one writer generation and SIGKILLs it after `killAfter` durable reports. */
function runGeneration(
  dir: string,
  generation: number,
  killAfter: number,
  durableTerm: Map<number, number>,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', writer, dir, String(generation)], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let reported = 0;
    let killed = false;
    const kill = () => {
      if (!killed) child.kill('SIGKILL');
      killed = true;
    };
    const deadline = setTimeout(() => {
      kill();
      reject(new Error(`generation ${generation} reached ${reported}/${killAfter} in time`));
    }, generationDeadlineMs);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      // Reports that arrive after the kill was sent are durable claims too: record them all.
      const [kind, value] = line.split(' ');
      if (kind === 'D') {
        durableTerm.set(Number(value), generation);
        reported++;
      }
      if (reported >= killAfter && (kind === 'D' || killAfter === 0)) kill();
    });
    child.on('exit', (code, signal) => {
      clearTimeout(deadline);
      if (signal === 'SIGKILL') resolve();
      else reject(new Error(`writer exited by itself: code ${code}, signal ${signal}`));
    });
  });
}

/** Opens the directory and checks every entry reported durable. Returns how many were checked. */
async function verify(dir: string, durableTerm: Map<number, number>): Promise<number> {
  const storage = await DiskStorage.open(dir, { logger: pino({ level: 'silent' }) });
  try {
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    let checked = 0;
    let maxDurable = 0;
    for (const [index, term] of durableTerm) {
      maxDurable = Math.max(maxDurable, index);
      if (index < first) continue; // Compacted into a snapshot; checked below.
      assert.ok(index <= last, `entry ${index} was reported durable but the log ends at ${last}`);
      const [stored] = storage.entries(index, index + 1, Infinity);
      const expected = killTestEntry(index, term);
      assert.equal(stored!.term, term, `entry ${index}: term`);
      assert.ok(Buffer.from(stored!.data).equals(Buffer.from(expected.data)), `entry ${index}`);
      checked++;
    }
    assert.ok(storage.initialState().hardState.commit >= maxDurable, 'hard state lost');
    const snapshot = storage.snapshot();
    if (snapshot.metadata.index > 0) {
      assert.ok(first - 1 <= snapshot.metadata.index);
      const expected = killTestSnapshotData(snapshot.metadata.index);
      assert.ok(Buffer.from(snapshot.data).equals(Buffer.from(expected)), 'snapshot data');
    } else {
      assert.equal(first, 1, 'the log is compacted but no snapshot covers it');
    }
    return checked;
  } finally {
    await storage.close();
  }
}

test('kill -9 at seeded-random moments never loses an entry reported durable', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-kill-'));
  const next = random(seed);
  const durableTerm = new Map<number, number>();
  let checked = 0;
  try {
    for (let generation = 1; generation <= generations; generation++) {
      // Every fourth generation dies right after recovery; the others after 1..1500 entries.
      const killAfter = generation % 4 === 0 ? 0 : 1 + Math.floor(next() * 1500);
      await runGeneration(dir, generation, killAfter, durableTerm);
      checked += await verify(dir, durableTerm);
    }
    assert.ok(durableTerm.size > 1000, `only ${durableTerm.size} entries were reported durable`);
    assert.ok(checked > 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
