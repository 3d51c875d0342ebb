/**
 * Snapshots of the whole key-value state, for raft snapshots and `etcdctl snapshot save`.
 *
 * A snapshot is a stream of chunks, each a msgpack map `{ format, version, sequence, records }`
 * where a record is `[database, key, value]` (database = position in SNAPSHOT_DATABASES, key and
 * value raw bytes). The last chunk has `end: true` and the total record count, so a truncated
 * stream is detected. Chunks hold at most about SNAPSHOT_CHUNK_BYTES_MAX bytes of records (one
 * record larger than that gets a chunk of its own). All records come from one LMDB read
 * transaction, so the snapshot is consistent even while batches keep being applied.
 *
 * Restore clears the store, marks it "restoring" in the same transaction, writes the chunks, and
 * clears the mark only after the end chunk verified: a store whose restore was interrupted refuses
 * to open instead of serving half a state.
 *
 * A checkpoint is the other form of the whole state: a compacted copy of the store's LMDB file,
 * made by LMDB itself (mdb_env_copy2) on a libuv thread from one read transaction. It costs the
 * event loop nothing and about 80 ms of a core for a 50 MB store, where reading the same state into
 * chunks took 0.3-0.9 s of the event loop's own time. Raft snapshots use checkpoints; a checkpoint
 * is restored by reading it as chunks (the same verified path as above).
 */

import { mkdir, rm } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { Transaction } from 'lmdb';
import { Packr } from 'msgpackr';
import {
  decodeNumber,
  type KvDatabases,
  MetaKey,
  openDatabases,
  SNAPSHOT_DATABASES,
} from './layout.js';

export const SNAPSHOT_CHUNK_BYTES_MAX = 1024 * 1024;
const FORMAT = 'shoal-kv-snapshot';
/**
 * Version 2 dropped the key index's table (database id 3), now rebuilt from `revs`; version 1
 * snapshots are still read, their id-3 records skipped. A member older than version 2 refuses a
 * version 2 snapshot rather than restore a store without the index it expects.
 */
const VERSION = 2;
const READABLE_VERSIONS: readonly number[] = [1, 2];
/** Per-record framing estimate used when sizing chunks. */
const RECORD_OVERHEAD_BYTES = 16;

const packr = new Packr({ useRecords: false, moreTypes: false });

type SnapshotRecord = [number, Uint8Array, Uint8Array];

interface SnapshotChunk {
  format: string;
  version: number;
  sequence: number;
  records: SnapshotRecord[];
  end?: boolean;
  recordCount?: number;
}

/** A snapshot being read: its position, its chunks, and a way to abandon it early. */
export interface SnapshotStream {
  /** The raft index and revision the snapshot reflects (raft's snapshot metadata needs them). */
  appliedIndex: number;
  revision: number;
  chunks: AsyncIterable<Uint8Array>;
  /** Ends the read transaction; called automatically when `chunks` is exhausted. Idempotent. */
  release(): void;
}

/**
 * Opens the read transaction now, so the snapshot is the state at this call even if batches are
 * applied while the chunks are consumed. Consume `chunks` or call `release()`: an open read
 * transaction keeps LMDB from reusing the pages it sees.
 */
export function writeSnapshot(dbs: KvDatabases): SnapshotStream {
  const transaction = dbs.env.useReadTransaction();
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    transaction.done();
  };
  const read = (key: Buffer, fallback: number) =>
    decodeNumber(dbs.meta.get(key, { transaction } as never), fallback);
  return {
    appliedIndex: read(MetaKey.appliedIndex, 0),
    revision: read(MetaKey.currentRevision, 1),
    chunks: snapshotChunks(dbs, transaction, release),
    release,
  };
}

async function* snapshotChunks(
  dbs: KvDatabases,
  transaction: Transaction,
  release: () => void,
): AsyncGenerator<Uint8Array> {
  let sequence = 0;
  let recordCount = 0;
  let records: SnapshotRecord[] = [];
  let bytes = 0;
  try {
    for (const [id, name] of SNAPSHOT_DATABASES.entries()) {
      if (name === null) continue;
      for (const { key, value } of dbs[name].getRange({ transaction } as never)) {
        records.push([id, key, value]);
        recordCount += 1;
        bytes += key.length + value.length + RECORD_OVERHEAD_BYTES;
        if (bytes >= SNAPSHOT_CHUNK_BYTES_MAX) {
          yield packChunk({ format: FORMAT, version: VERSION, sequence: sequence++, records });
          records = [];
          bytes = 0;
          // Reading never waits for I/O, so without this a whole snapshot (seconds for a large
          // store) would run in one event-loop turn: no heartbeats, no replies, no timers. The
          // read transaction keeps the view consistent while other work runs in between.
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
    }
    yield packChunk({
      format: FORMAT,
      version: VERSION,
      sequence,
      records,
      end: true,
      recordCount,
    });
  } finally {
    release();
  }
}

/** A checkpoint file and what it holds. */
export interface Checkpoint {
  /** The LMDB data file of the copy. */
  file: string;
  /** The raft index and revision of the state copied. */
  appliedIndex: number;
  revision: number;
}

/** The file of a checkpoint kept in `dir`. */
function checkpointFile(dir: string): string {
  return join(dir, 'data.mdb');
}

/**
 * Copies the store (whose LMDB path is `storePath`) into a new directory `dir`, replacing
 * anything there, and returns what the copy holds. The copy runs on a libuv thread from one read
 * transaction, so it is consistent while batches keep being applied, and which batch it ends at
 * is only known from the copy itself. `compact` rewrites every tree page by page into a file
 * without free pages (mdb_env_copy2 with MDB_CP_COMPACT: a walk of every tree, about 1.5 ms of a
 * core per MB); without it LMDB writes the file's pages as they are, free ones included, straight
 * from the memory map (a few ms for hundreds of MB). See `MvccStore.checkpoint` for the choice.
 */
export async function writeCheckpoint(
  dbs: KvDatabases,
  storePath: string,
  dir: string,
  compact: boolean,
): Promise<Checkpoint> {
  const file = await emptyCheckpointDir(dir);
  // LMDB names the copy by the store's own layout: a file path for a store kept as one file
  // (a path with an extension, lmdb-js's rule), a directory to hold data.mdb otherwise.
  await dbs.env.backup(extname(storePath) !== '' ? file : dir, compact);
  return readCheckpoint(file, (copy) => {
    const read = (key: Buffer, fallback: number) => decodeNumber(copy.meta.get(key), fallback);
    return {
      file,
      appliedIndex: read(MetaKey.appliedIndex, 0),
      revision: read(MetaKey.currentRevision, 1),
    };
  });
}

/** LMDB's meta page fields, as laid out by the LMDB that lmdb-js builds (data version 2). */
const LMDB_MAGIC = 0xbeefc0de;
const LMDB_DATA_VERSION = 2;
const META_MAGIC_OFFSET = 24;
const META_VERSION_OFFSET = 28;
const META_PAGE_SIZE_OFFSET = 48;
const META_LAST_PAGE_OFFSET = 144;
const META_TXN_ID_OFFSET = 152;

/**
 * Checks that bytes are a whole LMDB file before LMDB maps them: LMDB trusts its file, and a
 * truncated one crashes the process instead of failing. Both meta pages must carry LMDB's magic
 * and data version, and the file must hold every page the newer meta page names. (Damage inside
 * the pages is caught earlier, by the checksums of snapshot files and transfers.) Fails closed:
 * an LMDB with another layout is refused, never guessed at.
 */
export function checkCheckpointImage(image: Uint8Array): void {
  const bytes = Buffer.from(image.buffer, image.byteOffset, image.length);
  const refuse = (why: string) => {
    throw new Error(`not a whole kv checkpoint: ${why}`);
  };
  if (bytes.length < META_TXN_ID_OFFSET + 8) refuse(`${bytes.length} bytes`);
  const pageSize = bytes.readUInt32LE(META_PAGE_SIZE_OFFSET);
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) {
    refuse(`page size ${pageSize}`);
  }
  if (bytes.length % pageSize !== 0 || bytes.length < 2 * pageSize) {
    refuse(`${bytes.length} bytes is not whole pages of ${pageSize}`);
  }
  let newest = { txnId: -1n, lastPage: 0n };
  for (const page of [0, 1]) {
    const at = page * pageSize;
    if (bytes.readUInt32LE(at + META_MAGIC_OFFSET) !== LMDB_MAGIC) refuse(`meta page ${page}`);
    const version = bytes.readUInt32LE(at + META_VERSION_OFFSET);
    if (version !== LMDB_DATA_VERSION) refuse(`data version ${version}`);
    const txnId = bytes.readBigUInt64LE(at + META_TXN_ID_OFFSET);
    if (txnId > newest.txnId) {
      newest = { txnId, lastPage: bytes.readBigUInt64LE(at + META_LAST_PAGE_OFFSET) };
    }
  }
  const needed = (newest.lastPage + 1n) * BigInt(pageSize);
  if (needed > BigInt(bytes.length)) refuse(`${bytes.length} bytes, its pages need ${needed}`);
}

/** Opens a checkpoint file read-only for `use`, and closes it after. */
export async function readCheckpoint<T>(
  file: string,
  use: (copy: KvDatabases) => T | Promise<T>,
): Promise<T> {
  const copy = openDatabases({ path: file, readOnly: true });
  try {
    return await use(copy);
  } finally {
    await copy.env.close();
  }
}

/** Deletes a checkpoint directory (the copy and the lock file LMDB keeps beside it). */
export async function removeCheckpoint(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Makes `dir` a new, empty checkpoint directory; returns the path its checkpoint file takes. */
export async function emptyCheckpointDir(dir: string): Promise<string> {
  await removeCheckpoint(dir);
  await mkdir(dir, { recursive: true });
  return checkpointFile(dir);
}

function packChunk(chunk: SnapshotChunk): Uint8Array {
  return packr.pack(chunk);
}

function isBytes(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array;
}

function unpackChunk(bytes: Uint8Array, expectedSequence: number): SnapshotChunk {
  const chunk = packr.unpack(bytes) as Partial<SnapshotChunk> | null;
  if (chunk === null || typeof chunk !== 'object' || chunk.format !== FORMAT) {
    throw new Error('not a shoal kv snapshot chunk');
  }
  if (!READABLE_VERSIONS.includes(chunk.version as number))
    throw new Error(`unsupported kv snapshot version ${chunk.version}`);
  if (chunk.sequence !== expectedSequence) {
    throw new Error(`kv snapshot chunk ${chunk.sequence} arrived, expected ${expectedSequence}`);
  }
  if (!Array.isArray(chunk.records)) throw new Error('kv snapshot chunk without records');
  for (const record of chunk.records) {
    const valid =
      Array.isArray(record) &&
      record.length === 3 &&
      Number.isInteger(record[0]) &&
      record[0] >= 0 &&
      record[0] < SNAPSHOT_DATABASES.length &&
      isBytes(record[1]) &&
      record[1].length > 0 &&
      isBytes(record[2]);
    if (!valid) throw new Error(`malformed record in kv snapshot chunk ${expectedSequence}`);
  }
  return chunk as SnapshotChunk;
}

/**
 * Restores `chunks` into `dbs`; `onHistoryEntry` sees every `revs` record written, in revision
 * order (the store builds its key index from them chunk by chunk, not in one long scan after).
 */
export async function restoreSnapshot(
  dbs: KvDatabases,
  chunks: AsyncIterable<Uint8Array>,
  onHistoryEntry: (revisionKey: Uint8Array, keyValue: Uint8Array) => void = () => {},
): Promise<void> {
  dbs.env.transactionSync(() => {
    for (const name of SNAPSHOT_DATABASES) if (name !== null) dbs[name].clearSync();
    dbs.meta.putSync(MetaKey.restoring, Buffer.from([1]));
  });
  let sequence = 0;
  let recordCount = 0;
  for await (const bytes of chunks) {
    const chunk = unpackChunk(bytes, sequence++);
    dbs.env.transactionSync(() => {
      for (const [id, key, value] of chunk.records) {
        const name = SNAPSHOT_DATABASES[id];
        if (name === null || name === undefined) continue; // the retired key index table (v1)
        if (name === 'meta' && MetaKey.restoring.equals(key)) continue;
        dbs[name].putSync(Buffer.from(key), Buffer.from(value));
        if (name === 'revs') onHistoryEntry(key, value);
      }
    });
    recordCount += chunk.records.length;
    if (chunk.end) {
      if (chunk.recordCount !== recordCount) {
        throw new Error(
          `kv snapshot holds ${recordCount} records, its end says ${chunk.recordCount}`,
        );
      }
      dbs.env.transactionSync(() => dbs.meta.removeSync(MetaKey.restoring));
      return;
    }
  }
  throw new Error('kv snapshot ended without its end chunk');
}
