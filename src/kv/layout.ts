/**
 * The LMDB layout of the MVCC store: one environment, five named databases, plus the key index
 * in memory (key-index.ts: each key's revisions, for reads at a past revision), built from `revs`.
 *
 * - `revs`: the history, in etcd's own format (see codec.ts). Key: revision key (main, sub,
 *   tombstone mark), in revision order. Value: protobuf KeyValue; a tombstone holds only the key.
 *   Used for historical reads, watch replay, compaction, HashKV and snapshots.
 * - `live`: raw key -> protobuf KeyValue of every key that exists now. Current reads (the common
 *   case), ranges and counts at the current revision are one ordered scan here, and a put finds the
 *   previous create revision, version and lease with one lookup.
 * - `leases`: 8-byte lease id -> lease record; `leaseKeys`: dupsort 8-byte lease id -> raw key,
 *   the keys attached to each lease (sorted, so a revoke deletes them in key order as etcd does).
 * - `meta`: current revision, compacted revision, applied raft index, restore-in-progress flag,
 *   and the progress of a physical compaction (compaction.ts).
 *
 * Keys are raw bytes (0x00 included) and LMDB orders them bytewise, which is etcd's key order.
 * LMDB keys are at most 1978 bytes, hence KEY_BYTES_MAX in validate.ts.
 */
import { type Database, open, type RootDatabase } from 'lmdb';

export interface KvDatabases {
  env: RootDatabase;
  meta: Database<Buffer, Buffer>;
  revs: Database<Buffer, Buffer>;
  live: Database<Buffer, Buffer>;
  leases: Database<Buffer, Buffer>;
  leaseKeys: Database<Buffer, Buffer>;
}

/**
 * The databases a snapshot carries, in snapshot order. Their position is their id on the wire.
 * Id 3 was the key index's table before the index moved to memory: snapshots of version 1 still
 * carry it, and restore skips its records (the index is rebuilt from `revs`).
 */
export const SNAPSHOT_DATABASES = ['meta', 'revs', 'live', null, 'leases', 'leaseKeys'] as const;
export type SnapshotDatabaseName = Exclude<(typeof SNAPSHOT_DATABASES)[number], null>;

export interface OpenLayoutOptions {
  path: string;
  /** Skip fsync at commit; only behind the crash guard (crash-guard.ts), which handles machine crashes. */
  noSync?: boolean;
  /** Open for reading only (a checkpoint copy, see snapshot.ts). */
  readOnly?: boolean;
}

/**
 * Deletes the `index` table that stores made before the key index moved to memory: it is no
 * longer read or kept up to date. Does nothing when the table does not exist.
 */
function dropRetiredIndexTable(env: RootDatabase): void {
  const table = env.openDB({ name: 'index', create: false, dupSort: true } as never) as
    | Database
    | undefined;
  table?.dropSync();
}

export function openDatabases(options: OpenLayoutOptions): KvDatabases {
  const env = open({
    path: options.path,
    maxDbs: 8,
    noSync: options.noSync ?? false,
    // With noSync, a commit then writes its pages straight into the shared memory map instead of
    // one pwrite/writev per dirty page (about ten per put: four tables, each leaf and branch): the
    // pages are in the page cache either way, so a process crash keeps the last commit, and a
    // machine crash is the crash guard's case. Measured at one client: the apply on the leader's
    // path to the reply lost its 8 to 10 write syscalls.
    useWritemap: options.noSync ?? false,
    readOnly: options.readOnly ?? false,
    // The store only uses synchronous transactions; readers never need to see uncommitted data.
    cache: false,
  });
  const binary = { keyEncoding: 'binary', encoding: 'binary' } as const;
  if (!options.readOnly) dropRetiredIndexTable(env);
  return {
    env,
    meta: env.openDB<Buffer, Buffer>({ name: 'meta', ...binary }),
    revs: env.openDB<Buffer, Buffer>({ name: 'revs', ...binary }),
    live: env.openDB<Buffer, Buffer>({ name: 'live', ...binary }),
    leases: env.openDB<Buffer, Buffer>({ name: 'leases', ...binary }),
    leaseKeys: env.openDB<Buffer, Buffer>({ name: 'leaseKeys', ...binary, dupSort: true }),
  };
}

export const MetaKey = {
  currentRevision: Buffer.from('currentRevision'),
  compactRevision: Buffer.from('compactRevision'),
  appliedIndex: Buffer.from('appliedIndex'),
  restoring: Buffer.from('restoring'),
  /** Physical compaction in progress: its target revision and resume position (compaction.ts). */
  compactPendingTarget: Buffer.from('compactPendingTarget'),
  compactCursor: Buffer.from('compactCursor'),
} as const;

export function encodeNumber(value: number): Buffer {
  const bytes = Buffer.allocUnsafe(8);
  bytes.writeDoubleBE(value, 0);
  return bytes;
}

export function decodeNumber(bytes: Uint8Array | undefined, fallback: number): number {
  if (bytes === undefined) return fallback;
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).readDoubleBE(0);
}

/**
 * A lease's stored record: its granted TTL and, once the leader checkpointed it, the seconds it
 * had left then (a second 8-byte number; records without one are read as never checkpointed).
 */
export interface LeaseRecord {
  ttlSeconds: number;
  remainingTtlSeconds?: number;
}

export function encodeLeaseRecord(record: LeaseRecord): Buffer {
  if (record.remainingTtlSeconds === undefined) return encodeNumber(record.ttlSeconds);
  return Buffer.concat([encodeNumber(record.ttlSeconds), encodeNumber(record.remainingTtlSeconds)]);
}

export function decodeLeaseRecord(bytes: Uint8Array): LeaseRecord {
  const ttlSeconds = decodeNumber(bytes, 0);
  if (bytes.length < 16) return { ttlSeconds };
  return { ttlSeconds, remainingTtlSeconds: decodeNumber(bytes.subarray(8), 0) };
}
