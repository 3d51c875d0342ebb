/**
 * The write-ahead log's record framing: how one record is laid out on disk, encoded and checked.
 *
 * A record is a 12-byte header followed by its body and zero padding to the next multiple of 8:
 *
 *   offset 0  u32 LE  CRC32C over bytes 4 .. 12 + bodyLength (header after the CRC field, and body)
 *   offset 4  u32 LE  bodyLength
 *   offset 8  u8      type (a `RecordType`; 0 is never valid, so zero-filled space is never a record)
 *   offset 9  3 bytes reserved, zero
 *
 * The CRC covers the length and the type, so a flipped bit anywhere in a record is detected. The
 * padding keeps every record 8-byte aligned, which bounds the work of looking for a valid batch
 * header after a damaged one (see wal-recovery.ts).
 */
import { crc32c } from '@node-rs/crc32';
import type { Entry, EntryType, HardState } from '../raft/types.js';

export const RECORD_HEADER_BYTES = 12;
export const RECORD_ALIGN_BYTES = 8;
/** No record body may exceed this; a larger length field can only be damage. */
export const RECORD_BODY_BYTES_MAX = 512 * 1024 * 1024;

export const RecordType = {
  /** First record of every segment: magic, format version, segment sequence number. */
  SegmentHeader: 1,
  /** Opens a batch (one write + one fdatasync); body holds the byte length of the records after it. */
  Batch: 2,
  /** One raft log entry. */
  Entry: 3,
  /** The raft hard state (term, vote, commit). */
  HardState: 4,
  /** Entries up to `index` are released; `term` is the term of entry `index`. */
  Compact: 5,
  /** A snapshot at (index, term) replaced the whole log; it is also the current snapshot. */
  Reset: 6,
  /** The snapshot file at (index, term) is durable and is the current snapshot. */
  Snapshot: 7,
} as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

const recordTypeMax = 7;

export const SEGMENT_MAGIC = 0x4c415753; // "SWAL" little-endian
export const SEGMENT_FORMAT_VERSION = 1;

/** The total on-disk size of a record with a body of `bodyBytes`, padding included. */
export function recordSizeBytes(bodyBytes: number): number {
  return alignUp(RECORD_HEADER_BYTES + bodyBytes);
}

export function alignUp(bytes: number): number {
  return Math.ceil(bytes / RECORD_ALIGN_BYTES) * RECORD_ALIGN_BYTES;
}

function writeU64(buffer: Buffer, value: number, offset: number): void {
  buffer.writeUInt32LE(value >>> 0, offset);
  buffer.writeUInt32LE(Math.floor(value / 0x1_0000_0000), offset + 4);
}

export function readU64(buffer: Buffer, offset: number): number {
  return buffer.readUInt32LE(offset) + buffer.readUInt32LE(offset + 4) * 0x1_0000_0000;
}

/**
 * Writes the header and CRC of a record whose body is already in place at `offset + 12`, zeroes the
 * padding, and returns the offset just past the record.
 */
function sealRecord(buffer: Buffer, offset: number, type: RecordType, bodyBytes: number): number {
  buffer.writeUInt32LE(bodyBytes, offset + 4);
  buffer[offset + 8] = type;
  buffer[offset + 9] = 0;
  buffer[offset + 10] = 0;
  buffer[offset + 11] = 0;
  const end = offset + RECORD_HEADER_BYTES + bodyBytes;
  buffer.writeUInt32LE(crc32c(buffer.subarray(offset + 4, end)), offset);
  const padded = offset + recordSizeBytes(bodyBytes);
  buffer.fill(0, end, padded);
  return padded;
}

export const ENTRY_BODY_FIXED_BYTES = 17;
export const HARD_STATE_BODY_BYTES = 24;
export const INDEX_TERM_BODY_BYTES = 16;
export const BATCH_BODY_BYTES = 8;
export const SEGMENT_HEADER_BODY_BYTES = 16;

export function entryRecordBytes(entry: Entry): number {
  return recordSizeBytes(ENTRY_BODY_FIXED_BYTES + entry.data.byteLength);
}

export function encodeEntry(buffer: Buffer, offset: number, entry: Entry): number {
  const body = offset + RECORD_HEADER_BYTES;
  writeU64(buffer, entry.index, body);
  writeU64(buffer, entry.term, body + 8);
  buffer[body + 16] = entry.type;
  buffer.set(entry.data, body + ENTRY_BODY_FIXED_BYTES);
  return sealRecord(
    buffer,
    offset,
    RecordType.Entry,
    ENTRY_BODY_FIXED_BYTES + entry.data.byteLength,
  );
}

export function encodeHardState(buffer: Buffer, offset: number, hardState: HardState): number {
  const body = offset + RECORD_HEADER_BYTES;
  writeU64(buffer, hardState.term, body);
  writeU64(buffer, hardState.vote, body + 8);
  writeU64(buffer, hardState.commit, body + 16);
  return sealRecord(buffer, offset, RecordType.HardState, HARD_STATE_BODY_BYTES);
}

export function encodeIndexTerm(
  buffer: Buffer,
  offset: number,
  type: typeof RecordType.Compact | typeof RecordType.Reset | typeof RecordType.Snapshot,
  index: number,
  term: number,
): number {
  const body = offset + RECORD_HEADER_BYTES;
  writeU64(buffer, index, body);
  writeU64(buffer, term, body + 8);
  return sealRecord(buffer, offset, type, INDEX_TERM_BODY_BYTES);
}

/** A batch header announcing `batchBytes` bytes of records right after it. */
export function encodeBatch(buffer: Buffer, offset: number, batchBytes: number): number {
  const body = offset + RECORD_HEADER_BYTES;
  writeU64(buffer, batchBytes, body);
  return sealRecord(buffer, offset, RecordType.Batch, BATCH_BODY_BYTES);
}

export function encodeSegmentHeader(buffer: Buffer, offset: number, sequence: number): number {
  const body = offset + RECORD_HEADER_BYTES;
  buffer.writeUInt32LE(SEGMENT_MAGIC, body);
  buffer.writeUInt32LE(SEGMENT_FORMAT_VERSION, body + 4);
  writeU64(buffer, sequence, body + 8);
  return sealRecord(buffer, offset, RecordType.SegmentHeader, SEGMENT_HEADER_BODY_BYTES);
}

/** A record as found by `readRecord`: its type and where its body lies in the buffer. */
export interface RecordView {
  readonly type: RecordType;
  readonly bodyStart: number;
  readonly bodyBytes: number;
  /** Offset just past the record's padding. */
  readonly end: number;
}

/** Why a record could not be read. `zero` means the header is all zero bytes (unwritten space). */
export type RecordFault =
  | 'zero'
  | 'truncated'
  | 'bad-length'
  | 'bad-type'
  | 'bad-crc'
  | 'bad-padding';

/**
 * Reads and verifies the record at `offset` within `buffer[0 .. limit)`. Returns the record, or the
 * reason it is not a valid record. Never throws on damaged input.
 */
export function readRecord(
  buffer: Buffer,
  offset: number,
  limit: number,
): RecordView | RecordFault {
  if (offset + RECORD_HEADER_BYTES > limit) {
    return isZero(buffer, offset, limit) ? 'zero' : 'truncated';
  }
  if (isZero(buffer, offset, offset + RECORD_HEADER_BYTES)) return 'zero';
  const bodyBytes = buffer.readUInt32LE(offset + 4);
  const type = buffer[offset + 8]!;
  if (bodyBytes > RECORD_BODY_BYTES_MAX) return 'bad-length';
  if (type === 0 || type > recordTypeMax) return 'bad-type';
  const end = offset + RECORD_HEADER_BYTES + bodyBytes;
  if (end > limit) return 'truncated';
  const stored = buffer.readUInt32LE(offset);
  if (crc32c(buffer.subarray(offset + 4, end)) !== stored) return 'bad-crc';
  // The padding is not under the CRC, so it is checked to be zero: no flipped bit goes unnoticed.
  const padded = offset + recordSizeBytes(bodyBytes);
  if (padded > limit) return 'truncated';
  if (!isZero(buffer, end, padded) || !isZero(buffer, offset + 9, offset + 12))
    return 'bad-padding';
  return {
    type: type as RecordType,
    bodyStart: offset + RECORD_HEADER_BYTES,
    bodyBytes,
    end: padded,
  };
}

export function isZero(buffer: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (buffer[i] !== 0) return false;
  return true;
}

export function decodeEntry(buffer: Buffer, view: RecordView): Entry {
  const body = view.bodyStart;
  const dataStart = body + ENTRY_BODY_FIXED_BYTES;
  // Copy the payload so the entry does not pin the (possibly large) read buffer.
  const data = new Uint8Array(view.bodyBytes - ENTRY_BODY_FIXED_BYTES);
  data.set(buffer.subarray(dataStart, body + view.bodyBytes));
  return {
    index: readU64(buffer, body),
    term: readU64(buffer, body + 8),
    type: buffer[body + 16] as EntryType,
    data,
  };
}

export function decodeHardState(buffer: Buffer, view: RecordView): HardState {
  const body = view.bodyStart;
  return {
    term: readU64(buffer, body),
    vote: readU64(buffer, body + 8),
    commit: readU64(buffer, body + 16),
  };
}

export function decodeIndexTerm(buffer: Buffer, view: RecordView): { index: number; term: number } {
  return { index: readU64(buffer, view.bodyStart), term: readU64(buffer, view.bodyStart + 8) };
}
