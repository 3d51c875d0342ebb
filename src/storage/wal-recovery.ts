/**
 * Recovery of the write-ahead log on open: read every segment in order, verify every record's
 * CRC, replay the records into a fresh `LogIndex`, and decide whether damage is a torn tail (cut
 * off) or corruption (refuse to start).
 *
 * The rule rests on how the writer works (wal.ts): it writes one batch, fdatasyncs it, and only
 * then writes the next; it renames a new segment into place only after every batch of the previous
 * segment is durable. So only the last batch of the last segment can be incomplete after a crash,
 * and a batch is all or nothing: its records are replayed only if every one of them is intact.
 *
 * - A damaged batch (bad header, bad record inside, or garbage where unwritten zeros should be) in
 *   the last segment, after which no valid batch header appears anywhere in the segment, is a torn
 *   tail: it is zeroed on disk and the log continues from its start.
 * - Any other damage is corruption: `CorruptionError` with the file and byte offset.
 *
 * Released segments leave a gap in front of the first remaining segment. Each segment starts with
 * a restatement of the hard state, the compaction point and the current snapshot (wal.ts writes them into its first
 * batch), and replay tolerates a gap in entry indexes until a compaction record covers it; a gap
 * that is still open at the end means entries are missing, which is corruption.
 */
import fs from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { EMPTY_HARD_STATE, type HardState } from '../raft/types.js';
import { CorruptionError } from './errors.js';
import { fdatasync, fsyncDirectory, makeDirectoryDurably, writeAt } from './fs-async.js';
import { LogIndex } from './log-index.js';
import {
  BATCH_BODY_BYTES,
  decodeEntry,
  decodeHardState,
  decodeIndexTerm,
  RECORD_ALIGN_BYTES,
  RecordType,
  type RecordView,
  readRecord,
  readU64,
  SEGMENT_FORMAT_VERSION,
  SEGMENT_MAGIC,
} from './record.js';
import {
  FIRST_BATCH_OFFSET_BYTES,
  parseSegmentName,
  SEGMENT_OPEN_FLAGS,
  type Segment,
  TEMPORARY_SUFFIX,
} from './segment.js';

export interface RecoveredWal {
  readonly index: LogIndex;
  readonly hardState: HardState;
  /** Every segment found, oldest first, each open for reading and writing. */
  readonly segments: Segment[];
  /** Where the next batch goes in the last segment (undefined when there is no segment). */
  readonly appendOffsetBytes: number;
  /** Whether the last segment holds no batch yet. */
  readonly lastSegmentFresh: boolean;
  /** The highest entry index written into each segment, for releasing whole segments. */
  readonly segmentIndexMax: Map<number, number>;
  /** The current snapshot as the newest Snapshot or Reset record names it (index 0: none). */
  readonly snapshot: { readonly index: number; readonly term: number };
  /** The segment holding the newest Reset record (everything before it is dead), or 0. */
  readonly resetSegment: number;
  /** The torn tail that was cut off, if any. */
  readonly tornTail: { file: string; offsetBytes: number; lengthBytes: number } | null;
}

interface ScanResult {
  /** Offset just past the last intact batch. */
  readonly endBytes: number;
  /** End of the damaged bytes to zero when the tail was torn (`endBytes` when nothing is torn). */
  readonly garbageEndBytes: number;
}

/** Reads and replays every segment in `dir`. The caller owns the returned descriptors. */
export async function recoverWal(
  dir: string,
  cacheBytesMax: number,
  logger: Logger,
): Promise<RecoveredWal> {
  const sequences = await listSegments(dir, logger);
  const replay = new Replay(cacheBytesMax);
  const segments: Segment[] = [];
  let scan: ScanResult = { endBytes: FIRST_BATCH_OFFSET_BYTES, garbageEndBytes: 0 };
  try {
    for (let k = 0; k < sequences.length; k++) {
      const sequence = sequences[k]!;
      const path = join(dir, `${sequence.toString(16).padStart(16, '0')}.wal`);
      const fd = fs.openSync(path, SEGMENT_OPEN_FLAGS);
      const buffer = fs.readFileSync(fd);
      segments.push({ sequence, path, fd, sizeBytes: buffer.length });
      checkSegmentHeader(buffer, path, sequence);
      scan = scanSegment(buffer, path, sequence, k === sequences.length - 1, replay);
    }
    replay.finish(segments);
  } catch (error) {
    for (const segment of segments) fs.closeSync(segment.fd);
    throw error;
  }
  const last = segments.at(-1);
  let tornTail: RecoveredWal['tornTail'] = null;
  if (last !== undefined && scan.garbageEndBytes > scan.endBytes) {
    const lengthBytes = scan.garbageEndBytes - scan.endBytes;
    tornTail = { file: last.path, offsetBytes: scan.endBytes, lengthBytes };
    // Zero the torn bytes so that a later, shorter batch can never be followed by stale pieces.
    await writeAt(last.fd, Buffer.alloc(lengthBytes), scan.endBytes);
    await fdatasync(last.fd);
    logger.warn({ ...tornTail }, 'wal: cut off a torn write at the tail (crash during a write)');
  }
  return {
    index: replay.index,
    hardState: replay.hardState,
    segments,
    appendOffsetBytes: scan.endBytes,
    lastSegmentFresh: scan.endBytes === FIRST_BATCH_OFFSET_BYTES,
    segmentIndexMax: replay.segmentIndexMax,
    snapshot: replay.snapshot,
    resetSegment: replay.resetSegment,
    tornTail,
  };
}

/** Segment sequence numbers in `dir`, sorted; unfinished preallocations are deleted. */
async function listSegments(dir: string, logger: Logger): Promise<number[]> {
  await makeDirectoryDurably(dir);
  const sequences: number[] = [];
  let removed = false;
  for (const name of await fs.promises.readdir(dir)) {
    if (name.endsWith(TEMPORARY_SUFFIX)) {
      await fs.promises.rm(join(dir, name), { force: true });
      removed = true;
      logger.info({ file: name }, 'wal: removed an unfinished segment preallocation');
      continue;
    }
    const sequence = parseSegmentName(name);
    if (sequence !== null) sequences.push(sequence);
  }
  if (removed) await fsyncDirectory(dir);
  return sequences.sort((a, b) => a - b);
}

function checkSegmentHeader(buffer: Buffer, path: string, sequence: number): void {
  const view = readRecord(buffer, 0, buffer.length);
  if (typeof view === 'string' || view.type !== RecordType.SegmentHeader) {
    throw new CorruptionError(path, 0, `segment header unreadable (${describe(view)})`);
  }
  const magic = buffer.readUInt32LE(view.bodyStart);
  const version = buffer.readUInt32LE(view.bodyStart + 4);
  const stored = readU64(buffer, view.bodyStart + 8);
  if (magic !== SEGMENT_MAGIC || version !== SEGMENT_FORMAT_VERSION || stored !== sequence) {
    throw new CorruptionError(
      path,
      0,
      `segment header says magic ${magic}, version ${version}, sequence ${stored}`,
    );
  }
}

function describe(view: RecordView | string): string {
  return typeof view === 'string' ? view : `type ${view.type}`;
}

/** Replays every intact batch of one segment; see the module comment for the damage rules. */
function scanSegment(
  buffer: Buffer,
  path: string,
  sequence: number,
  isLast: boolean,
  replay: Replay,
): ScanResult {
  let position = FIRST_BATCH_OFFSET_BYTES;
  while (position < buffer.length) {
    const header = readRecord(buffer, position, buffer.length);
    if (header === 'zero') {
      const nonZero = lastNonZeroEnd(buffer, position);
      if (nonZero === position) return { endBytes: position, garbageEndBytes: position };
      const fault = { faultBytes: position, reason: 'data after unwritten space' };
      return damaged(buffer, path, isLast, position, { ...fault, searchFromBytes: position });
    }
    const batch = readBatch(buffer, position, header);
    if ('faultBytes' in batch) {
      return damaged(buffer, path, isLast, position, batch);
    }
    for (const view of batch.records) replay.apply(buffer, view, path, sequence);
    position = batch.endBytes;
  }
  return { endBytes: position, garbageEndBytes: position };
}

type BatchRead =
  | { records: RecordView[]; endBytes: number }
  | { faultBytes: number; reason: string; searchFromBytes: number };

/** Reads the batch at `start` whose header read as `header`; every record in it must be intact. */
function readBatch(buffer: Buffer, start: number, header: RecordView | string): BatchRead {
  // Where to look for a later intact batch: right after this one's header when its extent is
  // unknown, after its announced end when the header is intact (its own payload is not searched,
  // so entry data that happens to look like a batch header cannot turn a torn tail into an error).
  const searchFromBytes = start + RECORD_ALIGN_BYTES;
  if (typeof header === 'string') {
    return { faultBytes: start, reason: `batch header ${header}`, searchFromBytes };
  }
  if (header.type !== RecordType.Batch || header.bodyBytes !== BATCH_BODY_BYTES) {
    const reason = `expected a batch header, found type ${header.type}`;
    return { faultBytes: start, reason, searchFromBytes };
  }
  const end = header.end + readU64(buffer, header.bodyStart);
  if (end > buffer.length || end % RECORD_ALIGN_BYTES !== 0) {
    const reason = `batch length runs to ${end}, past the segment end`;
    return { faultBytes: start, reason, searchFromBytes };
  }
  const records: RecordView[] = [];
  for (let position = header.end; position < end; ) {
    const view = readRecord(buffer, position, end);
    if (typeof view === 'string') {
      return { faultBytes: position, reason: `record ${view}`, searchFromBytes: end };
    }
    if (view.type === RecordType.Batch || view.type === RecordType.SegmentHeader) {
      const reason = `record of type ${view.type} inside a batch`;
      return { faultBytes: position, reason, searchFromBytes: end };
    }
    records.push(view);
    position = view.end;
  }
  return { records, endBytes: end };
}

/** Decides between a torn tail and corruption for damage found in the batch at `batchStart`. */
function damaged(
  buffer: Buffer,
  path: string,
  isLast: boolean,
  batchStart: number,
  fault: { faultBytes: number; reason: string; searchFromBytes: number },
): ScanResult {
  const { faultBytes, reason } = fault;
  if (!isLast) {
    throw new CorruptionError(path, faultBytes, `${reason} (in a segment that was completed)`);
  }
  const later = findBatchHeader(buffer, fault.searchFromBytes);
  if (later !== -1) {
    throw new CorruptionError(path, faultBytes, `${reason}; an intact batch follows at ${later}`);
  }
  return { endBytes: batchStart, garbageEndBytes: lastNonZeroEnd(buffer, batchStart) };
}

/** The first aligned offset at or after `from` holding a valid batch header, or -1. */
function findBatchHeader(buffer: Buffer, from: number): number {
  const start = Math.ceil(from / RECORD_ALIGN_BYTES) * RECORD_ALIGN_BYTES;
  for (let position = start; position + 12 <= buffer.length; position += RECORD_ALIGN_BYTES) {
    if (buffer[position + 8] !== RecordType.Batch) continue;
    if (buffer.readUInt32LE(position + 4) !== BATCH_BODY_BYTES) continue;
    const view = readRecord(buffer, position, buffer.length);
    if (typeof view !== 'string') return position;
  }
  return -1;
}

const zeroChunkBytes = 64 * 1024;
const zeroChunk = Buffer.alloc(zeroChunkBytes);

/** The offset just past the last non-zero byte at or after `from` (`from` if all are zero). */
function lastNonZeroEnd(buffer: Buffer, from: number): number {
  let end = buffer.length;
  // Skip whole zero chunks with a native comparison: a fresh 64 MiB segment is mostly zeros.
  while (end - zeroChunkBytes >= from) {
    const chunk = buffer.subarray(end - zeroChunkBytes, end);
    if (!chunk.equals(zeroChunk)) break;
    end -= zeroChunkBytes;
  }
  while (end > from && buffer[end - 1] === 0) end--;
  return end;
}

/** The replay state machine: applies records, in log order, to a `LogIndex` and a hard state. */
class Replay {
  readonly index: LogIndex;
  hardState: HardState = EMPTY_HARD_STATE;
  readonly segmentIndexMax = new Map<number, number>();
  resetSegment = 0;
  snapshot = { index: 0, term: 0 };

  constructor(cacheBytesMax: number) {
    this.index = new LogIndex(cacheBytesMax);
  }

  apply(buffer: Buffer, view: RecordView, path: string, sequence: number): void {
    const start = view.bodyStart - 12;
    switch (view.type) {
      case RecordType.Entry: {
        const entry = decodeEntry(buffer, view);
        const { index } = this;
        if (entry.index <= index.offsetIndex) {
          throw new CorruptionError(
            path,
            start,
            `entry ${entry.index} written after compaction to ${index.offsetIndex}`,
          );
        }
        if (entry.index >= index.first && entry.index <= index.last + 1) {
          index.truncateFrom(entry.index);
        } else {
          index.restartAt(entry.index);
        }
        const location = { segment: sequence, positionBytes: start, recordBytes: view.end - start };
        index.append(entry, location);
        index.evict();
        const max = this.segmentIndexMax.get(sequence) ?? 0;
        if (entry.index > max) this.segmentIndexMax.set(sequence, entry.index);
        return;
      }
      case RecordType.HardState:
        this.hardState = decodeHardState(buffer, view);
        return;
      case RecordType.Compact: {
        const { index, term } = decodeIndexTerm(buffer, view);
        this.index.compactTo(index, term);
        return;
      }
      case RecordType.Reset: {
        const { index, term } = decodeIndexTerm(buffer, view);
        this.index.resetTo(index, term);
        this.resetSegment = sequence;
        this.snapshot = { index, term };
        return;
      }
      case RecordType.Snapshot:
        this.snapshot = decodeIndexTerm(buffer, view);
        return;
    }
  }

  /** Checks that the retained entries start right after the compaction point. */
  finish(segments: readonly Segment[]): void {
    const { index } = this;
    if (index.count === 0) {
      index.restartAt(index.offsetIndex + 1);
      return;
    }
    if (index.first !== index.offsetIndex + 1) {
      const location = index.location(index.first);
      const segment = segments.find((s) => s.sequence === location.segment);
      throw new CorruptionError(
        segment?.path ?? 'wal',
        location.positionBytes,
        `entries ${index.offsetIndex + 1} to ${index.first - 1} are missing`,
      );
    }
  }
}
