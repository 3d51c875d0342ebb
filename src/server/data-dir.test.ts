/** createDataDir: nested creation, existing directories, and clear errors where Node's own loops. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createDataDir } from './data-dir.js';

test('creates missing levels and accepts an existing directory', () => {
  const root = fs.mkdtempSync(join(tmpdir(), 'shoal-data-dir-'));
  try {
    const path = join(root, 'a', 'b', 'c');
    createDataDir(path);
    assert.ok(fs.statSync(path).isDirectory());
    createDataDir(path);
    createDataDir(root);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('a file in the way is named', () => {
  const root = fs.mkdtempSync(join(tmpdir(), 'shoal-data-dir-'));
  try {
    fs.writeFileSync(join(root, 'file'), 'x');
    assert.throws(
      () => createDataDir(join(root, 'file', 'dir')),
      new RegExp(`${join(root, 'file')} is not a directory`),
    );
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('a level the kernel will not create is an error, not a hang (/proc)', (t) => {
  if (!fs.existsSync('/proc/self')) {
    t.skip('no /proc here');
    return;
  }
  assert.throws(
    () => createDataDir('/proc/shoal-test/member'),
    /data dir \/proc\/shoal-test\/member: cannot create \/proc\/shoal-test \(ENOENT\)/,
  );
});
