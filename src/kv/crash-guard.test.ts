/**
 * The crash guard of an unsynced store: a process crash keeps the store, a machine crash (another
 * boot id while the store was open) discards it, and a clean close survives a reboot.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { guardClose, guardOpen } from './crash-guard.js';
import { MvccStore } from './mvcc.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const writer = join(root, 'test', 'fixtures', 'unsynced-store-writer.ts');
const silent = pino({ level: 'silent' });

/** Runs the writer child: it applies `count` puts under `boot` and exits without closing. */
function crashAfterWrites(path: string, boot: string, count: number): number {
  const child = spawnSync(
    process.execPath,
    ['--import', 'tsx', writer, path, boot, String(count)],
    {
      cwd: root,
      encoding: 'utf8',
    },
  );
  assert.equal(child.status, 0, child.stderr);
  return Number(child.stdout.trim());
}

function open(path: string, boot: string): MvccStore {
  return MvccStore.open({ path, noSync: true, bootId: boot, logger: silent });
}

test('markers: same boot keeps the files, another boot discards them, close removes the marker', () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'shoal-guard-'));
  const path = join(dir, 'db');
  fs.writeFileSync(path, 'data');
  assert.deepEqual(guardOpen(path, 'a'), { discarded: false });
  assert.deepEqual(guardOpen(path, 'a'), { discarded: false });
  assert.equal(fs.readFileSync(path, 'utf8'), 'data');
  assert.deepEqual(guardOpen(path, 'b'), { discarded: true, staleBootId: 'a' });
  assert.equal(fs.existsSync(path), false);
  fs.writeFileSync(path, 'new');
  guardClose(path);
  assert.equal(fs.existsSync(`${path}-open`), false);
  assert.deepEqual(guardOpen(path, 'c'), { discarded: false });
  assert.equal(fs.readFileSync(path, 'utf8'), 'new');
  fs.rmSync(dir, { recursive: true });
});

test('an unsynced store survives a process crash and a clean close, not a machine crash', async () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'shoal-guard-'));
  const path = join(dir, 'db');
  try {
    // A process crash under the same boot: every committed batch is there.
    assert.equal(crashAfterWrites(path, 'boot-1', 20), 20);
    let store = open(path, 'boot-1');
    assert.equal(store.discardedAfterMachineCrash, false);
    assert.equal(store.appliedIndex, 20);
    assert.equal(store.range({ key: Buffer.from('k19') }).kvs[0]?.value.toString(), 'v19');
    await store.close();
    // A clean close, then a reboot: the store was synced at close and is kept.
    store = open(path, 'boot-2');
    assert.equal(store.discardedAfterMachineCrash, false);
    assert.equal(store.appliedIndex, 20);
    await store.close();
    // Opened under boot-3, the process dies; the next open is under boot-4: the machine went down
    // while the store was open, so it is discarded and starts empty, for raft to rebuild.
    assert.equal(crashAfterWrites(path, 'boot-3', 5), 25);
    store = open(path, 'boot-4');
    assert.equal(store.discardedAfterMachineCrash, true);
    assert.equal(store.appliedIndex, 0);
    assert.equal(store.range({ key: Buffer.from('k0') }).kvs.length, 0);
    await store.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
