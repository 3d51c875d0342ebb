/**
 * The in-memory index of the retained raft log: every entry's term and where its record lies on
 * disk, plus a bounded cache of the newest entries themselves.
 *
 * Terms are always in memory (the raft core asks for them constantly). Entry payloads are kept for
 * the hot tail only: the cache holds every entry from `cacheFirst` to `last` and drops the oldest
 * once it exceeds `cacheBytesMax` (counted with `entrySizeBytes`). An entry is dropped only after
 * its record has been written, so an entry is always either cached or readable from its segment.
 *
 * Slot `k` of the arrays holds entry `first + k`. While the log is running `first` is always
 * `offsetIndex + 1`; during recovery it may run ahead of it while a gap left by released segments
 * waits to be covered by a later compaction record (see wal-recovery.ts).
 */
import { type Entry, entrySizeBytes } from '../raft/types.js';

/** Where an entry's record lies: -1 segment means "not written yet" (it is then in the cache). */
export interface EntryLocation {
  readonly segment: number;
  readonly positionBytes: number;
  readonly recordBytes: number;
}

export class LogIndex {
  offsetIndex = 0;
  offsetTerm = 0;
  /** The index of slot 0. */
  first = 1;
  private terms: number[] = [];
  private segments: number[] = [];
  private positions: number[] = [];
  private recordBytes: number[] = [];
  /** Invariant: cached[k] is defined exactly for first + k >= cacheFirst. */
  private cached: (Entry | undefined)[] = [];
  private cacheFirst = 1;
  private cacheBytes = 0;

  constructor(readonly cacheBytesMax: number) {}

  get last(): number {
    return this.first + this.terms.length - 1;
  }

  get count(): number {
    return this.terms.length;
  }

  get cachedBytes(): number {
    return this.cacheBytes;
  }

  /** Appends `entry`, which must be `last + 1`. Location -1 means its record is not written yet. */
  append(entry: Entry, location?: EntryLocation): void {
    if (entry.index !== this.last + 1) {
      throw new Error(`log index: append ${entry.index} after ${this.last}`);
    }
    this.terms.push(entry.term);
    this.segments.push(location?.segment ?? -1);
    this.positions.push(location?.positionBytes ?? -1);
    this.recordBytes.push(location?.recordBytes ?? 0);
    if (this.cacheFirst > entry.index) this.cacheFirst = entry.index;
    this.cached.push(entry);
    this.cacheBytes += entrySizeBytes(entry);
  }

  /** Drops every entry from `index` on (a conflicting suffix being replaced). */
  truncateFrom(index: number): void {
    const keep = Math.max(0, index - this.first);
    if (keep >= this.terms.length) return;
    for (let slot = keep; slot < this.cached.length; slot++) {
      const entry = this.cached[slot];
      if (entry !== undefined) this.cacheBytes -= entrySizeBytes(entry);
    }
    this.terms.length = keep;
    this.segments.length = keep;
    this.positions.length = keep;
    this.recordBytes.length = keep;
    this.cached.length = keep;
    if (this.cacheFirst > this.last + 1) this.cacheFirst = this.last + 1;
  }

  /** Drops everything and makes `first` the index of the next entry appended. */
  restartAt(first: number): void {
    this.truncateFrom(this.first);
    this.first = first;
    this.cacheFirst = first;
  }

  /** Replaces the whole log with a snapshot at (index, term): nothing is retained after it. */
  resetTo(index: number, term: number): void {
    this.restartAt(index + 1);
    this.offsetIndex = index;
    this.offsetTerm = term;
  }

  /** Releases entries up to and including `index`; `term` is the term of entry `index`. */
  compactTo(index: number, term: number): void {
    if (index <= this.offsetIndex) return;
    this.offsetIndex = index;
    this.offsetTerm = term;
    if (index >= this.last) {
      this.restartAt(index + 1);
      return;
    }
    if (index < this.first) return; // A gap remains before `first` (recovery only).
    const drop = index + 1 - this.first;
    for (let slot = 0; slot < drop; slot++) {
      const entry = this.cached[slot];
      if (entry !== undefined) this.cacheBytes -= entrySizeBytes(entry);
    }
    this.terms.splice(0, drop);
    this.segments.splice(0, drop);
    this.positions.splice(0, drop);
    this.recordBytes.splice(0, drop);
    this.cached.splice(0, drop);
    this.first = index + 1;
    if (this.cacheFirst < this.first) this.cacheFirst = this.first;
  }

  /** The term of `index`, which must be `offsetIndex` or within `first .. last`. */
  term(index: number): number {
    if (index === this.offsetIndex) return this.offsetTerm;
    return this.terms[index - this.first]!;
  }

  /** The cached entry at `index`, or undefined if it must be read from disk. */
  cachedEntry(index: number): Entry | undefined {
    return this.cached[index - this.first];
  }

  location(index: number): EntryLocation {
    const slot = index - this.first;
    return {
      segment: this.segments[slot]!,
      positionBytes: this.positions[slot]!,
      recordBytes: this.recordBytes[slot]!,
    };
  }

  /**
   * Records where `entry` was written, if it is still the entry at its index (a later save may
   * already have replaced it, or a compaction released it).
   */
  setLocation(entry: Entry, location: EntryLocation): void {
    const slot = entry.index - this.first;
    if (slot < 0 || slot >= this.cached.length || this.cached[slot] !== entry) return;
    this.segments[slot] = location.segment;
    this.positions[slot] = location.positionBytes;
    this.recordBytes[slot] = location.recordBytes;
  }

  /** Drops the oldest cached entries that are on disk until the cache fits its maximum. */
  evict(): void {
    while (this.cacheBytes > this.cacheBytesMax && this.cacheFirst <= this.last) {
      const slot = this.cacheFirst - this.first;
      if (this.segments[slot]! < 0) return; // Not written yet: it must stay.
      this.cacheBytes -= entrySizeBytes(this.cached[slot]!);
      this.cached[slot] = undefined;
      this.cacheFirst++;
    }
  }

  /** The segment holding the oldest retained entry, or null if no retained entry is written. */
  oldestSegment(): number | null {
    if (this.terms.length === 0) return null;
    const segment = this.segments[0]!;
    return segment < 0 ? null : segment;
  }
}
