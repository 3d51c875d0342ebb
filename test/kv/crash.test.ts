/**
 * Process-level test: a member killed (SIGKILL) while applying batches restarts with a store
 * where every batch (of entries, or of puts in one entry) is either entirely applied or not at all, the applied raft index matches the
 * data, nothing acknowledged is lost, and re-applying the tail is skipped (idempotence).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { MvccStore } from '../../src/kv/mvcc.js';

const writer = fileURLToPath(new URL('./writer.ts', import.meta.url));
const DEADLINE_MS = 60_000;

/** Runs the writer until it has acknowledged `commits` batches, then kills it; returns the last ack. */
function runAndKill(path: string, commits: number, mode: string[] = []): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', writer, path, ...mode], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let acknowledged = 0;
    let seen = 0;
    let buffered = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`writer did not reach ${commits} commits in ${DEADLINE_MS} ms`));
    }, DEADLINE_MS);
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        acknowledged = Number(line.split(' ')[1]);
        seen += 1;
      }
      if (seen >= commits) child.kill('SIGKILL');
    });
    child.on('exit', () => {
      clearTimeout(timer);
      resolve(acknowledged);
    });
    child.on('error', reject);
  });
}

test('batches are atomic and durable across SIGKILL', async () => {
  const directory = mkdtempSync(join(tmpdir(), 'shoal-kv-crash-'));
  const path = join(directory, 'kv.mdb');
  try {
    for (const commits of [20, 35]) {
      const acknowledged = await runAndKill(path, commits);
      const store = MvccStore.open({ path, logger: pino({ level: 'silent' }) });
      try {
        const applied = store.appliedIndex;
        assert.ok(applied >= acknowledged, `applied ${applied} < acknowledged ${acknowledged}`);
        assert.equal(applied % 10, 0, 'a batch was applied partially');
        const batches = applied / 10;
        const last = store.range({ key: Buffer.from('last') }).kvs[0]!;
        assert.equal(Buffer.from(last.value).toString(), String(batches));
        const all = store.range({
          key: Buffer.from('b'),
          rangeEnd: Buffer.from('c'),
          countOnly: true,
        });
        assert.equal(all.count, batches * 9);
        assert.equal(store.revision, 1 + applied, 'one revision per put');
        const replay = store.applyBatch([
          { index: applied, request: { put: { key: Buffer.from('x'), value: Buffer.from('y') } } },
        ]);
        assert.equal(replay[0]!.status, 'skipped');
      } finally {
        await store.close();
      }
    }
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test('a raft entry carrying a batch of puts is applied whole or not at all across SIGKILL', async () => {
  const directory = mkdtempSync(join(tmpdir(), 'shoal-kv-crash-'));
  const path = join(directory, 'kv.mdb');
  try {
    for (const commits of [20, 35]) {
      const acknowledged = await runAndKill(path, commits, ['entry-batches']);
      const store = MvccStore.open({ path, logger: pino({ level: 'silent' }) });
      try {
        const applied = store.appliedIndex;
        assert.ok(applied >= acknowledged, `applied ${applied} < acknowledged ${acknowledged}`);
        const last = store.range({ key: Buffer.from('last') }).kvs[0]!;
        assert.equal(Buffer.from(last.value).toString(), String(applied));
        const all = store.range({
          key: Buffer.from('b'),
          rangeEnd: Buffer.from('c'),
          countOnly: true,
        });
        assert.equal(all.count, applied * 9, 'an entry was applied partially');
        assert.equal(store.revision, 1 + applied * 10, 'one revision per put of every entry');
      } finally {
        await store.close();
      }
    }
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
