/**
 * Segment files of the write-ahead log: naming, preallocation and installation.
 *
 * A segment is `<sequence as 16 hex digits>.wal` in the WAL directory. It is created under a
 * `.tmp` name, filled with real zero blocks (not a sparse hole), given its header record and
 * fdatasynced; only then is it renamed to its final name and the directory fsynced. So every final
 * segment has its full size and a valid header, and appending into it later changes no file
 * metadata: each batch's fdatasync flushes data blocks only. A `.tmp` file found on open is an
 * unfinished preallocation and is deleted.
 */
import fs from 'node:fs';
import { join } from 'node:path';
import { closeFile, fdatasync, fsyncDirectory, openFile, writeAt } from './fs-async.js';
import { encodeSegmentHeader, recordSizeBytes, SEGMENT_HEADER_BODY_BYTES } from './record.js';

export const SEGMENT_SUFFIX = '.wal';
export const TEMPORARY_SUFFIX = '.tmp';
/** Bytes of zeros written per call while preallocating, which bounds the memory it uses. */
export const PREALLOCATE_CHUNK_BYTES = 1024 * 1024;
/**
 * A paced (background) preallocation syncs every this many bytes and then pauses, so the disk is
 * never busy with it for long: one sync of a whole 64 MiB segment kept the disk busy long enough to
 * stall every member's WAL writes behind it (three members share one disk here).
 */
export const PREALLOCATE_SYNC_BYTES = 4 * 1024 * 1024;
export const PREALLOCATE_PAUSE_MS = 10;

/** Whether a preallocation still paces itself; the WAL clears it when it must wait for the result. */
export interface PreallocatePacing {
  paced: boolean;
}
export const SEGMENT_HEADER_BYTES = recordSizeBytes(SEGMENT_HEADER_BODY_BYTES);

const segmentNamePattern = /^([0-9a-f]{16})\.wal$/;

export function segmentName(sequence: number): string {
  return `${sequence.toString(16).padStart(16, '0')}${SEGMENT_SUFFIX}`;
}

/** The sequence number of a segment file name, or null if the name is not a segment's. */
export function parseSegmentName(name: string): number | null {
  const match = segmentNamePattern.exec(name);
  return match ? Number.parseInt(match[1]!, 16) : null;
}

/**
 * An open segment: reads go through `fd` synchronously, appends asynchronously.
 * Invariant: `fd` is opened with O_DSYNC, so a write that completed is durable (data and the
 * metadata needed to read it back) without a separate fdatasync: one threadpool job per batch
 * instead of two, which is most of the difference to the raw disk's sync latency.
 */
export interface Segment {
  readonly sequence: number;
  readonly path: string;
  readonly fd: number;
  readonly sizeBytes: number;
}

/** How every segment that may be appended to is opened: read-write, each write durable. */
export const SEGMENT_OPEN_FLAGS = fs.constants.O_RDWR | fs.constants.O_DSYNC;

let zeroChunk: Buffer | null = null;

/**
 * Creates, zero-fills and syncs a segment under its temporary name. The result is installed with
 * `installSegment` when the log rolls over to it.
 */
export async function prepareSegment(
  dir: string,
  sequence: number,
  sizeBytes: number,
  pacing?: PreallocatePacing,
): Promise<Segment> {
  const path = join(dir, segmentName(sequence) + TEMPORARY_SUFFIX);
  const fd = await openFile(path, 'w+');
  try {
    zeroChunk ??= Buffer.alloc(PREALLOCATE_CHUNK_BYTES);
    const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
    encodeSegmentHeader(header, 0, sequence);
    await writeAt(fd, header, 0);
    let unsynced = 0;
    for (let position = header.length; position < sizeBytes; position += PREALLOCATE_CHUNK_BYTES) {
      const length = Math.min(PREALLOCATE_CHUNK_BYTES, sizeBytes - position);
      await writeAt(fd, zeroChunk.subarray(0, length), position);
      unsynced += length;
      if (pacing?.paced && unsynced >= PREALLOCATE_SYNC_BYTES) {
        await fdatasync(fd);
        unsynced = 0;
        await new Promise((resolve) => setTimeout(resolve, PREALLOCATE_PAUSE_MS));
      }
    }
    await fdatasync(fd);
  } catch (error) {
    await closeFile(fd).catch(() => {});
    throw error;
  }
  // Zero-filling goes through a plain descriptor (one sync at the end, not one per chunk); appends
  // go through a descriptor opened with O_DSYNC on the same file.
  await closeFile(fd);
  return { sequence, path, fd: await openFile(path, SEGMENT_OPEN_FLAGS), sizeBytes };
}

/** Gives a prepared segment its final name, durably. */
export async function installSegment(dir: string, prepared: Segment): Promise<Segment> {
  const path = join(dir, segmentName(prepared.sequence));
  await fs.promises.rename(prepared.path, path);
  await fsyncDirectory(dir);
  return { ...prepared, path };
}

/** Deletes a prepared segment that will not be used (on close). */
export async function discardSegment(prepared: Segment): Promise<void> {
  await closeFile(prepared.fd).catch(() => {});
  await fs.promises.rm(prepared.path, { force: true });
}

/** The offset of the first batch in a segment: just past its header record. */
export const FIRST_BATCH_OFFSET_BYTES = SEGMENT_HEADER_BYTES;
