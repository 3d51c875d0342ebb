/**
 * Snapshot files: streaming between two members chunk by chunk, refusal of damaged or truncated
 * transfers, checksum verification on open, retention, and recovery from a crash between writing
 * a received snapshot and adopting it in the log.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { type ConfState, type Snapshot, StorageError } from '../raft/types.js';
import { range } from './contract.js';
import { DiskStorage } from './disk-storage.js';
import { CorruptionError, WalError } from './errors.js';
import { SNAPSHOT_SYNC_EVERY_BYTES, SNAPSHOTS_RETAINED_MAX } from './snapshot.js';

const logger = pino({ level: 'silent' });
const conf: ConfState = {
  voters: [1, 2, 3],
  learners: [],
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
};

function payload(bytes: number, seed: number): Uint8Array {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (i * 131 + seed) & 0xff;
  return data;
}

async function withDirs(count: number, body: (dirs: string[]) => Promise<void>) {
  const dirs = Array.from({ length: count }, () => mkdtempSync(join(tmpdir(), 'shoal-snap-')));
  try {
    await body(dirs);
  } finally {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
}

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const result: Uint8Array[] = [];
  for await (const chunk of chunks) result.push(chunk);
  return result;
}

test('a snapshot streams to a peer in bounded chunks and installs there', () =>
  withDirs(2, async ([leaderDir, followerDir]) => {
    const leader = await DiskStorage.open(leaderDir!, { logger });
    await leader.save({ term: 3, vote: 1, commit: 50 }, range(1, 50, 3));
    const data = payload(300_000, 7);
    await leader.createSnapshot(40, conf, data);
    const follower = await DiskStorage.open(followerDir!, { logger });
    await follower.save(null, range(1, 5, 1)); // A stale log that the snapshot replaces.
    const receiver = follower.receiveSnapshot();
    let chunks = 0;
    for await (const chunk of leader.snapshotChunks(64 * 1024)) {
      assert.ok(chunk.length <= 64 * 1024);
      await receiver.write(chunk);
      chunks++;
    }
    assert.ok(chunks >= 5, `only ${chunks} chunks`);
    const metadata = await receiver.finish();
    assert.deepEqual(metadata, { index: 40, term: 3, confState: conf });
    await follower.applyReceivedSnapshot(metadata);
    assert.equal(follower.firstIndex(), 41);
    assert.equal(follower.lastIndex(), 40);
    assert.equal(follower.term(40), 3);
    assert.ok(Buffer.from(follower.snapshot().data).equals(Buffer.from(data)));
    await follower.close();
    const reopened = await DiskStorage.open(followerDir!, { logger });
    assert.equal(reopened.firstIndex(), 41);
    assert.ok(Buffer.from(reopened.snapshot().data).equals(Buffer.from(data)));
    assert.deepEqual(reopened.initialState().confState, conf);
    await reopened.close();
    await leader.close();
  }));

test('a damaged or truncated transfer is refused and installs nothing', () =>
  withDirs(2, async ([leaderDir, followerDir]) => {
    const leader = await DiskStorage.open(leaderDir!, { logger });
    await leader.save(null, range(1, 10, 2));
    await leader.createSnapshot(10, conf, payload(100_000, 3));
    const chunks = await collect(leader.snapshotChunks(16 * 1024));
    const follower = await DiskStorage.open(followerDir!, { logger });
    const snapDir = join(followerDir!, 'snap');
    for (const damage of ['flip', 'truncate', 'extra'] as const) {
      const receiver = follower.receiveSnapshot();
      for (let k = 0; k < chunks.length; k++) {
        if (damage === 'truncate' && k === chunks.length - 1) break;
        const chunk = Buffer.from(chunks[k]!);
        if (damage === 'flip' && k === 2) chunk[100]! ^= 0x10;
        await receiver.write(chunk);
      }
      if (damage === 'extra') await receiver.write(new Uint8Array([1, 2, 3]));
      await assert.rejects(
        receiver.finish(),
        (error: unknown) => error instanceof WalError && error.code === 'BAD_SNAPSHOT',
        damage,
      );
      assert.deepEqual(readdirSync(snapDir), [], `${damage}: left files behind`);
    }
    assert.equal(follower.snapshot().metadata.index, 0);
    await follower.close();
    await leader.close();
  }));

test('appends are not held behind a snapshot file being written', () =>
  withDirs(1, async ([dir]) => {
    const storage = await DiskStorage.open(dir!, { logger });
    await storage.save({ term: 1, vote: 1, commit: 9 }, range(1, 10, 1));
    // Hold the snapshot file's write until the append below has settled.
    const store = (storage as unknown as { snapshots: { write: (...a: unknown[]) => unknown } })
      .snapshots;
    const write = store.write.bind(store);
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    store.write = async (...args: unknown[]) => {
      await gate;
      return write(...args);
    };
    const snapshotted = storage.createSnapshot(9, conf, payload(1000, 3));
    const compacted = storage.compact(8);
    // Before the fix this save waited behind the snapshot record, which waited for the file.
    await storage.save(null, range(11, 12, 1));
    release();
    await Promise.all([snapshotted, compacted]);
    await storage.close();
    const reopened = await DiskStorage.open(dir!, { logger });
    assert.equal(reopened.snapshot().metadata.index, 9);
    assert.equal(reopened.firstIndex(), 9);
    assert.equal(reopened.lastIndex(), 12);
    assert.ok(Buffer.from(reopened.snapshot().data).equals(Buffer.from(payload(1000, 3))));
    await reopened.close();
  }));

test('a damaged snapshot file is reported as corruption on open', () =>
  withDirs(1, async ([dir]) => {
    const storage = await DiskStorage.open(dir!, { logger });
    await storage.save(null, range(1, 10, 1));
    await storage.createSnapshot(8, conf, payload(5000, 1));
    await storage.compact(8);
    await storage.close();
    const [name] = readdirSync(join(dir!, 'snap'));
    const path = join(dir!, 'snap', name!);
    const bytes = readFileSync(path);
    bytes[2000]! ^= 0x01;
    writeFileSync(path, bytes);
    await assert.rejects(DiskStorage.open(dir!, { logger }), (error: unknown) => {
      assert.ok(error instanceof CorruptionError);
      assert.equal(error.file, path);
      return true;
    });
  }));

test('old snapshots are kept up to the retained maximum', () =>
  withDirs(1, async ([dir]) => {
    const storage = await DiskStorage.open(dir!, { logger });
    await storage.save(null, range(1, 20, 1));
    for (let index = 2; index <= 12; index += 2) {
      await storage.createSnapshot(index, conf, payload(100, index));
    }
    const files = readdirSync(join(dir!, 'snap')).sort();
    assert.equal(files.length, SNAPSHOTS_RETAINED_MAX);
    assert.ok(files.at(-1)!.startsWith((12).toString(16).padStart(16, '0')));
    await storage.close();
  }));

test('a snapshot written but never adopted by the log is dropped on open', () =>
  withDirs(2, async ([leaderDir, followerDir]) => {
    const leader = await DiskStorage.open(leaderDir!, { logger });
    await leader.save(null, range(1, 30, 5));
    await leader.createSnapshot(30, conf, payload(1000, 9));
    const follower = await DiskStorage.open(followerDir!, { logger });
    await follower.save({ term: 1, vote: 0, commit: 3 }, range(1, 3, 1));
    // The crash comes after the received file was installed, before applyReceivedSnapshot.
    const receiver = follower.receiveSnapshot();
    for await (const chunk of leader.snapshotChunks()) await receiver.write(chunk);
    await receiver.finish();
    await follower.close();
    const reopened = await DiskStorage.open(followerDir!, { logger });
    assert.equal(reopened.snapshot().metadata.index, 0);
    assert.equal(reopened.lastIndex(), 3);
    assert.deepEqual(readdirSync(join(followerDir!, 'snap')), []);
    // The same holds for applySnapshot: the file is made durable before the log's reset record.
    const snapshot: Snapshot = {
      metadata: { index: 30, term: 5, confState: conf },
      data: payload(10, 1),
    };
    await reopened.applySnapshot(snapshot);
    await reopened.close();
    const again = await DiskStorage.open(followerDir!, { logger });
    assert.equal(again.snapshot().metadata.index, 30);
    assert.equal(again.firstIndex(), 31);
    await again.close();
    await leader.close();
  }));

test('snapshots taken back to back without waiting keep the adopted file', () =>
  withDirs(1, async ([dir]) => {
    const storage = await DiskStorage.open(dir!, { logger });
    await storage.save(null, range(1, 20, 1));
    const writes = [];
    for (let index = 2; index <= 12; index += 2) {
      writes.push(storage.createSnapshot(index, conf, payload(100, index)));
      writes.push(storage.compact(index - 1));
    }
    await Promise.all(writes);
    assert.ok(readdirSync(join(dir!, 'snap')).length <= SNAPSHOTS_RETAINED_MAX);
    await storage.close();
    const reopened = await DiskStorage.open(dir!, { logger });
    assert.equal(reopened.snapshot().metadata.index, 12);
    assert.equal(reopened.firstIndex(), 12);
    assert.ok(Buffer.from(reopened.snapshot().data).equals(Buffer.from(payload(100, 12))));
    await reopened.close();
  }));

/** `data` cut into pieces of uneven sizes, handed out one at a time. */
async function* pieces(data: Uint8Array): AsyncGenerator<Uint8Array> {
  let at = 0;
  for (let i = 0; at < data.length; i++) {
    const size = [1, 777_777, 3 * 1024 * 1024 + 5, 64 * 1024][i % 4]!;
    yield data.subarray(at, at + size);
    at += size;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

test('a snapshot written from chunks, synced as it grows, reads back and streams whole', () =>
  withDirs(2, async ([dir, followerDir]) => {
    const storage = await DiskStorage.open(dir!, { logger });
    await storage.save({ term: 2, vote: 1, commit: 30 }, range(1, 30, 2));
    // More than two sync intervals, with chunks that straddle the interval boundaries.
    const data = payload(2 * SNAPSHOT_SYNC_EVERY_BYTES + 1_234_567, 5);
    await storage.createSnapshotFrom(25, conf, pieces(data));
    assert.equal(storage.snapshot().metadata.index, 25);
    assert.equal(storage.snapshot().metadata.term, 2);
    assert.ok(Buffer.from(storage.snapshot().data).equals(Buffer.from(data)));
    await storage.compact(25);
    // The file streams to a peer, whose receiver checks the checksum written with it.
    const follower = await DiskStorage.open(followerDir!, { logger });
    const receiver = follower.receiveSnapshot();
    for await (const chunk of storage.snapshotChunks()) await receiver.write(chunk);
    await follower.applyReceivedSnapshot(await receiver.finish());
    assert.ok(Buffer.from(follower.snapshot().data).equals(Buffer.from(data)));
    await follower.close();
    await storage.close();
    const reopened = await DiskStorage.open(dir!, { logger });
    assert.equal(reopened.snapshot().metadata.index, 25);
    assert.equal(reopened.firstIndex(), 26);
    assert.ok(Buffer.from(reopened.snapshot().data).equals(Buffer.from(data)));
    await reopened.close();
  }));

test('a snapshot from chunks becomes current only once durable, and yields to a newer one', () =>
  withDirs(1, async ([dir]) => {
    const storage = await DiskStorage.open(dir!, { logger });
    await storage.save({ term: 1, vote: 1, commit: 20 }, range(1, 20, 1));
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    async function* slow(): AsyncGenerator<Uint8Array> {
      yield payload(1000, 1);
      await gate;
      yield payload(1000, 2);
    }
    const own = storage.createSnapshotFrom(10, conf, slow());
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(storage.snapshot().metadata.index, 0, 'not current while its file is written');
    // Meanwhile a newer snapshot arrives from the leader and is adopted.
    const received: Snapshot = {
      metadata: { index: 15, term: 1, confState: conf },
      data: payload(500, 9),
    };
    await storage.applySnapshot(received);
    release();
    await assert.rejects(
      own,
      (error: unknown) => error instanceof StorageError && error.code === 'SNAPSHOT_OUT_OF_DATE',
    );
    assert.equal(storage.snapshot().metadata.index, 15);
    const files = readdirSync(join(dir!, 'snap'));
    assert.deepEqual(files.length, 1, `files left: ${files.join(', ')}`);
    await storage.close();
    const reopened = await DiskStorage.open(dir!, { logger });
    assert.equal(reopened.snapshot().metadata.index, 15);
    assert.ok(Buffer.from(reopened.snapshot().data).equals(Buffer.from(received.data)));
    await reopened.close();
  }));
