/**
 * The in-memory index of the retained raft log: every entry's term and where its record lies on
 * disk, plus a bounded cache of the newest entries themselves.
 *
 * Terms are always in memory (the raft core asks for them constantly). Entry payloads are kept for
 * the hot tail only: the cache holds every entry from `cacheFirst` to `last` and drops the oldest
 * once it exceeds `cacheBytesMax` (counted with `entrySizeBytes`). An entry is dropped only after
 * its record has been written, so an entry is always either cached or readable from its segment.
 *
 * Nothing here is one JavaScript object per entry. The per-entry fields are columns of typed
 * arrays, and a cached payload is copied into a large chunk (`CACHE_CHUNK_BYTES`); `cachedEntry`
 * builds a short-lived `Entry` around a view of it. Entries the cache held as objects survived the
 * young generation's collections and were copied by each of them: at one client, the leader's
 * scavenges copied about three times as much and took about twice as long with the cache as
 * without it. A chunk is never written again once it leaves the cache (views handed out may still
 * point into it); the garbage collector frees it when the last view is gone.
 *
 * Slot `k` of the columns holds entry `first + k`. While the log is running `first` is always
 * `offsetIndex + 1`; during recovery it may run ahead of it while a gap left by released segments
 * waits to be covered by a later compaction record (see wal-recovery.ts).
 */
import { type Entry, EntryType, entrySizeBytes } from '../raft/types.js';

/** Where an entry's record lies: -1 segment means "not written yet" (it is then in the cache). */
export interface EntryLocation {
  readonly segment: number;
  readonly positionBytes: number;
  readonly recordBytes: number;
}

/** Size of one chunk holding cached payloads. */
export const CACHE_CHUNK_BYTES = 1024 * 1024;
/** Payloads larger than this are cached as they are (one object each; they are few). */
const CHUNK_PAYLOAD_BYTES_MAX = CACHE_CHUNK_BYTES / 8;
const INITIAL_CAPACITY = 1024;
/** Slots of `LogIndex.totals`. */
const CACHE_BYTES = 0;
const PAYLOAD_TAIL = 1;

/** The columns of the slots, reallocated together when they grow or are moved down. */
class Columns {
  terms: Float64Array;
  types: Uint8Array;
  segments: Float64Array;
  positions: Float64Array;
  recordBytes: Float64Array;
  /** Which append put the entry in this slot (see `LogIndex.setLocation`). */
  generations: Float64Array;
  /** Where the cached payload lies in the chunk stream, -1 when it is held as its own object. */
  payloadAt: Float64Array;
  payloadBytes: Float64Array;

  constructor(readonly capacity: number) {
    this.terms = new Float64Array(capacity);
    this.types = new Uint8Array(capacity);
    this.segments = new Float64Array(capacity);
    this.positions = new Float64Array(capacity);
    this.recordBytes = new Float64Array(capacity);
    this.generations = new Float64Array(capacity);
    this.payloadAt = new Float64Array(capacity);
    this.payloadBytes = new Float64Array(capacity);
  }

  /** Copies `count` slots from `from` in `source` to slot 0 of this. */
  copyFrom(source: Columns, from: number, count: number): void {
    const to = from + count;
    this.terms.set(source.terms.subarray(from, to));
    this.types.set(source.types.subarray(from, to));
    this.segments.set(source.segments.subarray(from, to));
    this.positions.set(source.positions.subarray(from, to));
    this.recordBytes.set(source.recordBytes.subarray(from, to));
    this.generations.set(source.generations.subarray(from, to));
    this.payloadAt.set(source.payloadAt.subarray(from, to));
    this.payloadBytes.set(source.payloadBytes.subarray(from, to));
  }
}

export class LogIndex {
  offsetIndex = 0;
  offsetTerm = 0;
  /** The index of slot 0. */
  first = 1;
  private columns = new Columns(INITIAL_CAPACITY);
  /** Slot 0 is at `columns[start]`; released slots before it are reclaimed when the columns move. */
  private start = 0;
  private length = 0;
  private cacheFirst = 1;
  private nextGeneration = 1;
  /** Payload chunks; `chunks[0]` is chunk number `firstChunk` of the stream. */
  private chunks: Buffer[] = [];
  private firstChunk = 0;
  /**
   * The two byte totals, `totals[CACHE_BYTES]` and `totals[PAYLOAD_TAIL]` (where the next payload
   * goes in the chunk stream, bytes from the start of chunk 0), in a typed array rather than as
   * number fields. V8 keeps a number field as a small integer until a value that is not one is
   * stored (here: a size read back from a Float64Array column, or a total past 2^31), and then
   * gives the object a new hidden class, which throws away every optimized function that has
   * handled a LogIndex. In a member that happened at the first eviction, some 25,000 entries into
   * its life: about twenty functions on the write path deoptimized at once, in every member at
   * the same entry, and one-client puts ran a third slower for about 1.5 s while V8 compiled them
   * again. A typed array's elements have one representation for good.
   */
  private readonly totals = new Float64Array(2);
  /** Cached payloads too large for a chunk, by index. */
  private readonly large = new Map<number, Uint8Array>();

  constructor(readonly cacheBytesMax: number) {
    if (!evictionWarmed) {
      evictionWarmed = true;
      warmEviction();
    }
  }

  get last(): number {
    return this.first + this.length - 1;
  }

  get count(): number {
    return this.length;
  }

  get cachedBytes(): number {
    return this.totals[CACHE_BYTES]!;
  }

  /**
   * Appends `entry`, which must be `last + 1`, and returns the generation that names this append.
   * Without a location its record is not written yet (it is then in the cache).
   */
  append(entry: Entry, location?: EntryLocation): number {
    if (entry.index !== this.last + 1) {
      throw new Error(`log index: append ${entry.index} after ${this.last}`);
    }
    if (this.start + this.length === this.columns.capacity) this.makeRoom();
    const at = this.start + this.length;
    const c = this.columns;
    c.terms[at] = entry.term;
    c.types[at] = entry.type;
    c.segments[at] = location?.segment ?? -1;
    c.positions[at] = location?.positionBytes ?? -1;
    c.recordBytes[at] = location?.recordBytes ?? 0;
    const generation = this.nextGeneration++;
    c.generations[at] = generation;
    this.storePayload(at, entry);
    this.length++;
    if (this.cacheFirst > entry.index) this.cacheFirst = entry.index;
    this.totals[CACHE_BYTES]! += entrySizeBytes(entry);
    return generation;
  }

  /** Drops every entry from `index` on (a conflicting suffix being replaced). */
  truncateFrom(index: number): void {
    const keep = Math.max(0, index - this.first);
    if (keep >= this.length) return;
    for (let slot = Math.max(keep, this.cacheFirst - this.first); slot < this.length; slot++) {
      this.totals[CACHE_BYTES]! -= 24 + this.columns.payloadBytes[this.start + slot]!;
      this.large.delete(this.first + slot);
    }
    this.length = keep;
    if (this.cacheFirst > this.last + 1) this.cacheFirst = this.last + 1;
    // The stream is not rewound: later payloads go after the dropped ones, so positions keep
    // growing with the index and a chunk is released as soon as no cached entry lies in it.
    this.releaseChunks();
  }

  /** Drops everything and makes `first` the index of the next entry appended. */
  restartAt(first: number): void {
    this.truncateFrom(this.first);
    this.first = first;
    this.cacheFirst = first;
    this.start = 0;
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
    for (let slot = Math.max(0, this.cacheFirst - this.first); slot < drop; slot++) {
      this.totals[CACHE_BYTES]! -= 24 + this.columns.payloadBytes[this.start + slot]!;
      this.large.delete(this.first + slot);
    }
    this.start += drop;
    this.length -= drop;
    this.first = index + 1;
    if (this.cacheFirst < this.first) this.cacheFirst = this.first;
    this.releaseChunks();
  }

  /** The term of `index`, which must be `offsetIndex` or within `first .. last`. */
  term(index: number): number {
    if (index === this.offsetIndex) return this.offsetTerm;
    return this.columns.terms[this.start + index - this.first]!;
  }

  /** The cached entry at `index` (a new object each call), or undefined if it must be read. */
  cachedEntry(index: number): Entry | undefined {
    if (index < this.cacheFirst || index > this.last) return undefined;
    const at = this.start + index - this.first;
    const c = this.columns;
    const payloadAt = c.payloadAt[at]!;
    let data: Uint8Array;
    if (payloadAt < 0) {
      data = this.large.get(index)!;
    } else {
      const chunk = this.chunks[Math.floor(payloadAt / CACHE_CHUNK_BYTES) - this.firstChunk]!;
      const offset = payloadAt % CACHE_CHUNK_BYTES;
      data = chunk.subarray(offset, offset + c.payloadBytes[at]!);
    }
    return { term: c.terms[at]!, index, type: c.types[at]! as EntryType, data };
  }

  location(index: number): EntryLocation {
    const at = this.start + index - this.first;
    const c = this.columns;
    return {
      segment: c.segments[at]!,
      positionBytes: c.positions[at]!,
      recordBytes: c.recordBytes[at]!,
    };
  }

  /**
   * Records where the entry `append` numbered `generation` was written, if it is still the entry
   * at `index` (a later save may already have replaced it, or a compaction released it).
   */
  setLocation(
    index: number,
    generation: number,
    segment: number,
    positionBytes: number,
    recordBytes: number,
  ): void {
    const slot = index - this.first;
    if (slot < 0 || slot >= this.length) return;
    const at = this.start + slot;
    const c = this.columns;
    if (c.generations[at] !== generation) return;
    c.segments[at] = segment;
    c.positions[at] = positionBytes;
    c.recordBytes[at] = recordBytes;
  }

  /** Drops the oldest cached entries that are on disk until the cache fits its maximum. */
  evict(): void {
    const before = this.cacheFirst;
    while (this.totals[CACHE_BYTES]! > this.cacheBytesMax && this.cacheFirst <= this.last) {
      const at = this.start + this.cacheFirst - this.first;
      if (this.columns.segments[at]! < 0) break; // Not written yet: it must stay.
      this.totals[CACHE_BYTES]! -= 24 + this.columns.payloadBytes[at]!;
      this.large.delete(this.cacheFirst);
      this.cacheFirst++;
    }
    if (this.cacheFirst !== before) this.releaseChunks();
  }

  /** The segment holding the oldest retained entry, or null if no retained entry is written. */
  oldestSegment(): number | null {
    if (this.length === 0) return null;
    const segment = this.columns.segments[this.start]!;
    return segment < 0 ? null : segment;
  }

  /** Moves the slots down over released ones, or doubles the columns when most are in use. */
  private makeRoom(): void {
    const old = this.columns;
    const capacity = this.length >= old.capacity / 2 ? old.capacity * 2 : old.capacity;
    const next = capacity === old.capacity ? old : new Columns(capacity);
    if (next === old) {
      for (const column of [
        old.terms,
        old.types,
        old.segments,
        old.positions,
        old.recordBytes,
        old.generations,
        old.payloadAt,
        old.payloadBytes,
      ]) {
        column.copyWithin(0, this.start, this.start + this.length);
      }
    } else {
      next.copyFrom(old, this.start, this.length);
    }
    this.columns = next;
    this.start = 0;
  }

  private storePayload(at: number, entry: Entry): void {
    const bytes = entry.data.byteLength;
    this.columns.payloadBytes[at] = bytes;
    if (bytes > CHUNK_PAYLOAD_BYTES_MAX) {
      this.columns.payloadAt[at] = -1;
      this.large.set(entry.index, entry.data);
      return;
    }
    let offset = this.totals[PAYLOAD_TAIL]! % CACHE_CHUNK_BYTES;
    if (offset + bytes > CACHE_CHUNK_BYTES) {
      this.totals[PAYLOAD_TAIL]! += CACHE_CHUNK_BYTES - offset;
      offset = 0;
    }
    const chunkNumber = Math.floor(this.totals[PAYLOAD_TAIL]! / CACHE_CHUNK_BYTES);
    if (this.chunks.length === 0) this.firstChunk = chunkNumber;
    while (this.firstChunk + this.chunks.length <= chunkNumber) {
      this.chunks.push(Buffer.allocUnsafeSlow(CACHE_CHUNK_BYTES));
    }
    this.chunks[chunkNumber - this.firstChunk]!.set(entry.data, offset);
    this.columns.payloadAt[at] = this.totals[PAYLOAD_TAIL]!;
    this.totals[PAYLOAD_TAIL]! += bytes;
  }

  /** Lets go of the chunks before the one holding the oldest cached payload. */
  private releaseChunks(): void {
    let keepFrom = Math.floor(this.totals[PAYLOAD_TAIL]! / CACHE_CHUNK_BYTES);
    for (let index = this.cacheFirst; index <= this.last; index++) {
      const payloadAt = this.columns.payloadAt[this.start + index - this.first]!;
      if (payloadAt >= 0) {
        keepFrom = Math.floor(payloadAt / CACHE_CHUNK_BYTES);
        break;
      }
    }
    const drop = Math.min(this.chunks.length, keepFrom - this.firstChunk);
    if (drop <= 0) return;
    this.chunks.splice(0, drop);
    this.firstChunk += drop;
  }
}

/**
 * Whether `warmEviction` ran in this process. The first LogIndex built runs it, before any real
 * entry exists.
 */
let evictionWarmed = false;
const warmEvictionRounds = 64;

/**
 * Runs the eviction path on a throwaway index. V8 optimizes the WAL's flusher, with `evict`
 * inlined into it, long before the cache first fills (some 25,000 entries in), and the body of
 * `evict`'s loop, never run until then, has no type feedback. So at the first eviction the
 * flusher deoptimized ("insufficient type feedback for generic named access"). Its recompile
 * took 11-23 ms on a V8 worker thread, in every member at the same entry, competing with the
 * members' event loops for the cores (bench/README, 2026-12-08). Evicting here gives that code
 * its feedback, with the same hidden classes as the real index, before anything is optimized.
 */
function warmEviction(): void {
  const index = new LogIndex(0);
  const data = new Uint8Array(8);
  // V8 gives a function a feedback vector only after its first few calls (lazy feedback
  // allocation), so one eviction would record nothing: evict on each of a few dozen appends.
  for (let i = 1; i <= warmEvictionRounds; i++) {
    index.append(
      { term: 1, index: i, type: EntryType.Normal, data },
      { segment: 1, positionBytes: 40 * (i - 1), recordBytes: 40 },
    );
    index.evict();
  }
}
