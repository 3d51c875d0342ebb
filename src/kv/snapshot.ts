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
 */

import type { Transaction } from 'lmdb';
import { Packr } from 'msgpackr';
import { decodeNumber, type KvDatabases, MetaKey, SNAPSHOT_DATABASES } from './layout.js';

export const SNAPSHOT_CHUNK_BYTES_MAX = 1024 * 1024;
const FORMAT = 'shoal-kv-snapshot';
const VERSION = 1;
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
  if (chunk.version !== VERSION)
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

export async function restoreSnapshot(
  dbs: KvDatabases,
  chunks: AsyncIterable<Uint8Array>,
): Promise<void> {
  dbs.env.transactionSync(() => {
    for (const name of SNAPSHOT_DATABASES) dbs[name].clearSync();
    dbs.meta.putSync(MetaKey.restoring, Buffer.from([1]));
  });
  let sequence = 0;
  let recordCount = 0;
  for await (const bytes of chunks) {
    const chunk = unpackChunk(bytes, sequence++);
    dbs.env.transactionSync(() => {
      for (const [id, key, value] of chunk.records) {
        const name = SNAPSHOT_DATABASES[id]!;
        if (name === 'meta' && MetaKey.restoring.equals(key)) continue;
        dbs[name].putSync(Buffer.from(key), Buffer.from(value));
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
