/**
 * The storage contract between the raft core and whatever keeps its log.
 *
 * The core only reads through `LogStorage` (synchronously, like etcd's raft `Storage`): everything it
 * reads has already been made durable by the caller, who writes through `RaftStorage`. Two
 * implementations exist: `MemoryStorage` (here, used by the simulator and by unit tests) and the
 * disk-backed write-ahead log in `src/storage`. Both pass one shared contract test suite.
 *
 * Index conventions: the log holds entries `firstIndex() .. lastIndex()`. The entry just before
 * `firstIndex()` is covered by the latest snapshot (or is the zero entry of an empty log), and its
 * term is still answered by `term(firstIndex() - 1)`. An empty log has firstIndex 1, lastIndex 0.
 */
import type { ConfState, Entry, HardState, Snapshot } from './types.js';

export interface InitialState {
  readonly hardState: HardState;
  readonly confState: ConfState;
}

/** The read side the raft core uses. All methods are synchronous and may throw `StorageError`. */
export interface LogStorage {
  initialState(): InitialState;
  /**
   * Entries in `[lo, hi)`, at most `maxBytes` in total as counted by `entrySizeBytes`, but always at
   * least one entry when the range is not empty. Throws COMPACTED if `lo < firstIndex()` and
   * UNAVAILABLE if `hi > lastIndex() + 1`.
   */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** The term of entry `index`, valid for `firstIndex() - 1 <= index <= lastIndex()`. */
  term(index: number): number;
  firstIndex(): number;
  lastIndex(): number;
  /** The latest snapshot (metadata index 0 if there is none). */
  snapshot(): Snapshot;
}

/** The write side. Writes complete (are durable) when the returned value settles. */
export interface RaftStorage extends LogStorage {
  /**
   * Persists a hard state and/or entries in one durable step. If `entries[0].index <= lastIndex()`
   * the conflicting suffix from that index on is replaced. Entries must be contiguous and must not
   * leave a gap after `lastIndex()`.
   */
  save(hardState: HardState | null, entries: readonly Entry[]): void | Promise<void>;
  /** Replaces the whole log with a snapshot received from the leader. */
  applySnapshot(snapshot: Snapshot): void | Promise<void>;
  /**
   * Records a snapshot the local state machine took at `index`, which must be within the log
   * (`firstIndex() - 1 <= index <= lastIndex()`) and newer than the current snapshot. Entries are
   * kept; `compact` releases them, so that followers slightly behind can still be sent entries.
   */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): void | Promise<void>;
  /**
   * Discards entries up to and including `index`, which must be covered by the latest snapshot
   * (`index <= snapshot().metadata.index`). Afterwards `firstIndex() === index + 1` and
   * `term(index)` is still answered.
   */
  compact(index: number): void | Promise<void>;
  close(): void | Promise<void>;
}
