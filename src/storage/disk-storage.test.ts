/**
 * DiskStorage behaviour outside the shared contract: the directory lock.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { DiskStorage } from './disk-storage.js';
import { WalError } from './errors.js';

const logger = pino({ level: 'silent' });

test('a storage directory can be open only once at a time', async () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'shoal-lock-'));
  try {
    const storage = await DiskStorage.open(dir, { logger });
    await assert.rejects(
      DiskStorage.open(dir, { logger }),
      (error: unknown) => error instanceof WalError && error.code === 'LOCKED',
    );
    await storage.close();
    await storage.close(); // Idempotent: must not remove a later holder's lock.
    const again = await DiskStorage.open(dir, { logger });
    await again.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a lock left by a process that no longer exists is taken over', async () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'shoal-lock-'));
  try {
    // Far above any pid Linux hands out (pid_max is at most 2^22).
    fs.writeFileSync(join(dir, 'LOCK'), `${2 ** 30}\n`);
    const storage = await DiskStorage.open(dir, { logger });
    assert.equal(fs.readFileSync(join(dir, 'LOCK'), 'utf8').trim(), String(process.pid));
    await storage.close();
    // A live process other than this one holds it: refused.
    fs.writeFileSync(join(dir, 'LOCK'), `${process.ppid}\n`);
    await assert.rejects(DiskStorage.open(dir, { logger }), /in use by process/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
