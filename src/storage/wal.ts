/**
 * The write-ahead log: raft entries, hard state and compaction/snapshot markers in segmented,
 * append-only files, with group commit.
 *
 * Writes change the in-memory state at once (so a reader sees its own writes, exactly like
 * `MemoryStorage`) and queue their records. One flusher drains the queue: it takes everything
 * queued (up to `batchBytesMax`), writes it as one batch with one positional write to a segment
 * opened with O_DSYNC (so the write returns once the batch is durable: the equivalent of a write
 * plus an fdatasync, in one threadpool job), then settles every promise in the batch. Saves that
 * arrive while a batch is being made durable form the next batch, so the cost is one synchronous
 * write per batch however many writers there are. Writes run on libuv's threadpool; the event
 * loop keeps serving meanwhile.
 *
 * An operation may carry a barrier (a promise that must settle first): the snapshot store uses it
 * so that a compaction or reset record never becomes durable before the snapshot file it relies on.
 * If any write, sync or barrier fails, the log stops accepting writes (code IO): after a failed
 * fdatasync the kernel may have dropped the dirty pages, so nothing later could be trusted.
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import { type Entry, entrySizeBytes, type HardState, StorageError } from '../raft/types.js';
import { CorruptionError, WalError } from './errors.js';
import { closeFile, fsyncDirectory, readFullySync, writeAt } from './fs-async.js';
import type { LogIndex } from './log-index.js';
import {
  BATCH_BODY_BYTES,
  decodeEntry,
  encodeBatch,
  encodeEntry,
  encodeHardState,
  encodeIndexTerm,
  entryRecordBytes,
  HARD_STATE_BODY_BYTES,
  INDEX_TERM_BODY_BYTES,
  RecordType,
  type RecordView,
  readRecord,
  recordSizeBytes,
} from './record.js';
import {
  discardSegment,
  FIRST_BATCH_OFFSET_BYTES,
  installSegment,
  type PreallocatePacing,
  prepareSegment,
  type Segment,
} from './segment.js';
import { recoverWal } from './wal-recovery.js';

export const SEGMENT_BYTES_DEFAULT = 64 * 1024 * 1024;
/**
 * Entries kept in memory (the newest; older ones are read back from their segments). Small on
 * purpose: every cached entry is a few JavaScript objects the garbage collector marks on every
 * full collection. At 256 clients about 8 MiB is a second or more of writes, far more than a
 * follower in step needs, and 64 MiB (about 200,000 entries of a 256-byte put) measured about 10 %
 * fewer puts per second with a higher p99 (bench/runs-probe.ts, two alternating pairs of 16 runs).
 */
export const CACHE_BYTES_MAX_DEFAULT = 8 * 1024 * 1024;
/** One batch (one durable write) holds at most this many bytes, unless one save is larger. */
export const BATCH_BYTES_MAX_DEFAULT = 8 * 1024 * 1024;
/** Bytes queued for the disk beyond which new writes are refused with OVERLOADED. */
export const QUEUE_BYTES_MAX_DEFAULT = 256 * 1024 * 1024;
/** The largest single save; it must fit one batch, so one segment is grown to hold it if needed. */
export const SAVE_BYTES_MAX = 256 * 1024 * 1024;
/** Largest single read of back-to-back records when serving entries from disk. */
export const READ_SPAN_BYTES_MAX = 1024 * 1024;

export interface WalOptions {
  /** Size of each preallocated segment file. */
  readonly segmentBytes?: number;
  /** Bytes of newest entries kept in memory; older entries are read from their segment. */
  readonly cacheBytesMax?: number;
  readonly batchBytesMax?: number;
  readonly queueBytesMax?: number;
  readonly logger: Logger;
}

/** Counters since open, for benchmarks and metrics. */
export interface WalStats {
  /** Batches made durable; each is one positional O_DSYNC write (counted as one data sync). */
  readonly fdatasyncs: number;
  readonly bytesWritten: number;
  readonly operations: number;
  readonly segmentsRolled: number;
}

type Operation =
  | {
      kind: 'save';
      hardState: HardState | null;
      entries: readonly Entry[];
      /** The log index's generation for `entries[0]`; the others follow one by one. */
      firstGeneration: number;
    }
  | { kind: 'compact'; index: number; term: number }
  | { kind: 'reset'; index: number; term: number; hardState: HardState }
  | { kind: 'snapshot'; index: number; term: number };

interface Pending {
  readonly operation: Operation;
  readonly bytes: number;
  barrier: Promise<void> | null;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/** Bytes of the hard state, compaction and snapshot records opening every segment's first batch. */
const RESTATEMENT_BYTES =
  recordSizeBytes(HARD_STATE_BODY_BYTES) + 2 * recordSizeBytes(INDEX_TERM_BODY_BYTES);
const BATCH_HEADER_BYTES = recordSizeBytes(BATCH_BODY_BYTES);

const recordTypeOf = {
  compact: RecordType.Compact,
  reset: RecordType.Reset,
  snapshot: RecordType.Snapshot,
} as const;

function checkHardState(hardState: HardState | null): WalError | null {
  if (hardState === null) return null;
  const { term, vote, commit } = hardState;
  for (const value of [term, vote, commit]) {
    if (!Number.isSafeInteger(value) || value < 0) {
      return new WalError('INVALID_ARGUMENT', `save: hard state ${JSON.stringify(hardState)}`);
    }
  }
  return null;
}

function describeView(view: RecordView | string): string {
  return typeof view === 'string' ? view : `record of type ${view.type}`;
}

function yieldTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class Wal {
  private hardStateValue: HardState;
  /**
   * A hard state whose only change is the commit index, not yet written: raft needs no durable
   * commit index (a restarted member learns it again from the leader), so it rides along with the
   * next save instead of costing a data sync of its own (see `deferHardState`).
   */
  private deferredHardState: HardState | null = null;
  private readonly queue: Pending[] = [];
  private queuedBytes = 0;
  private flusher: Promise<void> | null = null;
  private failure: WalError | null = null;
  private closed = false;
  private preparing: Promise<Segment | null> | null = null;
  /** The pacing of the preallocation in `preparing` (see PREALLOCATE_SYNC_BYTES). */
  private preparingPacing: PreallocatePacing | null = null;
  /** State as of the last batch handed to the disk; restated at the start of each segment. */
  private diskHardState: HardState;
  private diskOffsetIndex: number;
  private diskOffsetTerm: number;
  private diskSnapshot: { index: number; term: number };
  /** The current snapshot as issued (read-your-writes) and as last made durable. */
  private snapshotValue: { index: number; term: number };
  private durableSnapshotValue: { index: number; term: number };
  /** Durable compaction point and newest durable reset's segment, for releasing segments. */
  private durableOffsetIndex: number;
  private durableResetSegment: number;
  private counters = { fdatasyncs: 0, bytesWritten: 0, operations: 0, segmentsRolled: 0 };
  private readonly segmentBytes: number;
  private readonly batchBytesMax: number;
  private readonly queueBytesMax: number;
  /** Reused by each batch: every written entry's position in the batch and record size. */
  private readonly writtenScratch: number[] = [];

  private constructor(
    private readonly dir: string,
    private readonly index: LogIndex,
    hardState: HardState,
    private readonly segments: Segment[],
    private appendOffsetBytes: number,
    private segmentFresh: boolean,
    private readonly segmentIndexMax: Map<number, number>,
    resetSegment: number,
    snapshot: { index: number; term: number },
    private readonly logger: Logger,
    options: WalOptions,
  ) {
    this.hardStateValue = hardState;
    this.diskHardState = hardState;
    this.diskOffsetIndex = index.offsetIndex;
    this.diskOffsetTerm = index.offsetTerm;
    this.durableOffsetIndex = index.offsetIndex;
    this.durableResetSegment = resetSegment;
    this.diskSnapshot = snapshot;
    this.snapshotValue = snapshot;
    this.durableSnapshotValue = snapshot;
    this.segmentBytes = options.segmentBytes ?? SEGMENT_BYTES_DEFAULT;
    this.batchBytesMax = options.batchBytesMax ?? BATCH_BYTES_MAX_DEFAULT;
    this.queueBytesMax = options.queueBytesMax ?? QUEUE_BYTES_MAX_DEFAULT;
  }

  /** Opens (recovering) or creates the log in `dir`. Throws `CorruptionError` on corruption. */
  static async open(dir: string, options: WalOptions): Promise<Wal> {
    const cacheBytesMax = options.cacheBytesMax ?? CACHE_BYTES_MAX_DEFAULT;
    const recovered = await recoverWal(dir, cacheBytesMax, options.logger);
    const segments = recovered.segments;
    let appendOffsetBytes = recovered.appendOffsetBytes;
    let fresh = recovered.lastSegmentFresh;
    if (segments.length === 0) {
      const size = options.segmentBytes ?? SEGMENT_BYTES_DEFAULT;
      segments.push(await installSegment(dir, await prepareSegment(dir, 1, size)));
      appendOffsetBytes = FIRST_BATCH_OFFSET_BYTES;
      fresh = true;
    }
    return new Wal(
      dir,
      recovered.index,
      recovered.hardState,
      segments,
      appendOffsetBytes,
      fresh,
      recovered.segmentIndexMax,
      recovered.resetSegment,
      recovered.snapshot,
      options.logger,
      options,
    );
  }

  // ---- Reads (synchronous; they see every write already issued) ----

  hardState(): HardState {
    return this.hardStateValue;
  }

  /** The current snapshot's (index, term) as recorded in the log; index 0 when there is none. */
  snapshot(): { index: number; term: number } {
    return this.snapshotValue;
  }

  /** The newest snapshot whose record is durable: its file must be kept. */
  durableSnapshot(): { index: number; term: number } {
    return this.durableSnapshotValue;
  }

  firstIndex(): number {
    return this.index.offsetIndex + 1;
  }

  lastIndex(): number {
    return this.index.last;
  }

  term(index: number): number {
    if (index < this.index.offsetIndex) {
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
    return this.index.term(index);
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
    for (let index = lo; index < hi; ) {
      const cached = this.index.cachedEntry(index);
      const run = cached === undefined ? this.readRun(index, hi, maxBytes - bytes) : [cached];
      for (const entry of run) {
        bytes += entrySizeBytes(entry);
        if (result.length > 0 && bytes > maxBytes) return result;
        result.push(entry);
      }
      index += run.length;
    }
    return result;
  }

  /**
   * Reads entries that left the cache, from `from` on, with one read for a run of records that lie
   * back to back in one segment (a follower catching up reads long runs). The run stays within
   * `READ_SPAN_BYTES_MAX` and roughly within `budgetBytes`, but holds at least one entry. Every
   * record's CRC is verified.
   */
  private readRun(from: number, hi: number, budgetBytes: number): Entry[] {
    const first = this.index.location(from);
    const segment = this.segments.find((s) => s.sequence === first.segment);
    if (segment === undefined) throw new Error(`wal: entry ${from} has no segment`);
    let spanBytes = first.recordBytes;
    let to = from + 1;
    while (to < hi && this.index.cachedEntry(to) === undefined) {
      const next = this.index.location(to);
      const adjacent =
        next.segment === first.segment && next.positionBytes === first.positionBytes + spanBytes;
      const grown = spanBytes + next.recordBytes;
      if (!adjacent || grown > READ_SPAN_BYTES_MAX || grown > budgetBytes) break;
      spanBytes = grown;
      to++;
    }
    const buffer = Buffer.allocUnsafe(spanBytes);
    const read = readFullySync(segment.fd, buffer, spanBytes, first.positionBytes);
    const entries: Entry[] = [];
    let offset = 0;
    for (let index = from; index < to; index++) {
      const view = readRecord(buffer, offset, read);
      const where = first.positionBytes + offset;
      if (typeof view === 'string' || view.type !== RecordType.Entry) {
        throw new CorruptionError(segment.path, where, `entry ${index}: ${describeView(view)}`);
      }
      const entry = decodeEntry(buffer, view);
      if (entry.index !== index) {
        throw new CorruptionError(segment.path, where, `holds entry ${entry.index}, not ${index}`);
      }
      entries.push(entry);
      offset = view.end;
    }
    return entries;
  }

  // ---- Writes (durable when the promise resolves) ----

  /** Appends entries (replacing a conflicting suffix) and/or a hard state, as one durable step. */
  save(hardStateGiven: HardState | null, entries: readonly Entry[]): Promise<void> {
    // A newer hard state supersedes a deferred one; otherwise the deferred one is written now.
    const hardState = hardStateGiven ?? this.deferredHardState;
    let bytes = hardState === null ? 0 : recordSizeBytes(HARD_STATE_BODY_BYTES);
    for (const entry of entries) bytes += entryRecordBytes(entry);
    const refusal = this.refusal(bytes) ?? checkHardState(hardState) ?? this.checkEntries(entries);
    if (refusal !== null) return Promise.reject(refusal);
    let firstGeneration = 0;
    if (entries.length > 0) {
      const first = entries[0]!.index;
      if (first <= this.index.last) this.index.truncateFrom(first);
      for (const entry of entries) {
        const generation = this.index.append(entry);
        if (firstGeneration === 0) firstGeneration = generation;
      }
    }
    if (hardState !== null) this.hardStateValue = hardState;
    this.deferredHardState = null;
    const operation = {
      kind: 'save' as const,
      hardState,
      entries: entries.slice(),
      firstGeneration,
    };
    return this.enqueue(operation, bytes, null);
  }

  /**
   * Records a hard state that need not be durable yet: the caller guarantees that only its commit
   * index changed (raft's `mustSync` is false). It is visible at once through `hardState()` and
   * written with the next save, reset, or at close; a crash before that leaves an older commit
   * index on disk, which raft tolerates.
   */
  deferHardState(hardState: HardState): void {
    const refusal = checkHardState(hardState);
    if (refusal !== null) throw refusal;
    this.hardStateValue = hardState;
    this.deferredHardState = hardState;
  }

  /**
   * Releases entries up to `index` (a no-op if already released). `barrier` must settle before the
   * record may become durable (the snapshot covering `index`).
   */
  compact(index: number, barrier: Promise<void> | null): Promise<void> {
    if (index <= this.index.offsetIndex) return Promise.resolve();
    const term = this.term(index);
    const refusal = this.refusal(recordSizeBytes(INDEX_TERM_BODY_BYTES));
    if (refusal !== null) return Promise.reject(refusal);
    this.index.compactTo(index, term);
    return this.enqueue({ kind: 'compact', index, term }, recordSizeBytes(16), barrier);
  }

  /** Replaces the whole log with a snapshot at (index, term) and persists `hardState` with it. */
  reset(
    index: number,
    term: number,
    hardState: HardState,
    barrier: Promise<void> | null,
  ): Promise<void> {
    const bytes = recordSizeBytes(INDEX_TERM_BODY_BYTES) + recordSizeBytes(HARD_STATE_BODY_BYTES);
    const refusal = this.refusal(bytes);
    if (refusal !== null) return Promise.reject(refusal);
    this.index.resetTo(index, term);
    this.hardStateValue = hardState;
    this.deferredHardState = null;
    this.snapshotValue = { index, term };
    return this.enqueue({ kind: 'reset', index, term, hardState }, bytes, barrier);
  }

  /**
   * Records that the snapshot file at (index, term) is the current snapshot. `barrier` is the
   * file's write: the record becomes durable only after the file.
   */
  markSnapshot(index: number, term: number, barrier: Promise<void> | null = null): Promise<void> {
    const bytes = recordSizeBytes(INDEX_TERM_BODY_BYTES);
    const refusal = this.refusal(bytes);
    if (refusal !== null) return Promise.reject(refusal);
    this.snapshotValue = { index, term };
    return this.enqueue({ kind: 'snapshot', index, term }, bytes, barrier);
  }

  /** Throws if the log can take no more writes at all (closed or failed); ignores the queue. */
  assertOpen(): void {
    if (this.failure !== null) throw this.failure;
    if (this.closed) throw new WalError('CLOSED', 'wal: closed');
  }

  /** Throws the error a small write would be refused with now (closed, failed, overloaded). */
  assertWritable(): void {
    const refusal = this.refusal(recordSizeBytes(HARD_STATE_BODY_BYTES));
    if (refusal !== null) throw refusal;
  }

  /** Why a write of `bytes` must be refused now, or null. Refusals have no effect at all. */
  private refusal(bytes: number): WalError | null {
    if (this.failure !== null) return this.failure;
    if (this.closed) return new WalError('CLOSED', 'wal: closed');
    if (bytes > SAVE_BYTES_MAX) {
      return new WalError(
        'TOO_LARGE',
        `wal: one write of ${bytes} bytes exceeds ${SAVE_BYTES_MAX}`,
      );
    }
    if (this.queue.length > 0 && this.queuedBytes + bytes > this.queueBytesMax) {
      return new WalError(
        'OVERLOADED',
        `wal: ${this.queuedBytes} bytes already queued (max ${this.queueBytesMax}); retry after a write completes`,
      );
    }
    return null;
  }

  private checkEntries(entries: readonly Entry[]): WalError | null {
    if (entries.length === 0) return null;
    const first = entries[0]!.index;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      if (entry.index !== first + i) {
        return new WalError('INVALID_ARGUMENT', 'save: entries are not contiguous');
      }
      if (!Number.isSafeInteger(entry.term) || entry.term < 0) {
        return new WalError(
          'INVALID_ARGUMENT',
          `save: entry ${entry.index} has term ${entry.term}`,
        );
      }
    }
    if (first > this.index.last + 1) {
      return new WalError(
        'INVALID_ARGUMENT',
        `save: entry ${first} leaves a gap after last index ${this.index.last}`,
      );
    }
    if (first <= this.index.offsetIndex) {
      return new WalError(
        'INVALID_ARGUMENT',
        `save: entry ${first} overwrites compacted index ${this.index.offsetIndex}`,
      );
    }
    return null;
  }

  private enqueue(
    operation: Operation,
    bytes: number,
    barrier: Promise<void> | null,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ operation, bytes, barrier, resolve, reject });
      this.queuedBytes += bytes;
      this.flusher ??= this.runFlusher();
    });
  }

  // ---- The flusher: one batch, one durable write at a time ----

  private async runFlusher(): Promise<void> {
    let batch: Pending[] = [];
    try {
      // Starting from idle, one microtask is enough to gather saves issued in the same tick.
      await Promise.resolve();
      for (let first = true; ; first = false) {
        // Let writers woken by the previous batch queue their next saves before we cut a batch.
        if (!first) await yieldTurn();
        const head = this.queue[0];
        if (head === undefined || this.failure !== null) break;
        if (head.barrier !== null) {
          await head.barrier;
          head.barrier = null;
        }
        batch = this.takeBatch();
        await this.writeBatch(batch);
        // Saves settle at once; compactions and resets once the segments they free are deleted.
        const markers = batch.filter((p) => p.operation.kind !== 'save');
        for (const pending of batch) if (pending.operation.kind === 'save') pending.resolve();
        batch = markers;
        this.index.evict();
        if (markers.length > 0) await this.releaseSegments();
        for (const pending of markers) pending.resolve();
        batch = [];
        this.maybePrepareNext();
      }
    } catch (error) {
      this.fail(error);
      for (const pending of batch) pending.reject(this.failure!);
    } finally {
      this.flusher = null;
    }
  }

  /** Takes queued operations up to `batchBytesMax` (at least one), stopping at a barrier. */
  private takeBatch(): Pending[] {
    let bytes = 0;
    let count = 0;
    for (const pending of this.queue) {
      if (count > 0 && (pending.barrier !== null || bytes + pending.bytes > this.batchBytesMax)) {
        break;
      }
      bytes += pending.bytes;
      count++;
    }
    const batch = this.queue.splice(0, count);
    this.queuedBytes -= bytes;
    return batch;
  }

  private async writeBatch(batch: readonly Pending[]): Promise<void> {
    let recordsBytes = 0;
    for (const pending of batch) recordsBytes += pending.bytes;
    let active = this.segments.at(-1)!;
    const fullBytes = BATCH_HEADER_BYTES + RESTATEMENT_BYTES + recordsBytes;
    if (this.appendOffsetBytes + fullBytes > active.sizeBytes) {
      active = await this.roll(fullBytes);
    }
    const restate = this.segmentFresh;
    const totalBytes = fullBytes - (restate ? 0 : RESTATEMENT_BYTES);
    const buffer = Buffer.allocUnsafe(totalBytes);
    let position = encodeBatch(buffer, 0, totalBytes - BATCH_HEADER_BYTES);
    if (restate) {
      position = encodeHardState(buffer, position, this.diskHardState);
      position = encodeIndexTerm(
        buffer,
        position,
        RecordType.Compact,
        this.diskOffsetIndex,
        this.diskOffsetTerm,
      );
      const { index, term } = this.diskSnapshot;
      position = encodeIndexTerm(buffer, position, RecordType.Snapshot, index, term);
    }
    // Each entry's record position and size, in the order the batch holds the entries.
    const written = this.writtenScratch;
    written.length = 0;
    for (const pending of batch) {
      position = this.encodeOperation(buffer, position, pending.operation, written, active);
    }
    const base = this.appendOffsetBytes;
    // The segment is open with O_DSYNC (see Segment): the write returns once the batch is durable.
    await writeAt(active.fd, buffer, base);
    this.counters.fdatasyncs++;
    this.counters.bytesWritten += totalBytes;
    this.counters.operations += batch.length;
    this.appendOffsetBytes = base + totalBytes;
    this.segmentFresh = false;
    let next = 0;
    for (const { operation } of batch) {
      if (operation.kind !== 'save') continue;
      for (let i = 0; i < operation.entries.length; i++, next += 2) {
        this.index.setLocation(
          operation.entries[i]!.index,
          operation.firstGeneration + i,
          active.sequence,
          base + written[next]!,
          written[next + 1]!,
        );
      }
    }
    if (batch.some((p) => p.operation.kind === 'reset')) {
      this.durableResetSegment = active.sequence;
    }
    this.durableOffsetIndex = this.diskOffsetIndex;
    this.durableSnapshotValue = this.diskSnapshot;
  }

  private encodeOperation(
    buffer: Buffer,
    start: number,
    operation: Operation,
    written: number[],
    active: Segment,
  ): number {
    let position = start;
    if (operation.kind === 'save') {
      for (const entry of operation.entries) {
        const end = encodeEntry(buffer, position, entry);
        written.push(position, end - position);
        position = end;
      }
      const last = operation.entries.at(-1);
      if (last !== undefined) {
        const max = this.segmentIndexMax.get(active.sequence) ?? 0;
        if (last.index > max) this.segmentIndexMax.set(active.sequence, last.index);
      }
      if (operation.hardState !== null) {
        position = encodeHardState(buffer, position, operation.hardState);
        this.diskHardState = operation.hardState;
      }
      return position;
    }
    const type = recordTypeOf[operation.kind];
    position = encodeIndexTerm(buffer, position, type, operation.index, operation.term);
    if (operation.kind === 'snapshot') {
      this.diskSnapshot = { index: operation.index, term: operation.term };
    } else if (operation.kind === 'reset') {
      position = encodeHardState(buffer, position, operation.hardState);
      this.diskHardState = operation.hardState;
      this.diskOffsetIndex = operation.index;
      this.diskOffsetTerm = operation.term;
      this.diskSnapshot = { index: operation.index, term: operation.term };
    } else if (operation.index > this.diskOffsetIndex) {
      this.diskOffsetIndex = operation.index;
      this.diskOffsetTerm = operation.term;
    }
    return position;
  }

  /** Switches to the next segment, big enough for a batch of `batchBytes`. */
  private async roll(batchBytes: number): Promise<Segment> {
    const previous = this.segments.at(-1)!;
    const sequence = previous.sequence + 1;
    const sizeBytes = Math.max(this.segmentBytes, FIRST_BATCH_OFFSET_BYTES + batchBytes);
    // Waiting for the background preallocation now: let it finish at full speed.
    if (this.preparingPacing !== null) this.preparingPacing.paced = false;
    let prepared = this.preparing === null ? null : await this.preparing;
    this.preparing = null;
    this.preparingPacing = null;
    if (prepared !== null && prepared.sizeBytes < sizeBytes) {
      await discardSegment(prepared);
      prepared = null;
    }
    prepared ??= await prepareSegment(this.dir, sequence, sizeBytes);
    const installed = await installSegment(this.dir, prepared);
    this.segments.push(installed);
    this.counters.segmentsRolled++;
    this.appendOffsetBytes = FIRST_BATCH_OFFSET_BYTES;
    this.segmentFresh = true;
    this.logger.debug({ segment: installed.path }, 'wal: rolled to a new segment');
    return installed;
  }

  /** Starts preallocating the next segment once the active one is half full. */
  private maybePrepareNext(): void {
    const active = this.segments.at(-1)!;
    if (this.preparing !== null || this.closed) return;
    if (this.appendOffsetBytes < active.sizeBytes / 2) return;
    this.preparingPacing = { paced: true };
    this.preparing = prepareSegment(
      this.dir,
      active.sequence + 1,
      this.segmentBytes,
      this.preparingPacing,
    ).catch((error: unknown) => {
      // Not fatal: roll() prepares the segment itself, and reports the error if it fails again.
      this.logger.warn({ err: error }, 'wal: preallocating the next segment failed');
      return null;
    });
  }

  /**
   * Deletes whole segments, oldest first, that hold no retained entry and are not needed to replay
   * the log: every entry in them is at or below the durable compaction point, or a durable reset
   * record in a later segment made them dead.
   */
  private async releaseSegments(): Promise<void> {
    const released: Segment[] = [];
    while (this.segments.length > 1) {
      const oldest = this.segments[0]!;
      const indexMax = this.segmentIndexMax.get(oldest.sequence) ?? 0;
      const dead =
        oldest.sequence < this.durableResetSegment || indexMax <= this.durableOffsetIndex;
      if (!dead) break;
      released.push(this.segments.shift()!);
      this.segmentIndexMax.delete(oldest.sequence);
    }
    if (released.length === 0) return;
    try {
      for (const segment of released) {
        await closeFile(segment.fd);
        await fs.promises.rm(segment.path, { force: true });
      }
      await fsyncDirectory(this.dir);
      this.logger.debug({ count: released.length }, 'wal: released segments below the compaction');
    } catch (error) {
      // Not a durability problem: a segment left behind is replayed as dead records on the next
      // open (every later segment restates the state it needs) and released then.
      this.logger.warn({ err: error }, 'wal: deleting released segments failed');
    }
  }

  private fail(error: unknown): void {
    this.failure = new WalError(
      'IO',
      `wal: a write failed, durability can no longer be promised: ${String(error)}`,
      { cause: error },
    );
    this.logger.error({ err: error }, 'wal: write failed; refusing further writes');
    const queued = this.queue.splice(0);
    this.queuedBytes = 0;
    for (const pending of queued) pending.reject(this.failure);
  }

  /** Waits for queued writes, then closes every file. Later writes fail with CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.deferredHardState !== null && this.failure === null) {
      // Best effort: a deferred commit index is not required to be durable.
      await this.save(null, []).catch(() => {});
    }
    this.closed = true;
    while (this.flusher !== null) await this.flusher;
    if (this.preparingPacing !== null) this.preparingPacing.paced = false;
    const prepared = this.preparing === null ? null : await this.preparing;
    if (prepared !== null) await discardSegment(prepared);
    for (const segment of this.segments) await closeFile(segment.fd);
  }

  stats(): WalStats {
    return { ...this.counters };
  }

  /** Test hook: the files the log currently holds, oldest first. */
  segmentPaths(): string[] {
    return this.segments.map((s) => s.path);
  }

  /** Bytes of entries held in the cache (for tests and metrics). */
  cachedBytes(): number {
    return this.index.cachedBytes;
  }
}
