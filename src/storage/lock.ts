/**
 * An exclusive lock on a member's storage directory, so that two members (or two opens in one
 * process) never append to the same log, which would interleave their records.
 *
 * The lock is a `LOCK` file holding the owner's pid, created with O_EXCL. A lock left by a process
 * that no longer exists (after kill -9 or a power loss) is taken over; so is one holding our own
 * pid but not held by this process (a container restarted with the same pid). Node has no flock(),
 * hence the pid check.
 */
import fs from 'node:fs';
import { join, resolve } from 'node:path';
import { WalError } from './errors.js';

const LOCK_FILE = 'LOCK';
const heldHere = new Set<string>();

export interface DirectoryLock {
  release(): Promise<void>;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the lock on `dir` (which must exist) or throws WalError LOCKED naming the holder. */
export async function lockDirectory(dir: string): Promise<DirectoryLock> {
  const key = resolve(dir);
  if (heldHere.has(key)) {
    throw new WalError('LOCKED', `${dir} is already open in this process`);
  }
  const path = join(dir, LOCK_FILE);
  try {
    await fs.promises.writeFile(path, `${process.pid}\n`, { flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const holder = Number.parseInt(await fs.promises.readFile(path, 'utf8'), 10);
    if (Number.isSafeInteger(holder) && holder !== process.pid && processExists(holder)) {
      throw new WalError('LOCKED', `${dir} is in use by process ${holder}`);
    }
    await fs.promises.writeFile(path, `${process.pid}\n`);
  }
  heldHere.add(key);
  return {
    async release() {
      heldHere.delete(key);
      await fs.promises.rm(path, { force: true });
    },
  };
}
