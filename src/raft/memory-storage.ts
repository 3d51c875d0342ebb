/**
 * An in-memory `RaftStorage`: the log the simulator and unit tests give the raft core.
 *
 * Every write is durable the moment it returns; the simulator models lost unsynced writes itself by
 * delaying when it calls `save`. The layout mirrors the disk WAL's: `entries[0]` is the entry at
 * `offset + 1`, and `(offsetIndex, offsetTerm)` names the entry just before the first retained one.
 */
import type { InitialState, RaftStorage } from './storage.js';
import {
  type ConfState,
  EMPTY_CONF_STATE,
  EMPTY_HARD_STATE,
  EMPTY_SNAPSHOT_METADATA,
  type Entry,
  entrySizeBytes,
  type HardState,
  type Snapshot,
  StorageError,
} from './types.js';

export class MemoryStorage implements RaftStorage {
  private hardState: HardState = EMPTY_HARD_STATE;
  private latestSnapshot: Snapshot = { metadata: EMPTY_SNAPSHOT_METADATA, data: new Uint8Array() };
  /** Index of the entry just before `log[0]`. Invariant: offsetIndex <= latestSnapshot index. */
  private offsetIndex = 0;
  private offsetTerm = 0;
  /** Invariant: log[i].index === offsetIndex + 1 + i. */
  private log: Entry[] = [];
  /** The membership to report when no snapshot carries one (a freshly bootstrapped member). */
  private bootstrapConfState: ConfState = EMPTY_CONF_STATE;

  /** Sets the initial membership of a member that starts a new cluster. */
  bootstrap(confState: ConfState): void {
    this.bootstrapConfState = confState;
  }

  initialState(): InitialState {
    const fromSnapshot = this.latestSnapshot.metadata.index > 0;
    return {
      hardState: this.hardState,
      confState: fromSnapshot ? this.latestSnapshot.metadata.confState : this.bootstrapConfState,
    };
  }

  firstIndex(): number {
    return this.offsetIndex + 1;
  }

  lastIndex(): number {
    return this.offsetIndex + this.log.length;
  }

  term(index: number): number {
    if (index === this.offsetIndex) return this.offsetTerm;
    if (index < this.offsetIndex) {
      throw new StorageError(
        'COMPACTED',
        `term of index ${index}: compacted (first is ${this.firstIndex()})`,
      );
    }
    if (index > this.lastIndex()) {
      throw new StorageError(
        'UNAVAILABLE',
        `term of index ${index}: beyond last index ${this.lastIndex()}`,
      );
    }
    return this.log[index - this.offsetIndex - 1]!.term;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo < this.firstIndex()) {
      throw new StorageError(
        'COMPACTED',
        `entries from ${lo}: compacted (first is ${this.firstIndex()})`,
      );
    }
    if (hi > this.lastIndex() + 1) {
      throw new StorageError(
        'UNAVAILABLE',
        `entries to ${hi}: beyond last index ${this.lastIndex()}`,
      );
    }
    const result: Entry[] = [];
    let bytes = 0;
    for (let index = lo; index < hi; index++) {
      const entry = this.log[index - this.offsetIndex - 1]!;
      bytes += entrySizeBytes(entry);
      if (result.length > 0 && bytes > maxBytes) break;
      result.push(entry);
    }
    return result;
  }

  snapshot(): Snapshot {
    return this.latestSnapshot;
  }

  save(hardState: HardState | null, entries: readonly Entry[]): void {
    if (entries.length > 0) this.append(entries);
    if (hardState !== null) this.hardState = hardState;
  }

  private append(entries: readonly Entry[]): void {
    const first = entries[0]!.index;
    for (let i = 1; i < entries.length; i++) {
      if (entries[i]!.index !== first + i) throw new Error('save: entries are not contiguous');
    }
    if (first > this.lastIndex() + 1) {
      throw new Error(`save: entry ${first} leaves a gap after last index ${this.lastIndex()}`);
    }
    if (first <= this.offsetIndex) {
      throw new Error(`save: entry ${first} overwrites compacted index ${this.offsetIndex}`);
    }
    // Drop the conflicting suffix (a new leader overwrote it), then append.
    this.log.length = first - this.offsetIndex - 1;
    for (const entry of entries) this.log.push(entry);
  }

  applySnapshot(snapshot: Snapshot): void {
    const { index, term } = snapshot.metadata;
    if (index <= this.latestSnapshot.metadata.index) {
      throw new StorageError(
        'SNAPSHOT_OUT_OF_DATE',
        `snapshot at ${index} is not newer than ${this.latestSnapshot.metadata.index}`,
      );
    }
    this.latestSnapshot = snapshot;
    this.offsetIndex = index;
    this.offsetTerm = term;
    this.log = [];
    if (this.hardState.commit < index) this.hardState = { ...this.hardState, commit: index };
  }

  createSnapshot(index: number, confState: ConfState, data: Uint8Array): void {
    if (index <= this.latestSnapshot.metadata.index) {
      throw new StorageError(
        'SNAPSHOT_OUT_OF_DATE',
        `snapshot at ${index} is not newer than ${this.latestSnapshot.metadata.index}`,
      );
    }
    if (index > this.lastIndex()) {
      throw new StorageError(
        'UNAVAILABLE',
        `snapshot at ${index}: beyond last index ${this.lastIndex()}`,
      );
    }
    this.latestSnapshot = { metadata: { index, term: this.term(index), confState }, data };
  }

  compact(index: number): void {
    if (index <= this.offsetIndex) return;
    if (index > this.latestSnapshot.metadata.index) {
      throw new Error(
        `compact to ${index}: not covered by the snapshot at ${this.latestSnapshot.metadata.index}`,
      );
    }
    const term = this.term(index);
    this.log = this.log.slice(index - this.offsetIndex);
    this.offsetIndex = index;
    this.offsetTerm = term;
  }

  close(): void {}
}
