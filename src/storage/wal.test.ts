/**
 * Write-ahead log behaviour beyond the shared contract: group commit (one fdatasync per batch),
 * batch limits, the bounded entry cache and reads from disk, backpressure, closing, an I/O failure
 * and corruption found on a read.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { entrySizeBytes } from '../raft/types.js';
import { comparable, entry, range } from './contract.js';
import { CorruptionError, WalError } from './errors.js';
import type { Segment } from './segment.js';
import { Wal, type WalOptions } from './wal.js';

const logger = pino({ level: 'silent' });

async function withWal(
  options: Partial<WalOptions>,
  body: (wal: Wal, dir: string) => Promise<void>,
) {
  const dir = fs.mkdtempSync(join(tmpdir(), 'shoal-wal-'));
  const wal = await Wal.open(dir, { logger, ...options });
  try {
    await body(wal, dir);
  } finally {
    await wal.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function hasCode(code: string) {
  return (error: unknown) => error instanceof WalError && error.code === code;
}

test('saves issued together share one write and one fdatasync', () =>
  withWal({}, async (wal) => {
    const saves = [];
    for (let index = 1; index <= 200; index++) {
      saves.push(wal.save({ term: 1, vote: 1, commit: index }, [entry(index, 1, 64)]));
    }
    await Promise.all(saves);
    assert.equal(wal.stats().fdatasyncs, 1);
    assert.equal(wal.stats().operations, 200);
  }));

test('a batch holds at most batchBytesMax, unless one save is larger', () =>
  withWal({ batchBytesMax: 1024 }, async (wal) => {
    const saves = [];
    for (let index = 1; index <= 20; index++) saves.push(wal.save(null, [entry(index, 1, 300)]));
    saves.push(wal.save(null, [entry(21, 1, 5000)]));
    await Promise.all(saves);
    // 20 records of 336 bytes, three per 1 KiB batch, then the large one alone.
    assert.equal(wal.stats().fdatasyncs, 8);
  }));

test('the cache stays bounded and older entries are read back from disk', () =>
  withWal({ cacheBytesMax: 8 * 1024, segmentBytes: 64 * 1024 }, async (wal) => {
    const written = [];
    for (let from = 1; from <= 400; from += 10) {
      const entries = range(from, from + 9, 1 + Math.floor(from / 100), 900);
      written.push(...entries);
      await wal.save(null, entries);
    }
    assert.ok(wal.cachedBytes() <= 8 * 1024, `cache holds ${wal.cachedBytes()} bytes`);
    assert.ok(wal.segmentPaths().length > 3, 'the entries should span several segments');
    assert.deepEqual(comparable(wal.entries(1, 401, Infinity)), comparable(written));
    const size = entrySizeBytes(written[0]!);
    assert.equal(wal.entries(5, 401, size * 7).length, 7);
    assert.equal(wal.entries(5, 401, 0).length, 1);
  }));

test('writes beyond queueBytesMax are refused without effect', () =>
  withWal({ queueBytesMax: 4096 }, async (wal) => {
    const accepted = [wal.save(null, [entry(1, 1, 3000)])];
    const refused = wal.save(null, [entry(2, 1, 3000)]);
    await assert.rejects(refused, hasCode('OVERLOADED'));
    assert.equal(wal.lastIndex(), 1);
    await Promise.all(accepted);
    await wal.save(null, [entry(2, 1, 3000)]); // Accepted once the queue drained.
    assert.equal(wal.lastIndex(), 2);
  }));

test('invalid writes are refused with INVALID_ARGUMENT', () =>
  withWal({}, async (wal) => {
    await assert.rejects(
      wal.save({ term: -1, vote: 0, commit: 0 }, []),
      hasCode('INVALID_ARGUMENT'),
    );
    await assert.rejects(wal.save(null, [entry(2, 1)]), hasCode('INVALID_ARGUMENT'));
    await assert.rejects(wal.save(null, [entry(1, 1.5)]), hasCode('INVALID_ARGUMENT'));
    assert.equal(wal.lastIndex(), 0);
    assert.deepEqual(wal.hardState(), { term: 0, vote: 0, commit: 0 });
  }));

test('after close, writes fail with CLOSED', async () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'shoal-wal-'));
  const wal = await Wal.open(dir, { logger });
  const pending = wal.save(null, [entry(1, 1)]);
  await wal.close();
  await pending; // close() waits for queued writes.
  await assert.rejects(wal.save(null, [entry(2, 1)]), hasCode('CLOSED'));
  const reopened = await Wal.open(dir, { logger });
  assert.equal(reopened.lastIndex(), 1);
  await reopened.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a failed write stops the log; what was durable before survives', async () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'shoal-wal-'));
  const wal = await Wal.open(dir, { logger });
  await wal.save({ term: 1, vote: 1, commit: 1 }, range(1, 5, 1));
  // Fault injection: swap the active segment's descriptor for one opened read-only.
  const segments = (wal as unknown as { segments: Segment[] }).segments;
  const active = segments.at(-1)!;
  const readOnly = fs.openSync(active.path, 'r');
  segments[segments.length - 1] = { ...active, fd: readOnly };
  const failing = wal.save(null, range(6, 8, 1));
  const queuedBehind = wal.save(null, range(9, 9, 1));
  await assert.rejects(failing, hasCode('IO'));
  await assert.rejects(queuedBehind, hasCode('IO'));
  await assert.rejects(wal.save(null, range(10, 10, 1)), hasCode('IO'));
  segments[segments.length - 1] = active;
  fs.closeSync(readOnly);
  await wal.close();
  const reopened = await Wal.open(dir, { logger });
  assert.equal(reopened.lastIndex(), 5);
  assert.deepEqual(reopened.hardState(), { term: 1, vote: 1, commit: 1 });
  await reopened.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('corruption under a read from disk is reported with file and offset', () =>
  withWal({ cacheBytesMax: 1024 }, async (wal) => {
    await wal.save(null, range(1, 40, 1, 200));
    const [path] = wal.segmentPaths();
    const fd = fs.openSync(path!, 'r+');
    const bytes = Buffer.alloc(1);
    fs.readSync(fd, bytes, 0, 1, 200);
    fs.writeSync(fd, Buffer.from([bytes[0]! ^ 0x04]), 0, 1, 200);
    fs.closeSync(fd);
    assert.throws(
      () => wal.entries(1, 41, Infinity),
      (error: unknown) =>
        error instanceof CorruptionError && error.file === path && error.offsetBytes <= 200,
    );
  }));

test('entries not yet written are served from the cache whatever its size', () =>
  withWal({ cacheBytesMax: 1024 }, async (wal) => {
    const written = range(1, 100, 1, 500);
    const saves = written.map((e) => wal.save(null, [e]));
    // Nothing is on disk yet: every entry must still be in memory, far beyond cacheBytesMax.
    assert.deepEqual(comparable(wal.entries(1, 101, Infinity)), comparable(written));
    await Promise.all(saves);
    assert.ok(wal.cachedBytes() <= 1024);
    assert.deepEqual(comparable(wal.entries(1, 101, Infinity)), comparable(written));
  }));

test('a deferred hard state costs no write and rides along with the next save', () =>
  withWal({}, async (wal, dir) => {
    await wal.save({ term: 1, vote: 1, commit: 1 }, [entry(1, 1), entry(2, 1), entry(3, 1)]);
    const synced = wal.stats().fdatasyncs;
    wal.deferHardState({ term: 1, vote: 1, commit: 3 });
    assert.equal(wal.hardState().commit, 3, 'visible at once');
    assert.equal(wal.stats().fdatasyncs, synced, 'no write of its own');
    // A crash now (another open, the first never closed) finds the older commit index.
    const crashed = await Wal.open(dir, { logger });
    assert.equal(crashed.hardState().commit, 1);
    await crashed.close();
    // The next save writes it, even one without a hard state of its own.
    await wal.save(null, [entry(4, 1)]);
    const reopened = await Wal.open(dir, { logger });
    assert.equal(reopened.hardState().commit, 3);
    assert.equal(reopened.lastIndex(), 4);
    await reopened.close();
  }));

test('a deferred hard state is written at close', async () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'shoal-wal-'));
  const wal = await Wal.open(dir, { logger });
  await wal.save({ term: 2, vote: 1, commit: 0 }, [entry(1, 2), entry(2, 2)]);
  wal.deferHardState({ term: 2, vote: 1, commit: 2 });
  await wal.close();
  const reopened = await Wal.open(dir, { logger });
  assert.deepEqual(reopened.hardState(), { term: 2, vote: 1, commit: 2 });
  await reopened.close();
  fs.rmSync(dir, { recursive: true, force: true });
});
