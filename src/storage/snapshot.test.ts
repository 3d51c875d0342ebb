/**
 * Snapshot files: streaming between two members chunk by chunk, refusal of damaged or truncated
 * transfers, checksum verification on open, retention, and recovery from a crash between writing
 * a received snapshot and adopting it in the log.
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

test('a snapshot bigger than the sync interval is written in pieces and reads back whole', () =>
  withDirs(2, async ([dir, followerDir]) => {
    const storage = await DiskStorage.open(dir!, { logger });
    await storage.save({ term: 2, vote: 1, commit: 30 }, range(1, 30, 2));
    const data = payload(2 * SNAPSHOT_SYNC_EVERY_BYTES + 1_234_567, 5);
    await storage.createSnapshot(25, conf, data);
    await storage.compact(25);
    const follower = await DiskStorage.open(followerDir!, { logger });
    const receiver = follower.receiveSnapshot();
    for await (const chunk of storage.snapshotChunks()) await receiver.write(chunk);
    await follower.applyReceivedSnapshot(await receiver.finish());
    assert.ok(Buffer.from(follower.snapshot().data).equals(Buffer.from(data)));
    await follower.close();
    await storage.close();
    const reopened = await DiskStorage.open(dir!, { logger });
    assert.equal(reopened.snapshot().metadata.index, 25);
    assert.ok(Buffer.from(reopened.snapshot().data).equals(Buffer.from(data)));
    await reopened.close();
  }));

/** Writes `bytes` to a new file in `dir` and returns its path (a stand-in for a store checkpoint). */
function dataFileIn(dir: string, name: string, bytes: Uint8Array): string {
  mkdirSync(join(dir, 'out'), { recursive: true });
  const path = join(dir, 'out', name);
  writeFileSync(path, bytes);
  return path;
}

test('a snapshot keeps a data file as its own: read back, streamed and reopened whole', () =>
  withDirs(2, async ([dir, followerDir]) => {
    const storage = await DiskStorage.open(dir!, { logger });
    await storage.save({ term: 2, vote: 1, commit: 30 }, range(1, 30, 2));
    const head = payload(777, 3);
    const body = payload(SNAPSHOT_SYNC_EVERY_BYTES + 4321, 8);
    const source = dataFileIn(dir!, 'checkpoint', body);
    await storage.createSnapshotWithFile(25, conf, head, source);
    assert.ok(!existsSync(source), 'the data file was moved into the snapshot directory');
    assert.deepEqual(readdirSync(join(dir!, 'snap')).sort(), [
      '0000000000000019-0000000000000002.data',
      '0000000000000019-0000000000000002.snap',
    ]);
    const whole = Buffer.concat([head, body]);
    assert.equal(storage.snapshot().metadata.index, 25);
    assert.equal(storage.snapshot().metadata.term, 2);
    assert.ok(Buffer.from(storage.snapshot().data).equals(whole));
    await storage.compact(25);
    // Streamed to a peer in the one-file form, whose checksum the receiver checks.
    const follower = await DiskStorage.open(followerDir!, { logger });
    const receiver = follower.receiveSnapshot();
    for await (const chunk of storage.snapshotChunks(64 * 1024)) {
      assert.ok(chunk.length <= 64 * 1024);
      await receiver.write(chunk);
    }
    const metadata = await receiver.finish();
    assert.equal(metadata.index, 25);
    await follower.applyReceivedSnapshot(metadata);
    assert.ok(Buffer.from(follower.snapshot().data).equals(whole));
    await follower.close();
    await storage.close();
    const reopened = await DiskStorage.open(dir!, { logger });
    assert.equal(reopened.snapshot().metadata.index, 25);
    assert.equal(reopened.firstIndex(), 26);
    assert.ok(Buffer.from(reopened.snapshot().data).equals(whole));
    await reopened.close();
  }));

test('a damaged or truncated data file of a snapshot is corruption on open', () =>
  withDirs(2, async (dirs) => {
    for (const [i, damage] of (['flip', 'truncate'] as const).entries()) {
      const dir = dirs[i]!;
      const storage = await DiskStorage.open(dir, { logger });
      await storage.save(null, range(1, 10, 1));
      await storage.createSnapshotWithFile(
        8,
        conf,
        payload(100, 1),
        dataFileIn(dir, 'c', payload(9000, 2)),
      );
      await storage.compact(8);
      await storage.close();
      const path = join(dir, 'snap', '0000000000000008-0000000000000001.data');
      const bytes = readFileSync(path);
      if (damage === 'flip') bytes[5000]! ^= 0x10;
      writeFileSync(path, damage === 'flip' ? bytes : bytes.subarray(0, 4096));
      await assert.rejects(DiskStorage.open(dir, { logger }), (error: unknown) => {
        assert.ok(error instanceof CorruptionError, `${damage}: ${String(error)}`);
        return true;
      });
    }
  }));

/**
 * Holds `storage`'s next `createSnapshotWithFile` before it writes any file: `writing` settles
 * once it is held, `release()` lets it go on.
 */
function holdSnapshotFiles(storage: DiskStorage): { writing: Promise<void>; release: () => void } {
  const store = (
    storage as unknown as { snapshots: { writeWithFile: (...a: unknown[]) => Promise<unknown> } }
  ).snapshots;
  const writeWithFile = store.writeWithFile.bind(store);
  let release = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  let started = () => {};
  const writing = new Promise<void>((resolve) => {
    started = resolve;
  });
  store.writeWithFile = async (...args: unknown[]) => {
    started();
    await gate;
    return writeWithFile(...args);
  };
  return { writing, release };
}

test('a snapshot with a data file yields to a newer one adopted while it was written', () =>
  withDirs(1, async ([dir]) => {
    const storage = await DiskStorage.open(dir!, { logger });
    await storage.save({ term: 1, vote: 1, commit: 20 }, range(1, 20, 1));
    // Hold the snapshot's files until a snapshot from the leader has been adopted.
    const { writing, release } = holdSnapshotFiles(storage);
    const own = storage.createSnapshotWithFile(
      10,
      conf,
      payload(10, 1),
      dataFileIn(dir!, 'c', payload(5000, 2)),
    );
    await writing;
    assert.equal(storage.snapshot().metadata.index, 0, 'not current while its files are written');
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
    assert.deepEqual(readdirSync(join(dir!, 'snap')), ['000000000000000f-0000000000000001.snap']);
    await storage.close();
    const reopened = await DiskStorage.open(dir!, { logger });
    assert.equal(reopened.snapshot().metadata.index, 15);
    assert.ok(Buffer.from(reopened.snapshot().data).equals(Buffer.from(received.data)));
    await reopened.close();
  }));

test('data files go with their snapshots: pruned together, orphans deleted on open', () =>
  withDirs(1, async ([dir]) => {
    const storage = await DiskStorage.open(dir!, { logger });
    await storage.save(null, range(1, 40, 1));
    for (const index of [5, 10, 15, 20, 25]) {
      await storage.createSnapshotWithFile(
        index,
        conf,
        payload(10, index),
        dataFileIn(dir!, `c${index}`, payload(100, index)),
      );
    }
    const names = readdirSync(join(dir!, 'snap')).sort();
    const snaps = names.filter((n) => n.endsWith('.snap'));
    assert.equal(snaps.length, SNAPSHOTS_RETAINED_MAX);
    assert.deepEqual(
      names.filter((n) => n.endsWith('.data')),
      snaps.map((n) => n.replace('.snap', '.data')),
    );
    await storage.close();
    // A crash after a data file was moved in but before its .snap was installed leaves an orphan.
    writeFileSync(join(dir!, 'snap', '0000000000000023-0000000000000001.data'), payload(50, 1));
    const reopened = await DiskStorage.open(dir!, { logger });
    assert.ok(!readdirSync(join(dir!, 'snap')).includes('0000000000000023-0000000000000001.data'));
    assert.equal(reopened.snapshot().metadata.index, 25);
    assert.ok(
      Buffer.from(reopened.snapshot().data).equals(
        Buffer.concat([payload(10, 25), payload(100, 25)]),
      ),
    );
    await reopened.close();
  }));

test('close waits for a snapshot being written, which then fails and leaves no files', () =>
  withDirs(1, async ([dir]) => {
    const storage = await DiskStorage.open(dir!, { logger });
    await storage.save({ term: 1, vote: 1, commit: 20 }, range(1, 20, 1));
    const { release } = holdSnapshotFiles(storage);
    const own = storage.createSnapshotWithFile(
      10,
      conf,
      payload(10, 1),
      dataFileIn(dir!, 'c', payload(5000, 2)),
    );
    let closed = false;
    const closing = storage.close().then(() => {
      closed = true;
    });
    for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(closed, false, 'close returned while the snapshot files were being written');
    release();
    await assert.rejects(own, (error: unknown) => (error as { code?: string }).code === 'CLOSED');
    await closing;
    const reopened = await DiskStorage.open(dir!, { logger });
    assert.equal(reopened.snapshot().metadata.index, 0);
    assert.deepEqual(readdirSync(join(dir!, 'snap')), []);
    await reopened.close();
  }));

test('a snapshot whose data file is missing, or of the wrong size, is refused', () =>
  withDirs(2, async ([dir, other]) => {
    const storage = await DiskStorage.open(dir!, { logger });
    await storage.save(null, range(1, 10, 1));
    await storage.createSnapshotWithFile(
      8,
      conf,
      payload(10, 1),
      dataFileIn(dir!, 'c', payload(900, 2)),
    );
    await storage.compact(8);
    await storage.close();
    rmSync(join(dir!, 'snap', '0000000000000008-0000000000000001.data'));
    await assert.rejects(
      DiskStorage.open(dir!, { logger }),
      (error: unknown) =>
        error instanceof CorruptionError && /data file missing/.test(error.message),
    );
    const second = await DiskStorage.open(other!, { logger });
    await second.save(null, range(1, 10, 1));
    await assert.rejects(
      second.createSnapshotWithFile(
        8,
        conf,
        payload(10, 1),
        dataFileIn(other!, 'c', payload(900, 2)),
        901,
      ),
      (error: unknown) => (error as { code?: string }).code === 'INVALID_ARGUMENT',
    );
    assert.deepEqual(readdirSync(join(other!, 'snap')), []);
    assert.equal(second.snapshot().metadata.index, 0);
    await second.close();
  }));

test('a snapshot streams in chunks smaller than its header', () =>
  withDirs(1, async ([dir]) => {
    const storage = await DiskStorage.open(dir!, { logger });
    await storage.save(null, range(1, 10, 1));
    const data = payload(100, 4);
    await storage.createSnapshot(8, conf, data);
    const chunks = await collect(storage.snapshotChunks(8));
    assert.ok(chunks.every((chunk) => chunk.length <= 16));
    const whole = Buffer.concat(chunks);
    assert.ok(whole.subarray(whole.length - 16 - data.length, whole.length - 16).equals(data));
    await storage.close();
  }));
