/**
 * Snapshot files: written atomically, checksummed end to end, streamed in bounded chunks.
 *
 * A snapshot is `<index as 16 hex>-<term as 16 hex>.snap` in the snapshot directory:
 *
 *   header   8 bytes "SHOALSNP", u32 LE format version, u32 LE metadata length
 *   metadata JSON of { index, term, confState }
 *   data     the state machine's bytes
 *   trailer  u64 LE length of everything before the trailer, u32 LE CRC32C of it, u32 LE "SNAP"
 *
 * A snapshot whose data ends with a big file the state machine made (its store checkpoint) may keep
 * that file as it is, beside the snapshot, instead of copying it in (`writeWithFile`): then the
 * `.snap` file has format version 2 and holds the data up to that file, and `<index>-<term>.data`
 * holds the rest; the trailer's length and checksum then cover the `.snap` bytes before the
 * trailer followed by the `.data` file's bytes. Loading, verifying and streaming treat the pair as
 * one snapshot; what `chunks()` streams to a peer is always the version 1 form.
 *
 * Every file is written under a `.tmp` name, fsynced, renamed to its final name, and the directory
 * is fsynced; so a final name always denotes a complete file, and a `.tmp` found on open is an
 * unfinished write that is deleted. The file's bytes are also the wire format for sending a
 * snapshot to a peer: `chunks()` reads a file as an async iterable of bounded chunks, and a
 * `SnapshotReceiver` writes received chunks to a temporary file, verifies the trailer's checksum at
 * the end and only then installs it. Neither side holds the whole snapshot in memory.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import type { Logger } from 'pino';
import type { ConfState, Snapshot, SnapshotMetadata } from '../raft/types.js';
import { openChunkReader } from './direct-read.js';
import { CorruptionError, WalError } from './errors.js';
import {
  closeFile,
  fdatasync,
  fsyncDirectory,
  fsyncFile,
  makeDirectoryDurably,
  openFile,
  readFullySync,
  writeAt,
} from './fs-async.js';
import { readU64 } from './record.js';

/** Newest snapshot files kept; older ones are deleted after each new snapshot is adopted. */
export const SNAPSHOTS_RETAINED_MAX = 3;
/** Largest chunk `chunks()` yields and a receiver accepts. */
export const SNAPSHOT_CHUNK_BYTES_MAX = 4 * 1024 * 1024;
export const SNAPSHOT_CHUNK_BYTES_DEFAULT = 1024 * 1024;
/**
 * How much of a snapshot file is written between syncs (see `SnapshotStore.writeChunks`): small
 * enough that a WAL sync on the same disk never waits behind much of it.
 */
export const SNAPSHOT_SYNC_EVERY_BYTES = 4 * 1024 * 1024;
/** Largest snapshot a receiver accepts from a peer, so a faulty peer cannot fill the disk. */
export const SNAPSHOT_RECEIVE_BYTES_MAX = 64 * 1024 * 1024 * 1024;
/** Largest metadata section (JSON of a membership); anything bigger is damage. */
export const SNAPSHOT_METADATA_BYTES_MAX = 1024 * 1024;

const MAGIC = Buffer.from('SHOALSNP', 'latin1');
const FORMAT_VERSION = 1;
/** A `.snap` whose data continues in a `.data` file beside it. */
const FORMAT_VERSION_SPLIT = 2;
const HEADER_BYTES = 16;
const TRAILER_BYTES = 16;
const TRAILER_MAGIC = 0x50414e53; // "SNAP" little-endian
const SUFFIX = '.snap';
const DATA_SUFFIX = '.data';
const TEMPORARY_SUFFIX = '.tmp';
const namePattern = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;
const dataNamePattern = /^([0-9a-f]{16})-([0-9a-f]{16})\.data$/;

/** A snapshot file present in the store. */
export interface SnapshotFile {
  readonly index: number;
  readonly term: number;
  readonly path: string;
}

export function snapshotFileName(index: number, term: number): string {
  return `${index.toString(16).padStart(16, '0')}-${term.toString(16).padStart(16, '0')}${SUFFIX}`;
}

/** The `.data` file that holds the rest of a version 2 snapshot's data. */
function dataPath(snapPath: string): string {
  return `${snapPath.slice(0, -SUFFIX.length)}${DATA_SUFFIX}`;
}

function encodeHeader(metadata: SnapshotMetadata, version = FORMAT_VERSION): Buffer {
  const json = Buffer.from(
    JSON.stringify({ index: metadata.index, term: metadata.term, confState: metadata.confState }),
  );
  const header = Buffer.alloc(HEADER_BYTES + json.length);
  MAGIC.copy(header, 0);
  header.writeUInt32LE(version, 8);
  header.writeUInt32LE(json.length, 12);
  json.copy(header, HEADER_BYTES);
  return header;
}

function encodeTrailer(contentBytes: number, crc: number): Buffer {
  const trailer = Buffer.alloc(TRAILER_BYTES);
  trailer.writeUInt32LE(contentBytes >>> 0, 0);
  trailer.writeUInt32LE(Math.floor(contentBytes / 0x1_0000_0000), 4);
  trailer.writeUInt32LE(crc, 8);
  trailer.writeUInt32LE(TRAILER_MAGIC, 12);
  return trailer;
}

function isSafeCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isIdList(value: unknown): value is number[] {
  return Array.isArray(value) && value.every(isSafeCount);
}

/** Parses and validates the metadata JSON (it comes from disk or from a peer). */
function parseMetadata(json: Buffer): SnapshotMetadata | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json.toString('utf8'));
  } catch {
    return 'metadata is not JSON';
  }
  const value = parsed as { index?: unknown; term?: unknown; confState?: Partial<ConfState> };
  const conf = value.confState;
  if (!isSafeCount(value.index) || !isSafeCount(value.term) || conf === undefined) {
    return 'metadata lacks index, term or confState';
  }
  if (
    !isIdList(conf.voters) ||
    !isIdList(conf.learners) ||
    !isIdList(conf.votersOutgoing) ||
    !isIdList(conf.learnersNext) ||
    typeof conf.autoLeave !== 'boolean'
  ) {
    return 'metadata confState is malformed';
  }
  const confState: ConfState = {
    voters: conf.voters,
    learners: conf.learners,
    votersOutgoing: conf.votersOutgoing,
    learnersNext: conf.learnersNext,
    autoLeave: conf.autoLeave,
  };
  return { index: value.index, term: value.term, confState };
}

/**
 * Checks a whole file image's framing and checksum; returns its metadata and where the data lies,
 * or what is wrong and at which byte.
 */
function parseImage(
  image: Buffer,
): { metadata: SnapshotMetadata; dataStart: number; dataEnd: number } | [number, string] {
  if (image.length < HEADER_BYTES + TRAILER_BYTES) return [0, 'file too short'];
  const trailerStart = image.length - TRAILER_BYTES;
  if (image.readUInt32LE(trailerStart + 12) !== TRAILER_MAGIC) return [trailerStart, 'no trailer'];
  if (readU64(image, trailerStart) !== trailerStart) return [trailerStart, 'length mismatch'];
  if (crc32c(image.subarray(0, trailerStart)) !== image.readUInt32LE(trailerStart + 8)) {
    return [trailerStart, 'checksum mismatch'];
  }
  const head = parseHead(image.subarray(0, Math.min(image.length, trailerStart)));
  if (!('metadata' in head)) return head;
  return { metadata: head.metadata, dataStart: head.dataStart, dataEnd: trailerStart };
}

/** Parses the header and metadata at the start of a file. */
function parseHead(
  head: Buffer,
  versions: readonly number[] = [FORMAT_VERSION],
): { metadata: SnapshotMetadata; dataStart: number; version: number } | [number, string] {
  if (head.length < HEADER_BYTES || !head.subarray(0, 8).equals(MAGIC)) return [0, 'bad magic'];
  const version = head.readUInt32LE(8);
  if (!versions.includes(version)) return [8, `unknown version ${version}`];
  const metadataBytes = head.readUInt32LE(12);
  if (metadataBytes > SNAPSHOT_METADATA_BYTES_MAX || HEADER_BYTES + metadataBytes > head.length) {
    return [12, `metadata length ${metadataBytes} out of range`];
  }
  const metadata = parseMetadata(head.subarray(HEADER_BYTES, HEADER_BYTES + metadataBytes));
  if (typeof metadata === 'string') return [HEADER_BYTES, metadata];
  return { metadata, dataStart: HEADER_BYTES + metadataBytes, version };
}

/** What the `.snap` file of a version 2 snapshot says; throws CorruptionError if damaged. */
function parseSplit(file: SnapshotFile, image: Buffer) {
  if (image.length < HEADER_BYTES + TRAILER_BYTES) {
    throw new CorruptionError(file.path, 0, 'file too short');
  }
  const prefixBytes = image.length - TRAILER_BYTES;
  if (image.readUInt32LE(prefixBytes + 12) !== TRAILER_MAGIC) {
    throw new CorruptionError(file.path, prefixBytes, 'no trailer');
  }
  const head = parseHead(image.subarray(0, prefixBytes), [FORMAT_VERSION_SPLIT]);
  if (Array.isArray(head)) throw new CorruptionError(file.path, head[0], head[1]);
  checkName(file, head.metadata);
  return {
    metadata: head.metadata,
    dataStart: head.dataStart,
    prefixBytes,
    contentBytes: readU64(image, prefixBytes),
    crc: image.readUInt32LE(prefixBytes + 8),
    dataPath: dataPath(file.path),
  };
}

/** A `.data` file the `.snap` names but that cannot be opened (gone): corruption. */
function missingData(path: string, error: unknown): Error {
  if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
    return new CorruptionError(path, 0, 'data file missing');
  }
  return error as Error;
}

function checkName(file: SnapshotFile, metadata: SnapshotMetadata): void {
  if (metadata.index !== file.index || metadata.term !== file.term) {
    throw new CorruptionError(file.path, HEADER_BYTES, 'metadata does not match the file name');
  }
}

/**
 * The bytes of `path` up to `limit` (default: all) as chunks of at most `chunkBytes`. Each chunk
 * is a fresh buffer, which the consumer may keep (e.g. queued on a socket); with `reuse`, every
 * chunk is a view of one buffer, valid only until the next one is asked for, for consumers that
 * only look (checksums).
 *
 * Why `reuse` matters: reading a 263 MB checkpoint that LMDB had just written (with O_DIRECT, so
 * not in the page cache) into a fresh 4 MiB buffer per chunk cost 0.66 s of system time, against
 * 0.07 s into one reused buffer (measured on the 2-core VM of bench/README.md): every fresh large
 * buffer is new memory the kernel must fault in and zero. In a member under load (256 clients,
 * a 100 MB store) the read-back went from 380-500 ms to 210-380 ms of CPU per snapshot. The
 * reused buffer is also filled with O_DIRECT where possible, which saves the page cache's copy
 * (see direct-read.ts for the figures).
 */
async function* readChunks(
  path: string,
  chunkBytes: number,
  limit = Number.POSITIVE_INFINITY,
  reuse = false,
): AsyncGenerator<Buffer> {
  if (reuse) {
    // One buffer, filled past the page cache where the file system allows (direct-read.ts).
    const reader = await openChunkReader(path, chunkBytes);
    try {
      for (let position = 0; position < limit; ) {
        const chunk = await reader.read(position, Math.min(chunkBytes, limit - position));
        if (chunk.length === 0) return;
        position += chunk.length;
        yield chunk;
      }
    } finally {
      await reader.close();
    }
    return;
  }
  const handle = await fs.promises.open(path, 'r');
  try {
    for (let position = 0; position < limit; ) {
      const chunk = Buffer.allocUnsafe(Math.min(chunkBytes, limit - position));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, position);
      if (bytesRead === 0) return;
      position += bytesRead;
      yield chunk.subarray(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}

/** fsyncs a file by path (its data and its size). */
async function syncPath(path: string): Promise<void> {
  const fd = await openFile(path, 'r');
  try {
    await fsyncFile(fd);
  } finally {
    await closeFile(fd);
  }
}

/** Deletes a snapshot's `.snap` file and its `.data` file if it has one. */
async function removeFiles(file: SnapshotFile): Promise<void> {
  await fs.promises.rm(file.path, { force: true });
  await fs.promises.rm(dataPath(file.path), { force: true });
}

export class SnapshotStore {
  private constructor(
    readonly dir: string,
    private readonly logger: Logger,
  ) {}

  /** Opens the store in `dir` (created if missing), deleting unfinished writes. */
  static async open(dir: string, logger: Logger): Promise<SnapshotStore> {
    await makeDirectoryDurably(dir);
    let removed = false;
    const names = await fs.promises.readdir(dir);
    for (const name of names) {
      // A `.data` file without its `.snap` is the first half of an unfinished `writeWithFile`.
      const orphan =
        dataNamePattern.test(name) && !names.includes(name.replace(dataNamePattern, '$1-$2.snap'));
      if (!name.endsWith(TEMPORARY_SUFFIX) && !orphan) continue;
      await fs.promises.rm(join(dir, name), { force: true });
      removed = true;
    }
    if (removed) await fsyncDirectory(dir);
    return new SnapshotStore(dir, logger);
  }

  /** The snapshot files present, oldest first (by index, then term). */
  list(): SnapshotFile[] {
    const files: SnapshotFile[] = [];
    for (const name of fs.readdirSync(this.dir)) {
      const match = namePattern.exec(name);
      if (match === null) continue;
      const index = Number.parseInt(match[1]!, 16);
      const term = Number.parseInt(match[2]!, 16);
      files.push({ index, term, path: join(this.dir, name) });
    }
    return files.sort((a, b) => a.index - b.index || a.term - b.term);
  }

  find(index: number, term: number): SnapshotFile | undefined {
    const path = join(this.dir, snapshotFileName(index, term));
    return fs.existsSync(path) ? { index, term, path } : undefined;
  }

  /** Writes `snapshot` atomically and durably (see `writeChunks`). */
  write(snapshot: Snapshot): Promise<SnapshotFile> {
    const data = Buffer.from(snapshot.data.buffer, snapshot.data.byteOffset, snapshot.data.length);
    return this.writeChunks(snapshot.metadata, [data]);
  }

  /**
   * Writes a snapshot whose data arrives as chunks (never whole in memory), atomically and
   * durably. The file is synced every SNAPSHOT_SYNC_EVERY_BYTES as it grows rather than once at
   * the end: a sync of the whole file (tens of MB) made the WAL's own syncs on the same disk wait
   * behind it, and every append with them.
   */
  async writeChunks(
    metadata: SnapshotMetadata,
    chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  ): Promise<SnapshotFile> {
    const temporary = this.temporaryPath();
    const fd = await openFile(temporary, 'w');
    try {
      const header = encodeHeader(metadata);
      await writeAt(fd, header, 0);
      let crc = crc32c(header);
      let position = header.length;
      let unsynced = 0;
      for await (const chunk of chunks) {
        const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
        for (let at = 0; at < bytes.length; ) {
          const piece = bytes.subarray(at, at + SNAPSHOT_SYNC_EVERY_BYTES - unsynced);
          await writeAt(fd, piece, position);
          crc = crc32c(piece, crc);
          position += piece.length;
          at += piece.length;
          unsynced += piece.length;
          if (unsynced >= SNAPSHOT_SYNC_EVERY_BYTES) {
            await fdatasync(fd);
            unsynced = 0;
          }
        }
      }
      await writeAt(fd, encodeTrailer(position, crc), position);
      await fsyncFile(fd);
    } catch (error) {
      await closeFile(fd).catch(() => {});
      await fs.promises.rm(temporary, { force: true });
      throw error;
    }
    await closeFile(fd);
    return this.install(temporary, metadata.index, metadata.term);
  }

  /**
   * Writes a snapshot whose data is `head` followed by the bytes of `dataFile`, keeping that file
   * as the snapshot's `.data` file (moved, not copied, when it is on the same file system): the
   * file is synced and moved, read once for the checksum, and only then is the `.snap` file that
   * names it installed. The caller gives up `dataFile`.
   */
  async writeWithFile(
    metadata: SnapshotMetadata,
    head: Uint8Array,
    dataFile: string,
    expectedDataBytes?: number,
  ): Promise<SnapshotFile> {
    const { index, term } = metadata;
    const snapPath = join(this.dir, snapshotFileName(index, term));
    const target = dataPath(snapPath);
    const temporary = this.temporaryPath();
    // What this call made, so a failure deletes exactly that and nothing another snapshot owns.
    let moved = false;
    let renamed = false;
    try {
      await syncPath(dataFile);
      try {
        await fs.promises.rename(dataFile, target);
        moved = true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
        moved = true;
        await fs.promises.copyFile(dataFile, target);
        await syncPath(target);
        await fs.promises.rm(dataFile, { force: true });
      }
      await fsyncDirectory(this.dir);
      const prefix = Buffer.concat([encodeHeader(metadata, FORMAT_VERSION_SPLIT), head]);
      let crc = crc32c(prefix);
      let dataBytes = 0;
      for await (const chunk of readChunks(target, SNAPSHOT_CHUNK_BYTES_MAX, undefined, true)) {
        crc = crc32c(chunk, crc);
        dataBytes += chunk.length;
      }
      if (expectedDataBytes !== undefined && dataBytes !== expectedDataBytes) {
        throw new WalError(
          'INVALID_ARGUMENT',
          `snapshot data file holds ${dataBytes} bytes, its head says ${expectedDataBytes}`,
        );
      }
      const fd = await openFile(temporary, 'w');
      try {
        await writeAt(
          fd,
          Buffer.concat([prefix, encodeTrailer(prefix.length + dataBytes, crc)]),
          0,
        );
        await fsyncFile(fd);
      } finally {
        await closeFile(fd);
      }
      await fs.promises.rename(temporary, snapPath);
      renamed = true;
      await fsyncDirectory(this.dir);
      return { index, term, path: snapPath };
    } catch (error) {
      await fs.promises.rm(temporary, { force: true });
      if (renamed) await fs.promises.rm(snapPath, { force: true });
      if (moved) await fs.promises.rm(target, { force: true });
      throw error;
    }
  }

  /** Renames a complete, synced temporary file to its final name, durably. */
  private async install(temporary: string, index: number, term: number): Promise<SnapshotFile> {
    const path = join(this.dir, snapshotFileName(index, term));
    await fs.promises.rename(temporary, path);
    await fsyncDirectory(this.dir);
    return { index, term, path };
  }

  private temporaryPath(): string {
    return join(this.dir, `${randomBytes(8).toString('hex')}${SUFFIX}${TEMPORARY_SUFFIX}`);
  }

  /**
   * Deletes the oldest files while more than `SNAPSHOTS_RETAINED_MAX` remain, but only files older
   * than `current` (the snapshot the log durably names): it and anything newer (being adopted)
   * stay.
   */
  async prune(current: { index: number; term: number }): Promise<void> {
    const files = this.list();
    const older = files.filter((f) => f.index < current.index);
    const excess = older.slice(0, Math.max(0, files.length - SNAPSHOTS_RETAINED_MAX));
    for (const file of excess) await removeFiles(file);
    if (excess.length > 0) await fsyncDirectory(this.dir);
  }

  async remove(file: SnapshotFile): Promise<void> {
    await removeFiles(file);
    await fsyncDirectory(this.dir);
    this.logger.warn({ file: file.path }, 'snapshot: removed a snapshot the log never adopted');
  }

  /** Reads and verifies a whole snapshot synchronously (the raft core's `snapshot()` is sync). */
  load(file: SnapshotFile): Snapshot {
    const image = fs.readFileSync(file.path);
    if (image.length >= HEADER_BYTES && image.readUInt32LE(8) === FORMAT_VERSION_SPLIT) {
      return this.loadSplit(file, image);
    }
    const parsed = parseImage(image);
    if (Array.isArray(parsed)) throw new CorruptionError(file.path, parsed[0], parsed[1]);
    const { metadata } = parsed;
    checkName(file, metadata);
    return { metadata, data: new Uint8Array(image.subarray(parsed.dataStart, parsed.dataEnd)) };
  }

  /** `load` for a `.snap` of version 2: its data continues in the `.data` file. */
  private loadSplit(file: SnapshotFile, image: Buffer): Snapshot {
    const split = parseSplit(file, image);
    let fd: number;
    try {
      fd = fs.openSync(split.dataPath, 'r');
    } catch (error) {
      throw missingData(split.dataPath, error);
    }
    try {
      const dataBytes = fs.fstatSync(fd).size;
      if (split.prefixBytes + dataBytes !== split.contentBytes) {
        throw new CorruptionError(split.dataPath, dataBytes, 'data file length mismatch');
      }
      const inSnap = split.prefixBytes - split.dataStart;
      const data = Buffer.allocUnsafe(inSnap + dataBytes);
      image.copy(data, 0, split.dataStart, split.prefixBytes);
      const read = readFullySync(fd, data.subarray(inSnap), dataBytes, 0);
      if (read !== dataBytes) throw new CorruptionError(split.dataPath, read, 'data file shrank');
      const crc = crc32c(data.subarray(inSnap), crc32c(image.subarray(0, split.prefixBytes)));
      if (crc !== split.crc) {
        throw new CorruptionError(split.dataPath, 0, 'checksum mismatch over .snap and .data');
      }
      return { metadata: split.metadata, data: new Uint8Array(data) };
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Verifies a file's checksum by streaming it (constant memory); returns its metadata. */
  async verify(file: SnapshotFile): Promise<SnapshotMetadata> {
    // Streaming the version 1 form reads and checks every byte, whichever form is on disk.
    let bytes = 0;
    let metadata: SnapshotMetadata | undefined;
    const collected: Buffer[] = [];
    for await (const chunk of this.chunks(file, SNAPSHOT_CHUNK_BYTES_MAX, true)) {
      const headBytes = HEADER_BYTES + SNAPSHOT_METADATA_BYTES_MAX;
      if (metadata === undefined && bytes < headBytes) {
        // A copy (the chunk's buffer is reused) of only the part the head can lie in.
        collected.push(Buffer.from(chunk.subarray(0, headBytes - bytes)));
        const parsed = parseHead(Buffer.concat(collected));
        if (!Array.isArray(parsed)) metadata = parsed.metadata;
      }
      bytes += chunk.length;
    }
    if (metadata === undefined) throw new CorruptionError(file.path, 0, 'no readable header');
    return metadata;
  }

  /**
   * The snapshot in its version 1 form (the wire format) as chunks of at most `chunkBytes`, read
   * one at a time. The checksum is verified on the way: a damaged file throws CorruptionError
   * before the last chunk (the trailer), so a receiver never installs it. With `reuse`, the
   * chunks read from disk are views of one buffer, each valid only until the next is asked for
   * (see `readChunks`).
   */
  async *chunks(
    file: SnapshotFile,
    chunkBytes = SNAPSHOT_CHUNK_BYTES_DEFAULT,
    reuse = false,
  ): AsyncGenerator<Uint8Array> {
    if (chunkBytes <= 0 || chunkBytes > SNAPSHOT_CHUNK_BYTES_MAX) {
      throw new WalError('INVALID_ARGUMENT', `snapshot chunk size ${chunkBytes} out of range`);
    }
    const first = Buffer.alloc(HEADER_BYTES);
    const handle = await fs.promises.open(file.path, 'r');
    let size: number;
    try {
      size = (await handle.stat()).size;
      await handle.read(first, 0, HEADER_BYTES, 0);
    } finally {
      await handle.close();
    }
    if (size >= HEADER_BYTES && first.readUInt32LE(8) === FORMAT_VERSION_SPLIT) {
      yield* this.splitChunks(file, chunkBytes, reuse);
      return;
    }
    if (size < HEADER_BYTES + TRAILER_BYTES) throw new CorruptionError(file.path, 0, 'too short');
    if (!first.subarray(0, 8).equals(MAGIC)) throw new CorruptionError(file.path, 0, 'bad magic');
    if (first.readUInt32LE(8) !== FORMAT_VERSION) {
      throw new CorruptionError(file.path, 8, `unknown version ${first.readUInt32LE(8)}`);
    }
    const contentBytes = size - TRAILER_BYTES;
    let crc = 0;
    let position = 0;
    for await (const chunk of readChunks(file.path, chunkBytes, contentBytes, reuse)) {
      crc = crc32c(chunk, crc);
      position += chunk.length;
      yield chunk;
    }
    const trailer = Buffer.alloc(TRAILER_BYTES);
    const trailerHandle = await fs.promises.open(file.path, 'r');
    try {
      await trailerHandle.read(trailer, 0, TRAILER_BYTES, contentBytes);
    } finally {
      await trailerHandle.close();
    }
    if (position !== contentBytes || !encodeTrailer(contentBytes, crc).equals(trailer)) {
      throw new CorruptionError(file.path, contentBytes, 'checksum or trailer mismatch');
    }
    yield trailer;
  }

  /** `chunks` for a version 2 snapshot: converted to version 1 on the way. */
  private async *splitChunks(
    file: SnapshotFile,
    chunkBytes: number,
    reuse: boolean,
  ): AsyncGenerator<Uint8Array> {
    const image = await fs.promises.readFile(file.path);
    const split = parseSplit(file, image);
    const header = encodeHeader(split.metadata);
    const inSnap = image.subarray(split.dataStart, split.prefixBytes);
    let crc = 0; // of the version 1 form being streamed
    let stored = crc32c(image.subarray(0, split.prefixBytes)); // of the files, as written
    let bytes = 0;
    const emit = (chunk: Buffer) => {
      crc = crc32c(chunk, crc);
      bytes += chunk.length;
      return chunk;
    };
    const lead = Buffer.concat([header, inSnap]);
    for (let at = 0; at < lead.length; at += chunkBytes) {
      yield emit(lead.subarray(at, at + chunkBytes));
    }
    let dataBytes = 0;
    try {
      await fs.promises.access(split.dataPath);
    } catch (error) {
      throw missingData(split.dataPath, error);
    }
    for await (const chunk of readChunks(split.dataPath, chunkBytes, undefined, reuse)) {
      stored = crc32c(chunk, stored);
      dataBytes += chunk.length;
      yield emit(chunk);
    }
    if (split.prefixBytes + dataBytes !== split.contentBytes || stored !== split.crc) {
      throw new CorruptionError(split.dataPath, dataBytes, 'checksum or length mismatch');
    }
    yield encodeTrailer(bytes, crc);
  }

  /** Starts receiving a snapshot streamed from a peer. */
  receive(): SnapshotReceiver {
    return new SnapshotReceiver(this.temporaryPath(), (temporary, metadata) =>
      this.install(temporary, metadata.index, metadata.term),
    );
  }
}

/**
 * Writes a snapshot received chunk by chunk to a temporary file. `finish()` verifies the framing
 * and the checksum, syncs and installs the file, and returns its metadata; on any failure nothing
 * is installed and the temporary file is deleted. Call `write` sequentially (await each).
 */
export class SnapshotReceiver {
  private fd: number | null = null;
  private receivedBytes = 0;
  /** CRC of every byte received except the last TRAILER_BYTES, which may be the trailer. */
  private crc = 0;
  private held = Buffer.alloc(0);
  private head = Buffer.alloc(0);
  private busy = false;
  private done = false;

  constructor(
    private readonly temporaryPath: string,
    private readonly installFile: (
      path: string,
      metadata: SnapshotMetadata,
    ) => Promise<SnapshotFile>,
  ) {}

  async write(chunk: Uint8Array): Promise<void> {
    if (this.busy || this.done) {
      throw new WalError('INVALID_ARGUMENT', 'snapshot receiver: write while busy or finished');
    }
    if (chunk.length > SNAPSHOT_CHUNK_BYTES_MAX) {
      await this.abort();
      throw new WalError('TOO_LARGE', `snapshot chunk of ${chunk.length} bytes exceeds the max`);
    }
    if (this.receivedBytes + chunk.length > SNAPSHOT_RECEIVE_BYTES_MAX) {
      await this.abort();
      throw new WalError('TOO_LARGE', `snapshot exceeds ${SNAPSHOT_RECEIVE_BYTES_MAX} bytes`);
    }
    this.busy = true;
    try {
      this.fd ??= await openFile(this.temporaryPath, 'w');
      const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
      await writeAt(this.fd, bytes, this.receivedBytes);
      this.receivedBytes += bytes.length;
      const pending = Buffer.concat([this.held, bytes]);
      const settled = Math.max(0, pending.length - TRAILER_BYTES);
      this.crc = crc32c(pending.subarray(0, settled), this.crc);
      this.held = pending.subarray(settled);
      if (this.head.length < HEADER_BYTES + SNAPSHOT_METADATA_BYTES_MAX) {
        const room = HEADER_BYTES + SNAPSHOT_METADATA_BYTES_MAX - this.head.length;
        this.head = Buffer.concat([this.head, bytes.subarray(0, room)]);
      }
    } finally {
      this.busy = false;
    }
  }

  /** Verifies, syncs and installs the received file; throws BAD_SNAPSHOT if it does not check. */
  async finish(): Promise<SnapshotMetadata> {
    if (this.busy || this.done) throw new WalError('INVALID_ARGUMENT', 'snapshot receiver: finish');
    const contentBytes = this.receivedBytes - TRAILER_BYTES;
    const expected = encodeTrailer(Math.max(0, contentBytes), this.crc);
    const head = parseHead(this.head.subarray(0, Math.max(0, contentBytes)));
    if (this.fd === null || contentBytes < HEADER_BYTES || !expected.equals(this.held)) {
      await this.abort();
      throw new WalError('BAD_SNAPSHOT', 'received snapshot failed its checksum or is truncated');
    }
    if (Array.isArray(head)) {
      await this.abort();
      throw new WalError('BAD_SNAPSHOT', `received snapshot at byte ${head[0]}: ${head[1]}`);
    }
    const fd = this.fd;
    this.fd = null;
    this.done = true;
    try {
      await fsyncFile(fd);
    } finally {
      await closeFile(fd);
    }
    await this.installFile(this.temporaryPath, head.metadata);
    return head.metadata;
  }

  /** Abandons the transfer and deletes the temporary file. Safe to call more than once. */
  async abort(): Promise<void> {
    this.done = true;
    if (this.fd !== null) {
      const fd = this.fd;
      this.fd = null;
      await closeFile(fd).catch(() => {});
    }
    await fs.promises.rm(this.temporaryPath, { force: true });
  }
}
