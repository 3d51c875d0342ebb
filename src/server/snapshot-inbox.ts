/**
 * The receiving side of resumable snapshot transfers: a partially received raft snapshot kept on
 * disk (in `<data-dir>/snap-incoming/`) so that a transfer cut midway resumes where it stopped
 * instead of starting again from byte 0. See transport.ts for the protocol on the wire.
 *
 * A partial file is named by everything that identifies the snapshot being sent:
 *
 *   <sender id>-<snapshot index>-<snapshot term>-<total bytes>-<CRC32C of the whole>.partial
 *
 * (each in fixed-width hex), so a resumed transfer can only append to bytes of the very same
 * snapshot from the very same sender; anything else starts again from 0 and discards the old file.
 * The bytes are not fsynced as they arrive: a crash can leave a torn or garbage tail, and that is
 * safe because the assembled whole is checked against the sender's CRC32C before it is handed to
 * raft; on a mismatch the partial is deleted and the next attempt starts from 0.
 *
 * Limits: at most `SNAPSHOT_PARTIALS_MAX` (one) partial file at a time (a member receives from one
 * leader; a new transfer supersedes the old), each at most the announced size, which the transport
 * bounds. Only one transfer writes at a time: a new offset question or a new transfer stops the one
 * in progress (after its current chunk write) and waits for it, so a half-open old stream can
 * never write into a file a newer transfer owns. On open, partials that are stale (their index is
 * not beyond the installed snapshot's, older than `SNAPSHOT_PARTIAL_AGE_MS_MAX`, unparseable, or
 * beyond the one kept) are deleted.
 *
 * What stays in memory: the completed snapshot, read back from the file once at the end, because
 * the raft core's `Snapshot` carries its data as a `Uint8Array` (`complete()`).
 */
import fs from 'node:fs';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import type { Logger } from 'pino';
import { RpcError } from '../rpc/index.js';

/** Partial snapshot files kept at once; a transfer of a different snapshot discards the old one. */
export const SNAPSHOT_PARTIALS_MAX = 1;
/** A partial older than this at start-up is deleted (its leader has long moved on). */
export const SNAPSHOT_PARTIAL_AGE_MS_MAX = 60 * 60 * 1000;
/** Largest chunk a transfer may write in one piece. */
export const SNAPSHOT_PARTIAL_CHUNK_BYTES_MAX = 4 * 1024 * 1024;
/** Bytes read per call when the completed file is read back. */
const READ_BACK_BYTES = 16 * 1024 * 1024;
const PARTIAL_SUFFIX = '.partial';
const partialPattern =
  /^([0-9a-f]{16})-([0-9a-f]{16})-([0-9a-f]{16})-([0-9a-f]{16})-([0-9a-f]{8})\.partial$/;

/** What identifies one snapshot transfer; a partial file is reused only for an identical one. */
export interface SnapshotIdentity {
  /** The sending member's id. */
  readonly from: number;
  readonly index: number;
  readonly term: number;
  readonly totalBytes: number;
  /** CRC32C of the snapshot's whole data. */
  readonly crc: number;
}

export function partialFileName(id: SnapshotIdentity): string {
  const hex = (value: number, width: number) => value.toString(16).padStart(width, '0');
  return `${hex(id.from, 16)}-${hex(id.index, 16)}-${hex(id.term, 16)}-${hex(id.totalBytes, 16)}-${hex(id.crc >>> 0, 8)}${PARTIAL_SUFFIX}`;
}

function parsePartialName(name: string): SnapshotIdentity | null {
  const match = partialPattern.exec(name);
  if (match === null) return null;
  const [from, index, term, totalBytes] = match.slice(1, 5).map((h) => Number.parseInt(h, 16));
  const crc = Number.parseInt(match[5]!, 16);
  if (![from, index, term, totalBytes].every((n) => Number.isSafeInteger(n))) return null;
  return { from: from!, index: index!, term: term!, totalBytes: totalBytes!, crc };
}

/** One transfer's hold on the partial file: write chunks in order, then `complete()`. */
export interface PartialWriter {
  /** Bytes the file holds (the resume offset plus what this transfer wrote). */
  readonly receivedBytes: number;
  /** Resolves when a newer transfer or offset question wants the file: stop reading the stream. */
  readonly superseded: Promise<void>;
  write(chunk: Uint8Array): Promise<void>;
  /**
   * Checks that every byte arrived and that the whole matches the sender's CRC32C, deletes the
   * partial (installed or corrupt) and returns the data. Throws DATA_LOSS on a mismatch.
   */
  complete(): Promise<Uint8Array>;
  /** Closes the file, keeping it for a resume. Always call it (after `complete` too). */
  release(): Promise<void>;
}

interface Active {
  supersede(): void;
  released: Promise<void>;
}

export class SnapshotInbox {
  private active: Active | null = null;
  /** Serializes offset questions and transfer starts (each first stops the active transfer). */
  private turn: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly dir: string,
    private readonly log: Logger,
  ) {}

  /**
   * Opens the inbox in `dir` (created if missing) and deletes stale partials: unparseable, for a
   * snapshot not newer than `installedIndex`, older than SNAPSHOT_PARTIAL_AGE_MS_MAX, or beyond
   * SNAPSHOT_PARTIALS_MAX (the most recently written are kept).
   */
  static async open(
    dir: string,
    options: { installedIndex: number; logger: Logger; nowMs?: number },
  ): Promise<SnapshotInbox> {
    await fs.promises.mkdir(dir, { recursive: true });
    const nowMs = options.nowMs ?? Date.now();
    const kept: { path: string; mtimeMs: number }[] = [];
    for (const name of await fs.promises.readdir(dir)) {
      const path = join(dir, name);
      const id = parsePartialName(name);
      const stat = await fs.promises.stat(path);
      const stale =
        id === null ||
        !stat.isFile() ||
        id.index <= options.installedIndex ||
        nowMs - stat.mtimeMs > SNAPSHOT_PARTIAL_AGE_MS_MAX;
      if (stale) {
        options.logger.info({ file: path }, 'snapshot inbox: deleting a stale partial snapshot');
        await fs.promises.rm(path, { force: true, recursive: true });
      } else {
        kept.push({ path, mtimeMs: stat.mtimeMs });
      }
    }
    kept.sort((a, b) => b.mtimeMs - a.mtimeMs);
    for (const extra of kept.slice(SNAPSHOT_PARTIALS_MAX)) {
      await fs.promises.rm(extra.path, { force: true });
    }
    return new SnapshotInbox(dir, options.logger);
  }

  /** The partial snapshot files present (for tests and operators). */
  async partialFiles(): Promise<string[]> {
    const names = await fs.promises.readdir(this.dir);
    return names.filter((name) => name.endsWith(PARTIAL_SUFFIX));
  }

  /**
   * Bytes already held of exactly this snapshot, from which its sender may resume (0 if none).
   * Stops a transfer in progress first, so the answer is not overtaken by its next write.
   */
  offset(id: SnapshotIdentity): Promise<number> {
    return this.exclusive(async () => {
      await this.stopActive();
      const size = await fileSize(join(this.dir, partialFileName(id)));
      return size !== null && size <= id.totalBytes ? size : 0;
    });
  }

  /**
   * Starts writing a transfer of `id` from byte `offset`: 0 starts afresh (discarding any
   * partial), anything else must equal the bytes held of exactly this snapshot, or it throws
   * FAILED_PRECONDITION (the sender's next attempt asks again).
   */
  begin(id: SnapshotIdentity, offset: number): Promise<PartialWriter> {
    return this.exclusive(async () => {
      await this.stopActive();
      const path = join(this.dir, partialFileName(id));
      if (offset !== 0 && (await fileSize(path)) !== offset) {
        throw new RpcError(
          'FAILED_PRECONDITION',
          `snapshot resume at byte ${offset}: this member does not hold those bytes`,
        );
      }
      for (const name of await this.partialFiles()) {
        if (offset === 0 || name !== partialFileName(id)) {
          await fs.promises.rm(join(this.dir, name), { force: true });
        }
      }
      const handle = await fs.promises.open(path, offset === 0 ? 'w+' : 'r+');
      if (offset > 0) this.log.info({ ...id, offset }, 'resuming a snapshot transfer');
      return this.startWriter(id, path, handle, offset);
    });
  }

  private startWriter(
    id: SnapshotIdentity,
    path: string,
    handle: fs.promises.FileHandle,
    offset: number,
  ): PartialWriter {
    let position = offset;
    let open = true;
    let supersede!: () => void;
    let markReleased!: () => void;
    const superseded = new Promise<void>((resolve) => {
      supersede = resolve;
    });
    const active: Active = {
      supersede: () => supersede(),
      released: new Promise<void>((resolve) => {
        markReleased = resolve;
      }),
    };
    this.active = active;
    const writer: PartialWriter = {
      get receivedBytes() {
        return position;
      },
      superseded,
      write: async (chunk) => {
        if (!open) throw new RpcError('ABORTED', 'snapshot transfer already released');
        if (
          chunk.length > SNAPSHOT_PARTIAL_CHUNK_BYTES_MAX ||
          position + chunk.length > id.totalBytes
        ) {
          throw new RpcError('INVALID_ARGUMENT', 'snapshot chunk too large or past the total');
        }
        await handle.write(chunk, 0, chunk.length, position);
        position += chunk.length;
      },
      complete: async () => {
        if (position !== id.totalBytes) {
          throw new RpcError(
            'INVALID_ARGUMENT',
            `snapshot ended at byte ${position} of ${id.totalBytes}`,
          );
        }
        const data = await readWhole(handle, id.totalBytes);
        await fs.promises.rm(path, { force: true });
        if (crc32c(data) !== id.crc >>> 0) {
          this.log.warn({ ...id }, 'snapshot inbox: checksum mismatch, partial discarded');
          throw new RpcError(
            'DATA_LOSS',
            'received snapshot failed its checksum; partial discarded',
          );
        }
        return data;
      },
      release: async () => {
        if (!open) return;
        open = false;
        await handle.close().catch(() => {});
        if (this.active === active) this.active = null;
        markReleased();
      },
    };
    return writer;
  }

  private async stopActive(): Promise<void> {
    const active = this.active;
    if (active === null) return;
    active.supersede();
    await active.released;
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.turn.then(work);
    this.turn = run.catch(() => {});
    return run;
  }
}

async function fileSize(path: string): Promise<number | null> {
  try {
    return (await fs.promises.stat(path)).size;
  } catch {
    return null;
  }
}

/** Reads the first `totalBytes` of the file in bounded reads (readFile stops at 2 GiB - 1). */
async function readWhole(handle: fs.promises.FileHandle, totalBytes: number): Promise<Buffer> {
  const data = Buffer.allocUnsafe(totalBytes);
  let position = 0;
  while (position < totalBytes) {
    const length = Math.min(READ_BACK_BYTES, totalBytes - position);
    const { bytesRead } = await handle.read(data, position, length, position);
    if (bytesRead === 0) throw new RpcError('DATA_LOSS', 'partial snapshot shorter than written');
    position += bytesRead;
  }
  return data;
}
