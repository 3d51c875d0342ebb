/**
 * The raft log as the core sees it: durable entries in `LogStorage` followed by the `unstable`
 * tail (entries and possibly a snapshot not yet durable), plus the commit and apply positions.
 *
 *   storage (durable)          unstable (not yet durable)
 *   [first ............ last] [offset ....................... lastIndex]
 *                                  ^ inProgress: handed to a Ready, being written
 *
 * An entry moves from unstable to storage when the caller confirms the write (`stableTo`). Only
 * entries that are both committed and durable here are handed out for applying.
 */
import { assert } from './assert.js';
import type { LogStorage } from './storage.js';
import { type Entry, entrySizeBytes, type Snapshot, StorageError } from './types.js';

/** Entries (and a snapshot) that are not yet durable. */
class Unstable {
  /** An incoming snapshot waiting to be persisted; entries then start right after it. */
  snapshot: Snapshot | null = null;
  /** Invariant: entries[i].index === offset + i. */
  entries: Entry[] = [];
  offset: number;
  /** Entries with index < offsetInProgress (and the snapshot if snapshotInProgress) were handed
   *  to a Ready and are being written. Invariant: offset <= offsetInProgress <= offset + len. */
  offsetInProgress: number;
  snapshotInProgress = false;

  constructor(offset: number) {
    this.offset = offset;
    this.offsetInProgress = offset;
  }

  lastIndex(): number | null {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    if (this.snapshot !== null) return this.snapshot.metadata.index;
    return null;
  }

  term(index: number): number | null {
    if (index < this.offset) {
      const snap = this.snapshot;
      if (snap !== null && snap.metadata.index === index) return snap.metadata.term;
      return null;
    }
    const last = this.lastIndex();
    if (last === null || index > last) return null;
    return this.entries[index - this.offset]!.term;
  }

  /** Appends entries starting at `entries[0].index`, truncating any conflicting suffix. */
  truncateAndAppend(entries: readonly Entry[]): void {
    const first = entries[0]!.index;
    if (first === this.offset + this.entries.length) {
      for (const entry of entries) this.entries.push(entry);
    } else if (first <= this.offset) {
      // Replaces everything unstable: the new entries overwrite what storage holds from `first`.
      this.offset = first;
      this.entries = entries.slice();
      this.offsetInProgress = first;
    } else {
      this.entries.length = first - this.offset;
      for (const entry of entries) this.entries.push(entry);
    }
    this.offsetInProgress = Math.min(this.offsetInProgress, first);
  }

  restore(snapshot: Snapshot): void {
    this.offset = snapshot.metadata.index + 1;
    this.offsetInProgress = this.offset;
    this.entries = [];
    this.snapshot = snapshot;
    this.snapshotInProgress = false;
  }

  /** The caller made entries up to (index, term) durable. A stale confirmation is ignored. */
  stableTo(index: number, term: number): void {
    const known = this.term(index);
    if (known === null || known !== term || index < this.offset) return;
    const count = index + 1 - this.offset;
    this.entries = count === this.entries.length ? [] : this.entries.slice(count);
    this.offset = index + 1;
    this.offsetInProgress = Math.max(this.offsetInProgress, this.offset);
  }

  stableSnapshotTo(index: number): void {
    if (this.snapshot !== null && this.snapshot.metadata.index === index) {
      this.snapshot = null;
      this.snapshotInProgress = false;
    }
  }
}

export class RaftLog {
  readonly storage: LogStorage;
  readonly unstable: Unstable;
  /** The highest index known to be committed. Invariant: committed never decreases. */
  committed: number;
  /** The highest index handed to the application for applying. Invariant: applied <= committed. */
  applied: number;
  /** Limit on the bytes of committed entries handed out in one Ready. */
  readonly maxApplyBytes: number;

  constructor(storage: LogStorage, maxApplyBytes: number) {
    this.storage = storage;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    // Everything in storage up to its snapshot is committed and applied by definition.
    this.committed = first - 1;
    this.applied = first - 1;
    this.maxApplyBytes = maxApplyBytes;
  }

  firstIndex(): number {
    const snap = this.unstable.snapshot;
    if (snap !== null) return snap.metadata.index + 1;
    return this.storage.firstIndex();
  }

  lastIndex(): number {
    const last = this.unstable.lastIndex();
    if (last !== null) return last;
    return this.storage.lastIndex();
  }

  lastTerm(): number {
    return this.term(this.lastIndex());
  }

  /** The term of `index`, or 0 when the index is compacted or beyond the log. */
  term(index: number): number {
    const fromUnstable = this.unstable.term(index);
    if (fromUnstable !== null) return fromUnstable;
    if (index < this.firstIndex() - 1 || index > this.lastIndex()) return 0;
    try {
      return this.storage.term(index);
    } catch (error) {
      if (error instanceof StorageError && error.code !== 'CORRUPT') return 0;
      throw error;
    }
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: is a log ending at (lastIndex, lastTerm) at least as up to date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /** The first index in `entries` whose term differs from ours (or that we lack); 0 if none. */
  findConflict(entries: readonly Entry[]): number {
    for (const entry of entries) {
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  /**
   * The largest index <= `index` whose term is <= `term`. A leader uses it to skip over a whole
   * term of a follower's divergent entries in one round trip (fast backup).
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    let at = Math.min(index, this.lastIndex());
    const floor = this.firstIndex() - 1;
    while (at > floor) {
      const found = this.term(at);
      if (found <= term) return { index: at, term: found };
      at--;
    }
    return { index: at, term: this.term(at) };
  }

  /**
   * A follower's append: if our entry at `index` has `logTerm`, append `entries` (dropping a
   * conflicting suffix) and advance commit. Returns the new last index, or null on mismatch.
   */
  maybeAppend(index: number, logTerm: number, committed: number, entries: Entry[]): number | null {
    if (!this.matchTerm(index, logTerm)) return null;
    const lastNew = index + entries.length;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      assert(
        conflict > this.committed,
        () => `conflict at ${conflict} <= commit ${this.committed}`,
      );
      this.append(conflict === entries[0]!.index ? entries : entries.slice(conflict - index - 1));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  append(entries: readonly Entry[]): number {
    if (entries.length === 0) return this.lastIndex();
    const after = entries[0]!.index - 1;
    assert(after >= this.committed, () => `append after ${after} < commit ${this.committed}`);
    this.unstable.truncateAndAppend(entries);
    return this.lastIndex();
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    assert(index <= this.lastIndex(), () => `commit ${index} beyond last ${this.lastIndex()}`);
    this.committed = index;
  }

  /** Highest index that may be applied: committed and durable (not still in `unstable`). */
  maxApplicableIndex(): number {
    if (this.unstable.snapshot !== null) return this.applied;
    return Math.min(this.committed, this.unstable.offset - 1);
  }

  hasNextCommittedEntries(): boolean {
    return this.maxApplicableIndex() > this.applied;
  }

  nextCommittedEntries(): Entry[] {
    return this.committedEntriesAfter(this.applied);
  }

  /** Applicable entries after `index` (at least `applied`), up to maxApplyBytes. */
  committedEntriesAfter(index: number): Entry[] {
    const hi = this.maxApplicableIndex();
    if (hi <= index) return [];
    return this.slice(index + 1, hi + 1, this.maxApplyBytes);
  }

  appliedTo(index: number): void {
    assert(index <= this.committed, () => `applied ${index} beyond commit ${this.committed}`);
    if (index > this.applied) this.applied = index;
  }

  /** Entries not yet handed to a Ready for persisting. */
  nextUnstableEntries(): Entry[] {
    const u = this.unstable;
    const from = u.offsetInProgress - u.offset;
    if (from >= u.entries.length) return [];
    return from === 0 ? u.entries.slice() : u.entries.slice(from);
  }

  hasNextUnstableEntries(): boolean {
    const u = this.unstable;
    return u.offsetInProgress < u.offset + u.entries.length;
  }

  nextUnstableSnapshot(): Snapshot | null {
    const u = this.unstable;
    return u.snapshot !== null && !u.snapshotInProgress ? u.snapshot : null;
  }

  /** Marks everything unstable as handed to a Ready. */
  acceptUnstable(): void {
    const u = this.unstable;
    u.offsetInProgress = u.offset + u.entries.length;
    if (u.snapshot !== null) u.snapshotInProgress = true;
  }

  stableTo(index: number, term: number): void {
    this.unstable.stableTo(index, term);
  }

  stableSnapshotTo(index: number): void {
    this.unstable.stableSnapshotTo(index);
  }

  /** Entries in [lo, hi), at most `maxBytes` (but at least one). Throws COMPACTED below first. */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo >= hi) return [];
    const first = this.firstIndex();
    if (lo < first) throw new StorageError('COMPACTED', `entries from ${lo}: first is ${first}`);
    assert(hi <= this.lastIndex() + 1, () => `slice to ${hi} beyond last ${this.lastIndex()}`);
    const u = this.unstable;
    let result: Entry[] = [];
    let bytes = 0;
    if (lo < u.offset) {
      result = this.storage.entries(lo, Math.min(hi, u.offset), maxBytes);
      for (const entry of result) bytes += entrySizeBytes(entry);
      // Storage stopped early because of the byte limit: do not continue from unstable.
      if (result.length < Math.min(hi, u.offset) - lo) return result;
    }
    for (let index = Math.max(lo, u.offset); index < hi; index++) {
      const entry = u.entries[index - u.offset]!;
      bytes += entrySizeBytes(entry);
      if (result.length > 0 && bytes > maxBytes) break;
      result.push(entry);
    }
    return result;
  }

  /** Replaces the log with an incoming snapshot (the follower side of InstallSnapshot). */
  restore(snapshot: Snapshot): void {
    this.committed = snapshot.metadata.index;
    this.unstable.restore(snapshot);
  }

  /** The snapshot to send a lagging follower: an unstable one if pending, else storage's. */
  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }
}
