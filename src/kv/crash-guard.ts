/**
 * The guard that makes an unsynced store safe to use.
 *
 * A store opened with `noSync` commits its LMDB transactions without fsync: a commit costs about
 * 15 µs instead of about 0.3 ms of blocked event loop (two data syncs per commit), which measured
 * twice the throughput of a member at one client. Nothing acknowledged depends on those syncs: the
 * raft log (the WAL, which is fsynced before any acknowledgement) and the raft snapshot hold every
 * committed entry, and the member replays from them whatever the store lacks.
 *
 * What an unsynced LMDB file can survive:
 * - a process crash (SIGKILL, an exception): every committed transaction is already in the
 *   kernel's page cache, written in LMDB's order, so the file is exactly as of the last commit;
 * - a machine crash (power loss, kernel panic): NOT safely. The kernel writes dirty pages back in
 *   any order, so a meta page may reach the disk before the pages it points to: the file can be
 *   damaged, not merely behind.
 *
 * So the guard tells the two apart by the kernel's boot id. While the store is open a marker file
 * next to it holds the boot id it was opened under; a clean close fsyncs the data file and then
 * removes the marker. At open, a marker from another boot means the machine went down while the
 * store was open: the file is discarded and the store starts empty, for the caller to rebuild from
 * raft (snapshot, then log). A marker from this boot means only the process died: the file is
 * intact. Where the boot id cannot be read (not Linux), `bootId()` returns undefined and the store
 * falls back to syncing every commit.
 */
import fs from 'node:fs';
import { dirname, join } from 'node:path';

const BOOT_ID_PATH = '/proc/sys/kernel/random/boot_id';

/** The running kernel's boot id, or undefined where the platform has none. */
export function bootId(): string | undefined {
  try {
    return fs.readFileSync(BOOT_ID_PATH, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export interface GuardOpenResult {
  /** True when the store's files were discarded because the machine crashed while it was open. */
  discarded: boolean;
  /** The boot id of the marker that caused the discard. */
  staleBootId?: string;
}

function markerPath(storePath: string): string {
  return `${storePath}-open`;
}

/**
 * The data file of the store at `storePath`: lmdb-js makes `storePath` a directory holding
 * data.mdb when the path has no extension, and uses the path itself as the file otherwise.
 */
function dataFile(storePath: string): string {
  return fs.statSync(storePath).isDirectory() ? join(storePath, 'data.mdb') : storePath;
}

function discardStore(storePath: string): void {
  fs.rmSync(storePath, { recursive: true, force: true });
  fs.rmSync(`${storePath}-lock`, { force: true });
}

function fsyncPath(path: string): void {
  const fd = fs.openSync(path, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Runs before LMDB opens the store: discards it when a marker from another boot says the machine
 * crashed while it was open, then records the current boot in a new marker (durably, so that a
 * crash right after this open is detected by the next one).
 */
export function guardOpen(storePath: string, currentBootId: string): GuardOpenResult {
  const marker = markerPath(storePath);
  let result: GuardOpenResult = { discarded: false };
  if (fs.existsSync(marker)) {
    const previous = fs.readFileSync(marker, 'utf8').trim();
    if (previous === currentBootId) return result;
    discardStore(storePath);
    result = { discarded: true, staleBootId: previous };
  }
  const temporary = `${marker}.tmp`;
  fs.writeFileSync(temporary, `${currentBootId}\n`);
  fsyncPath(temporary);
  fs.renameSync(temporary, marker);
  fsyncPath(dirname(storePath));
  return result;
}

/** Runs after LMDB closed the store: makes the file durable, then removes the marker. */
export function guardClose(storePath: string): void {
  if (fs.existsSync(storePath)) fsyncPath(dataFile(storePath));
  fs.rmSync(markerPath(storePath), { force: true });
  fsyncPath(dirname(storePath));
}
