/**
 * Runs the shared storage contract (contract.ts) against MemoryStorage and DiskStorage. The disk
 * harness uses tiny segments and a tiny cache so that segment rolls, releases and reads from disk
 * are all exercised by the same cases.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStorage } from '../raft/memory-storage.js';
import type { RaftStorage } from '../raft/storage.js';
import { runStorageContract } from './contract.js';
import { DiskStorage } from './disk-storage.js';

runStorageContract('MemoryStorage', {
  open: async () => new MemoryStorage(),
  reopen: async (storage) => storage,
  close: async () => {},
});

const directories = new Map<RaftStorage, string>();

runStorageContract('DiskStorage', {
  async open() {
    const dir = await mkdtemp(join(tmpdir(), 'shoal-contract-'));
    const storage = await DiskStorage.open(dir, { segmentBytes: 16 * 1024, cacheBytesMax: 2048 });
    directories.set(storage, dir);
    return storage;
  },
  async reopen(storage) {
    const dir = directories.get(storage)!;
    await storage.close();
    directories.delete(storage);
    const reopened = await DiskStorage.open(dir, { segmentBytes: 16 * 1024, cacheBytesMax: 2048 });
    directories.set(reopened, dir);
    return reopened;
  },
  async close(storage) {
    await storage.close();
    const dir = directories.get(storage);
    directories.delete(storage);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  },
});
