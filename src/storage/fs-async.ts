/**
 * Promise wrappers over node:fs's callback API for the calls on the WAL's write path.
 *
 * The callback API runs each call on libuv's threadpool, so a write or an fdatasync in flight never
 * blocks the event loop, and it allocates less per call than `fs.promises` FileHandles. Positional
 * writes (pwrite) let reads and writes share one descriptor without a shared file position.
 */
import fs from 'node:fs';
import { dirname } from 'node:path';

export function writeAt(fd: number, buffer: Buffer, positionBytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const writeRest = (done: number): void => {
      fs.write(fd, buffer, done, buffer.length - done, positionBytes + done, (error, written) => {
        if (error) return reject(error);
        // pwrite may write less than asked (rare on regular files); finish the rest.
        if (done + written < buffer.length) return writeRest(done + written);
        resolve();
      });
    };
    writeRest(0);
  });
}

export function fdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.fdatasync(fd, (error) => (error ? reject(error) : resolve()));
  });
}

export function fsyncFile(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.fsync(fd, (error) => (error ? reject(error) : resolve()));
  });
}

export function openFile(path: string, flags: string | number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.open(path, flags, 0o644, (error, fd) => (error ? reject(error) : resolve(fd)));
  });
}

export function closeFile(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.close(fd, (error) => (error ? reject(error) : resolve()));
  });
}

/** Makes a rename, create or unlink in `dir` durable (POSIX needs an fsync of the directory). */
export async function fsyncDirectory(dir: string): Promise<void> {
  const fd = await openFile(dir, 'r');
  try {
    await fsyncFile(fd);
  } finally {
    await closeFile(fd);
  }
}

/** Reads exactly `length` bytes at `positionBytes`, or fewer only at the end of the file. */
export function readFullySync(fd: number, buffer: Buffer, length: number, positionBytes: number) {
  let done = 0;
  while (done < length) {
    const read = fs.readSync(fd, buffer, done, length - done, positionBytes + done);
    if (read === 0) break;
    done += read;
  }
  return done;
}

/**
 * Creates `dir` (and missing parents) and fsyncs each parent whose entry changed, so a log written
 * into it cannot vanish with its directory after a power loss.
 *
 * One level at a time, not `mkdir(dir, { recursive: true })`: Node 20's recursive mkdir never
 * returns when mkdir keeps failing with ENOENT although the parent exists, as anywhere under
 * /proc. Here a level that cannot be made is an error naming it: `cannot create <level> (<code>)`,
 * or `<ancestor> is not a directory` when a file is in the way.
 */
export async function makeDirectoryDurably(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let at = dir; ; ) {
    let found: fs.Stats;
    try {
      found = await fs.promises.stat(at);
    } catch (error) {
      // ENOTDIR: some ancestor is a file; walking up finds it and names it.
      const code = (error as NodeJS.ErrnoException).code;
      const parent = dirname(at);
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || parent === at) {
        throw cannotCreate(at, error);
      }
      missing.push(at);
      at = parent;
      continue;
    }
    if (!found.isDirectory()) throw new Error(`${at} is not a directory`);
    break;
  }
  if (missing.length === 0) return;
  for (const level of missing.reverse()) {
    try {
      await fs.promises.mkdir(level);
    } catch (error) {
      // Another process may have made it meanwhile; anything else is final.
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST' || !(await fs.promises.stat(level)).isDirectory()) {
        throw cannotCreate(level, error);
      }
    }
  }
  // Every created level's entry is in its parent: the nearest existing ancestor and each created
  // level but the last.
  for (const level of missing) await fsyncDirectory(dirname(level));
}

function cannotCreate(level: string, error: unknown): Error {
  const { code, message } = error as NodeJS.ErrnoException;
  return new Error(`cannot create ${level} (${code ?? message})`, { cause: error });
}
