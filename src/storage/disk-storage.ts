/**
 * `DiskStorage`: the raft log on disk, a `RaftStorage` built from the write-ahead log (wal.ts) and
 * the snapshot store (snapshot.ts) in one member data directory:
 *
 *   <dir>/wal/   segment files        <dir>/snap/  snapshot files
 *
 * Ordering rules that keep a crash at any moment recoverable:
 * - `createSnapshot` makes the snapshot file durable, then a Snapshot record naming it; appends
 *   keep going while the file is written. Snapshot, compaction and reset records reach the log in
 *   call order, so a compaction is never durable before the snapshot that covers it.
 * - `applySnapshot` makes the file durable first, then a Reset record (with the hard state).
 * - On open the current snapshot is exactly the one the log's newest Snapshot or Reset record
 *   names; its checksum is verified. Newer files (a crash after the file, before its record) were
 *   never adopted and are deleted; the leader sends an install again. Old files are kept up to
 *   `SNAPSHOTS_RETAINED_MAX`.
 */
import { join } from 'node:path';
import { type Logger, pino } from 'pino';
import type { InitialState, RaftStorage } from '../raft/storage.js';
import {
  type ConfState,
  EMPTY_CONF_STATE,
  EMPTY_SNAPSHOT_METADATA,
  type Entry,
  type HardState,
  type Snapshot,
  type SnapshotMetadata,
  StorageError,
} from '../raft/types.js';
import { CorruptionError, WalError } from './errors.js';
import { makeDirectoryDurably } from './fs-async.js';
import { type DirectoryLock, lockDirectory } from './lock.js';
import {
  SNAPSHOT_CHUNK_BYTES_DEFAULT,
  type SnapshotFile,
  type SnapshotReceiver,
  SnapshotStore,
  snapshotFileName,
} from './snapshot.js';
import { Wal, type WalOptions, type WalStats } from './wal.js';

export interface DiskStorageOptions extends Partial<Omit<WalOptions, 'logger'>> {
  /** Structured logger; by default a pino logger at level `warn` named `storage`. */
  readonly logger?: Logger;
}

/** The current snapshot: its metadata always, its data once loaded or given. */
interface CurrentSnapshot {
  readonly metadata: SnapshotMetadata;
  readonly file: SnapshotFile | null;
  data: Uint8Array | null;
}

const EMPTY_SNAPSHOT: Snapshot = { metadata: EMPTY_SNAPSHOT_METADATA, data: new Uint8Array() };

export class DiskStorage implements RaftStorage {
  private current: CurrentSnapshot;
  private bootstrapConfState: ConfState = EMPTY_CONF_STATE;
  private closed = false;
  /** Settles once every snapshot, compaction and reset record asked for so far is queued. */
  private markerTail: Promise<void> | null = null;
  /** `createSnapshotWithFile` writes in progress (see `close`). */
  private readonly snapshotWrites = new Set<Promise<SnapshotFile>>();

  private constructor(
    private readonly wal: Wal,
    private readonly snapshots: SnapshotStore,
    current: CurrentSnapshot,
    private readonly lock: DirectoryLock,
  ) {
    this.current = current;
  }

  /**
   * Opens the member's storage in `dir`, creating it if empty. Throws `CorruptionError` (code
   * CORRUPT, with file and byte offset) if the log or the current snapshot is damaged beyond a torn
   * final write.
   */
  static async open(dir: string, options: DiskStorageOptions = {}): Promise<DiskStorage> {
    const logger = options.logger ?? pino({ name: 'storage', level: 'warn' });
    await makeDirectoryDurably(dir);
    const lock = await lockDirectory(dir);
    let wal: Wal | null = null;
    try {
      wal = await Wal.open(join(dir, 'wal'), { ...options, logger });
      const snapshots = await SnapshotStore.open(join(dir, 'snap'), logger);
      const current = await chooseSnapshot(wal, snapshots);
      return new DiskStorage(wal, snapshots, current, lock);
    } catch (error) {
      await wal?.close();
      await lock.release();
      throw error;
    }
  }

  /** Sets the membership reported while no snapshot carries one (not persisted; pass it on every start). */
  bootstrap(confState: ConfState): void {
    this.bootstrapConfState = confState;
  }

  initialState(): InitialState {
    const fromSnapshot = this.current.metadata.index > 0;
    return {
      hardState: this.wal.hardState(),
      confState: fromSnapshot ? this.current.metadata.confState : this.bootstrapConfState,
    };
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    return this.wal.entries(lo, hi, maxBytes);
  }

  term(index: number): number {
    return this.wal.term(index);
  }

  firstIndex(): number {
    return this.wal.firstIndex();
  }

  lastIndex(): number {
    return this.wal.lastIndex();
  }

  /** The current snapshot; its data is read from disk (and verified) on first use. */
  snapshot(): Snapshot {
    const current = this.current;
    if (current.metadata.index === 0) return EMPTY_SNAPSHOT;
    if (current.data === null) current.data = this.snapshots.load(current.file!).data;
    return { metadata: current.metadata, data: current.data };
  }

  save(hardState: HardState | null, entries: readonly Entry[]): Promise<void> {
    return this.wal.save(hardState, entries);
  }

  /** A hard state whose commit index alone changed: written with the next save (see Wal). */
  deferHardState(hardState: HardState): void {
    this.wal.deferHardState(hardState);
  }

  async applySnapshot(snapshot: Snapshot): Promise<void> {
    const { index, term } = snapshot.metadata;
    this.checkNewer(index);
    this.wal.assertWritable();
    this.current = { metadata: snapshot.metadata, file: null, data: snapshot.data };
    const durable = this.persistSnapshot(snapshot);
    await this.inOrder(() => this.wal.reset(index, term, this.commitAtLeast(index), durable));
    await this.snapshots.prune(this.wal.durableSnapshot());
  }

  /**
   * Adopts a snapshot that a `SnapshotReceiver` (from `receiveSnapshot`) has installed: the log is
   * replaced as by `applySnapshot`, without the data passing through memory.
   */
  async applyReceivedSnapshot(metadata: SnapshotMetadata): Promise<void> {
    this.checkNewer(metadata.index);
    this.wal.assertWritable();
    const file = this.snapshots.find(metadata.index, metadata.term);
    if (file === undefined) {
      throw new WalError('INVALID_ARGUMENT', `no received snapshot at ${metadata.index}`);
    }
    this.current = { metadata, file, data: null };
    await this.inOrder(() =>
      this.wal.reset(metadata.index, metadata.term, this.commitAtLeast(metadata.index), null),
    );
    await this.snapshots.prune(this.wal.durableSnapshot());
  }

  async createSnapshot(index: number, confState: ConfState, data: Uint8Array): Promise<void> {
    const metadata = this.ownSnapshotMetadata(index, confState);
    this.current = { metadata, file: null, data };
    const durable = this.persistSnapshot({ metadata, data });
    // The record is queued only once the file is durable (see `inOrder`): queued at once with the
    // file as its barrier, it held every append behind the whole file's write.
    await this.inOrder(() => durable.then(() => this.wal.markSnapshot(index, metadata.term)));
    await this.snapshots.prune(this.wal.durableSnapshot());
  }

  /**
   * As `createSnapshot`, for data too big to copy around: the data is `head` followed by the bytes
   * of `dataFile`, which the snapshot keeps as its own file (see `SnapshotStore.writeWithFile`;
   * the caller gives the file up). `dataBytes`, when given, is the size `head` was built for: a
   * file of another size is refused. The snapshot becomes current only once its files are durable
   * (raft reads its data back from them when it first needs it); if a newer snapshot was adopted
   * meanwhile (one received from the leader), this one is deleted and the call fails with
   * SNAPSHOT_OUT_OF_DATE.
   */
  async createSnapshotWithFile(
    index: number,
    confState: ConfState,
    head: Uint8Array,
    dataFile: string,
    dataBytes?: number,
  ): Promise<void> {
    const metadata = this.ownSnapshotMetadata(index, confState);
    const writing = this.snapshots.writeWithFile(metadata, head, dataFile, dataBytes);
    // close() waits for files being written, so it never releases the directory under them.
    this.snapshotWrites.add(writing);
    let file: SnapshotFile;
    try {
      file = await writing;
    } finally {
      this.snapshotWrites.delete(writing);
    }
    // The write took a while: the storage may have closed, or the log moved past this index (a
    // deep write queue alone is no reason to throw the finished files away). The checks, the
    // snapshot record and `current` change together, with no await in between.
    try {
      if (this.closed) throw new WalError('CLOSED', 'storage closed while a snapshot was written');
      this.wal.assertOpen();
      this.checkNewer(index);
      if (index > this.wal.lastIndex() || this.wal.term(index) !== metadata.term) {
        throw new StorageError('SNAPSHOT_OUT_OF_DATE', `snapshot at ${index}: the log moved on`);
      }
    } catch (error) {
      await this.snapshots.remove(file);
      throw error;
    }
    const recorded = this.inOrder(() => this.wal.markSnapshot(index, metadata.term));
    this.current = { metadata, file, data: null };
    await recorded;
    await this.snapshots.prune(this.wal.durableSnapshot());
  }

  async compact(index: number): Promise<void> {
    if (index <= this.wal.firstIndex() - 1) return;
    if (index > this.current.metadata.index) {
      throw new WalError(
        'INVALID_ARGUMENT',
        `compact to ${index}: not covered by the snapshot at ${this.current.metadata.index}`,
      );
    }
    // The snapshot's own record is queued ahead of this one (see `inOrder`), so the compaction can
    // never be durable before the snapshot covering it.
    await this.inOrder(() => this.wal.compact(index, null));
  }

  /**
   * Runs `enqueue` (which queues a snapshot, compaction or reset record in the WAL) after every
   * such record asked for earlier has been queued, so these records reach the log in call order.
   * A member's own snapshot queues its record only once its file is durable; appends (`save`) do
   * not go through here and keep flowing while the file is written.
   */
  private inOrder<T>(enqueue: () => Promise<T>): Promise<T> {
    const before = this.markerTail;
    const done = before === null ? enqueue() : before.then(enqueue);
    const tail = done.then(
      () => {},
      () => {},
    );
    this.markerTail = tail;
    void tail.then(() => {
      if (this.markerTail === tail) this.markerTail = null;
    });
    return done;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Snapshot files being written finish (or fail) first; then snapshot records still waiting
    // for their files are queued; the WAL then waits for every queued record.
    await Promise.allSettled([...this.snapshotWrites]);
    if (this.markerTail !== null) await this.markerTail;
    await this.wal.close();
    await this.lock.release();
  }

  /** The current snapshot's file as bounded chunks, to stream to a peer (see snapshot.ts). */
  snapshotChunks(chunkBytes = SNAPSHOT_CHUNK_BYTES_DEFAULT): AsyncGenerator<Uint8Array> {
    const file = this.current.file;
    if (file === null || this.current.metadata.index === 0) {
      throw new WalError('INVALID_ARGUMENT', 'no durable snapshot to stream yet');
    }
    return this.snapshots.chunks(file, chunkBytes);
  }

  /** Starts receiving a snapshot from a peer; then call `applyReceivedSnapshot` with its metadata. */
  receiveSnapshot(): SnapshotReceiver {
    return this.snapshots.receive();
  }

  /** WAL counters since open (fdatasyncs, bytes, operations, segment rolls). */
  walStats(): WalStats {
    return this.wal.stats();
  }

  /** Test and operator hook: the WAL segment files, oldest first. */
  walSegmentPaths(): string[] {
    return this.wal.segmentPaths();
  }

  /** The metadata of a snapshot this member takes at `index`; throws if it cannot take one. */
  private ownSnapshotMetadata(index: number, confState: ConfState): SnapshotMetadata {
    this.checkNewer(index);
    this.wal.assertWritable();
    if (index > this.wal.lastIndex()) {
      throw new StorageError(
        'UNAVAILABLE',
        `snapshot at ${index}: beyond last index ${this.wal.lastIndex()}`,
      );
    }
    return { index, term: this.wal.term(index), confState };
  }

  private checkNewer(index: number): void {
    if (index <= this.current.metadata.index) {
      throw new StorageError(
        'SNAPSHOT_OUT_OF_DATE',
        `snapshot at ${index} is not newer than ${this.current.metadata.index}`,
      );
    }
  }

  private commitAtLeast(index: number): HardState {
    const hardState = this.wal.hardState();
    return hardState.commit < index ? { ...hardState, commit: index } : hardState;
  }

  /** Writes the snapshot file; records the file in `current` once it is durable. */
  private persistSnapshot(snapshot: Snapshot): Promise<void> {
    const durable = this.snapshots.write(snapshot).then((file) => {
      if (this.current.metadata === snapshot.metadata) {
        this.current = { metadata: snapshot.metadata, file, data: this.current.data };
      }
    });
    // A failure reaches the caller through the WAL record waiting on this promise; if the WAL
    // refused that record, nothing else awaits it, and it must not become an unhandled rejection.
    durable.catch(() => {});
    return durable;
  }
}

/**
 * Finds the snapshot file the log names as current, verifies its checksum, and deletes newer files
 * the log never adopted (a crash between writing a snapshot file and its record).
 */
async function chooseSnapshot(wal: Wal, snapshots: SnapshotStore): Promise<CurrentSnapshot> {
  const named = wal.snapshot();
  for (const file of snapshots.list()) {
    const newer =
      file.index > named.index || (file.index === named.index && file.term !== named.term);
    if (newer) await snapshots.remove(file);
  }
  if (named.index === 0) {
    if (wal.firstIndex() > 1) {
      throw new CorruptionError(
        snapshots.dir,
        0,
        `log compacted to ${wal.firstIndex() - 1} without a snapshot`,
      );
    }
    return { metadata: EMPTY_SNAPSHOT_METADATA, file: null, data: null };
  }
  const file = snapshots.find(named.index, named.term);
  if (file === undefined) {
    throw new CorruptionError(
      snapshots.dir,
      0,
      `the log names snapshot ${snapshotFileName(named.index, named.term)}, which is missing`,
    );
  }
  const metadata = await snapshots.verify(file);
  if (metadata.index !== file.index || metadata.term !== file.term) {
    throw new CorruptionError(file.path, 16, 'metadata does not match the file name');
  }
  return { metadata, file, data: null };
}
