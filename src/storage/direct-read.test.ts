/**
 * The O_DIRECT chunk reader must give exactly the file's bytes whatever the file's size (aligned
 * or not, shorter than one block, empty) and however much is asked, and must really bypass the
 * page cache on a file system that allows it (the snapshot read-back relies on that for its CPU).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openChunkReader } from './direct-read.js';

const CHUNK = 1024 * 1024;

/** Deterministic bytes (a counter through xorshift), so a misplaced chunk shows. */
function bytesOf(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed | 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

async function readAll(path: string, limit = Number.POSITIVE_INFINITY) {
  const reader = await openChunkReader(path, CHUNK);
  const parts: Buffer[] = [];
  try {
    for (let position = 0; position < limit; ) {
      const chunk = await reader.read(position, Math.min(CHUNK, limit - position));
      if (chunk.length === 0) break;
      parts.push(Buffer.from(chunk)); // a copy: the reader reuses its buffer
      position += chunk.length;
    }
  } finally {
    await reader.close();
  }
  return { bytes: Buffer.concat(parts), direct: reader.direct };
}

function directSupported(dir: string): boolean {
  const probe = join(dir, 'probe');
  fs.writeFileSync(probe, Buffer.alloc(4096));
  try {
    fs.closeSync(fs.openSync(probe, fs.constants.O_RDONLY | fs.constants.O_DIRECT));
    return true;
  } catch {
    return false;
  } finally {
    fs.rmSync(probe);
  }
}

test('reads every file size back exactly, direct where the file system allows', async (t) => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'shoal-direct-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const supported = directSupported(dir);
  for (const [i, size] of [1, 511, 4095, 4096, 4097, CHUNK, 3 * CHUNK + 123].entries()) {
    const path = join(dir, `f${size}`);
    const expected = bytesOf(size, i + 7);
    fs.writeFileSync(path, expected);
    const { bytes, direct } = await readAll(path);
    assert.equal(bytes.length, size, `size ${size}`);
    assert.ok(bytes.equals(expected), `bytes of a ${size}-byte file`);
    assert.equal(direct, supported, `O_DIRECT used for a ${size}-byte file`);
  }
});

test('stops at a limit that is not a multiple of the block size', async (t) => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'shoal-direct-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'f');
  const expected = bytesOf(2 * CHUNK + 5000, 3);
  fs.writeFileSync(path, expected);
  for (const limit of [100, 4096 + 1, CHUNK + 7, 2 * CHUNK + 4999]) {
    const { bytes } = await readAll(path, limit);
    assert.ok(bytes.equals(expected.subarray(0, limit)), `first ${limit} bytes`);
  }
});

test('an empty file reads as nothing', async (t) => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'shoal-direct-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'empty');
  fs.writeFileSync(path, Buffer.alloc(0));
  const { bytes, direct } = await readAll(path);
  assert.equal(bytes.length, 0);
  assert.equal(direct, false, 'nothing to read: the plain reader');
});
