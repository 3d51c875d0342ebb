/**
 * Creating a member's data directory: durably, one level at a time (the storage layer's
 * `makeDirectoryDurably`, which also explains why not Node's recursive mkdir: under /proc it never
 * returned, and `shoal start --data-dir /proc/x` hung without a word). Errors name the data dir.
 */
import { makeDirectoryDurably } from '../storage/index.js';

/** Creates `path` and any missing parents; an existing directory is fine. Throws a clear error. */
export async function createDataDir(path: string): Promise<void> {
  try {
    await makeDirectoryDurably(path);
  } catch (error) {
    throw new Error(`data dir ${path}: ${(error as Error).message}`, { cause: error });
  }
}
