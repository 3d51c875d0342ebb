/**
 * Reading a big file once, past the page cache (O_DIRECT), into one reused buffer.
 *
 * A snapshot's data file is the store's LMDB copy, which LMDB writes with O_DIRECT, so it is not
 * in the page cache; the member then reads it once for its checksum. A buffered read of such a
 * file brings every page into the cache and copies it again into the process: on the bench VM a
 * cold 230 MB file cost 350-450 ms of system time that way (and 1.5 s of CPU over three busy
 * members in one snapshot round, `perf`: `copy_page_to_iter` under `pread`), against 26 ms read
 * with O_DIRECT, where the disk writes straight into the process's buffer.
 *
 * O_DIRECT wants the buffer's address, the file position and the length aligned to the device's
 * logical block size. JavaScript cannot see a buffer's address, so `openDirect` finds an aligned
 * view by trying one read at each 8-byte step of the first 4 KiB of a slightly larger buffer
 * (the kernel answers EINVAL for a misaligned one; at most 512 cheap tries, once per file). Where
 * O_DIRECT is unknown, refused by the file system, or no view works, the file is read buffered:
 * the same bytes either way.
 */
import fs from 'node:fs';

/** File positions and lengths stay multiples of this, which covers 512 and 4096 byte blocks. */
const ALIGN_BYTES = 4096;
const PROBE_STEP_BYTES = 8;

export interface ChunkReader {
  /** Whether the reads bypass the page cache. */
  readonly direct: boolean;
  /**
   * Reads up to `length` bytes at `position` (a multiple of `chunkBytes`, as `readAll` does) into
   * the shared buffer; the view is valid until the next read.
   */
  read(position: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

/**
 * Opens `path` for reads of at most `chunkBytes` (a multiple of 4 KiB for O_DIRECT to be tried)
 * into one reused buffer.
 */
export async function openChunkReader(path: string, chunkBytes: number): Promise<ChunkReader> {
  const direct = await openDirect(path, chunkBytes);
  if (direct !== undefined) return direct;
  const handle = await fs.promises.open(path, 'r');
  const shared = Buffer.allocUnsafeSlow(chunkBytes);
  return {
    direct: false,
    async read(position, length) {
      const { bytesRead } = await handle.read(shared, 0, Math.min(length, chunkBytes), position);
      return shared.subarray(0, bytesRead);
    },
    close: () => handle.close(),
  };
}

async function openDirect(path: string, chunkBytes: number): Promise<ChunkReader | undefined> {
  const flag = fs.constants.O_DIRECT;
  if (flag === undefined || chunkBytes % ALIGN_BYTES !== 0) return undefined;
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(path, fs.constants.O_RDONLY | flag);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EINVAL') return undefined;
    throw error;
  }
  try {
    if ((await handle.stat()).size === 0) {
      await handle.close();
      return undefined;
    }
    const raw = Buffer.allocUnsafeSlow(chunkBytes + ALIGN_BYTES);
    for (let offset = 0; offset < ALIGN_BYTES; offset += PROBE_STEP_BYTES) {
      try {
        await handle.read(raw, offset, ALIGN_BYTES, 0);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EINVAL') continue;
        throw error;
      }
      const view = raw.subarray(offset, offset + chunkBytes);
      let buffered: fs.promises.FileHandle | undefined;
      return {
        direct: true,
        async read(position, length) {
          const wanted = Math.min(length, chunkBytes);
          if (position % ALIGN_BYTES !== 0) {
            // Only after a short read in mid-file (which regular files do not give): go on
            // buffered rather than fail.
            buffered ??= await fs.promises.open(path, 'r');
            const { bytesRead } = await buffered.read(view, 0, wanted, position);
            return view.subarray(0, bytesRead);
          }
          // The length asked of the kernel stays aligned; a short read ends the file.
          const aligned = Math.min(chunkBytes, Math.ceil(wanted / ALIGN_BYTES) * ALIGN_BYTES);
          const { bytesRead } = await handle.read(view, 0, aligned, position);
          return view.subarray(0, Math.min(bytesRead, wanted));
        },
        async close() {
          await buffered?.close();
          await handle.close();
        },
      };
    }
    await handle.close();
    return undefined;
  } catch (error) {
    await handle.close();
    throw error;
  }
}
