/**
 * Creating a member's data directory.
 *
 * Node's `mkdirSync(path, { recursive: true })` never returns when mkdir keeps failing with
 * ENOENT although the parent exists, as it does anywhere under /proc: `shoal start --data-dir
 * /proc/x` then hung without a word. This walks up to the nearest existing ancestor and creates one
 * level at a time, so a level that cannot be made is reported with its path and reason.
 */
import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

/** Creates `path` and any missing parents; an existing directory is fine. Throws a clear error. */
export function createDataDir(path: string): void {
  const missing: string[] = [];
  let at = path;
  for (;;) {
    let isDirectory: boolean;
    try {
      isDirectory = statSync(at).isDirectory();
    } catch (error) {
      // ENOTDIR: some ancestor is a file; walking up finds it and names it.
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw describe(path, at, error);
      const parent = dirname(at);
      if (parent === at) throw describe(path, at, error);
      missing.push(at);
      at = parent;
      continue;
    }
    if (!isDirectory) throw new Error(`data dir ${path}: ${at} is not a directory`);
    break;
  }
  for (const level of missing.reverse()) {
    try {
      mkdirSync(level);
    } catch (error) {
      // Another process may have made it meanwhile; anything else is final.
      if ((error as NodeJS.ErrnoException).code === 'EEXIST' && statSync(level).isDirectory()) {
        continue;
      }
      throw describe(path, level, error);
    }
  }
}

function describe(path: string, level: string, error: unknown): Error {
  const { code, message } = error as NodeJS.ErrnoException;
  const reason = code ?? message;
  return new Error(`data dir ${path}: cannot create ${level} (${reason})`, { cause: error });
}
