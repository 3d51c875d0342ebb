/**
 * shoal's storage layer: the raft log on disk.
 *
 * ```ts
 * import { DiskStorage } from './storage/index.js';
 * const storage = await DiskStorage.open('/var/lib/shoal/member-1', { segmentBytes: 64 << 20 });
 * await storage.save(hardState, entries); // resolves once durable (group commit, one fdatasync)
 * ```
 *
 * `DiskStorage` implements the raft contract `RaftStorage` (src/raft/storage.ts) and passes the same
 * contract suite as `MemoryStorage` (contract.ts). Semantics every caller relies on:
 *
 * 1. Reads are synchronous and see every write already issued, durable or not (as MemoryStorage
 *    does). Durability is promised only when a write's promise resolves.
 * 2. Writes may be issued without awaiting the previous one; they become durable in the order they
 *    were issued, concurrent ones sharing one fdatasync (group commit). A rejected write changed
 *    nothing: invalid arguments (`WalError` INVALID_ARGUMENT), the queue over `queueBytesMax`
 *    (OVERLOADED), a closed storage (CLOSED). After an I/O failure every write fails with code IO
 *    and the member must stop.
 * 3. Errors of the raft contract are `StorageError`s (COMPACTED, UNAVAILABLE, SNAPSHOT_OUT_OF_DATE).
 *    Corruption found on open or on a read from disk is a `CorruptionError` (code CORRUPT) naming
 *    the file and byte offset; docs/operations-wal.md says what an operator does then.
 * 4. Snapshots: `createSnapshot`/`applySnapshot` write an atomically installed, checksummed file,
 *    synced every few MiB as it grows; `createSnapshotWithFile` keeps a big file the state machine
 *    made (a store checkpoint) as the snapshot's `.data` file instead of copying it in.
 *    `snapshotChunks()` streams the current one to a peer in bounded chunks, and the peer feeds the
 *    chunks to `receiveSnapshot()`'s receiver, then calls `applyReceivedSnapshot(metadata)`.
 *    The member's raft transfers do not use that pair yet: the raft core's `Snapshot` carries its
 *    data in memory, so src/server/transport.ts sends the data raft hands it, and the receiver
 *    assembles it in a resumable partial file (src/server/snapshot-inbox.ts, in
 *    `<dir>/snap-incoming/`, which this layer never reads) and passes the completed data to
 *    `applySnapshot` through raft.
 * 5. Entries are encoded when their batch is cut, after `save` returns: the caller must not mutate
 *    an entry's `data` once it has passed it to `save` (MemoryStorage keeps the same reference).
 * 6. At most one `DiskStorage` may have a directory open at a time (a `LOCK` file; WalError LOCKED).
 * 7. `bootstrap(confState)` (initial membership while no snapshot exists) is not persisted: the
 *    server passes it on every start, as with MemoryStorage.
 *
 * Limits (named constants): segment size, `cacheBytesMax` for the in-memory tail, `batchBytesMax`
 * per fdatasync, `queueBytesMax`, `SAVE_BYTES_MAX`, `SNAPSHOTS_RETAINED_MAX`, snapshot chunk and
 * receive maxima.
 */
export { DiskStorage, type DiskStorageOptions } from './disk-storage.js';
export { CorruptionError, WalError, type WalErrorCode } from './errors.js';
export { makeDirectoryDurably } from './fs-async.js';
export {
  SNAPSHOT_CHUNK_BYTES_DEFAULT,
  SNAPSHOT_CHUNK_BYTES_MAX,
  SNAPSHOT_RECEIVE_BYTES_MAX,
  SNAPSHOTS_RETAINED_MAX,
  type SnapshotReceiver,
} from './snapshot.js';
export {
  BATCH_BYTES_MAX_DEFAULT,
  CACHE_BYTES_MAX_DEFAULT,
  QUEUE_BYTES_MAX_DEFAULT,
  SAVE_BYTES_MAX,
  SEGMENT_BYTES_DEFAULT,
  type WalStats,
} from './wal.js';
