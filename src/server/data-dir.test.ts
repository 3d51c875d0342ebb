/**
 * createDataDir (the storage layer's makeDirectoryDurably underneath): nested creation, existing
 * directories, and clear errors where Node's own recursive mkdir loops.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createDataDir } from './data-dir.js';

test('creates missing levels and accepts an existing directory', async () => {
  const root = fs.mkdtempSync(join(tmpdir(), 'shoal-data-dir-'));
  try {
    const path = join(root, 'a', 'b', 'c');
    await createDataDir(path);
    assert.ok(fs.statSync(path).isDirectory());
    await createDataDir(path);
    await createDataDir(root);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('a file in the way is named', async () => {
  const root = fs.mkdtempSync(join(tmpdir(), 'shoal-data-dir-'));
  try {
    fs.writeFileSync(join(root, 'file'), 'x');
    await assert.rejects(
      () => createDataDir(join(root, 'file', 'dir')),
      new RegExp(`${join(root, 'file')} is not a directory`),
    );
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('a level the kernel will not create is an error, not a hang (/proc)', async (t) => {
  if (!fs.existsSync('/proc/self')) {
    t.skip('no /proc here');
    return;
  }
  await assert.rejects(
    () => createDataDir('/proc/shoal-test/member'),
    /data dir \/proc\/shoal-test\/member: cannot create \/proc\/shoal-test \(ENOENT\)/,
  );
});
