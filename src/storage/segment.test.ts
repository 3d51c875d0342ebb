/**
 * Segments are appended to through descriptors opened with O_DSYNC: the WAL relies on that for
 * durability (it issues no separate fdatasync), so a descriptor without the flag would silently
 * turn acknowledged writes into writes that a power loss can drop.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { closeFile } from './fs-async.js';
import {
  discardSegment,
  installSegment,
  PREALLOCATE_SYNC_BYTES,
  prepareSegment,
  SEGMENT_HEADER_BYTES,
  SEGMENT_OPEN_FLAGS,
} from './segment.js';
import { recoverWal } from './wal-recovery.js';

/** The open flags of a descriptor of this process, as Linux reports them (octal). */
function openFlags(fd: number): number {
  const info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  const match = /^flags:\s+([0-7]+)$/m.exec(info);
  assert.ok(match, `no flags line in fdinfo: ${info}`);
  return Number.parseInt(match[1]!, 8);
}

test('a prepared segment is appended to through an O_DSYNC descriptor', {
  skip: process.platform !== 'linux',
}, async () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'shoal-segment-'));
  try {
    const segment = await prepareSegment(dir, 1, 1024 * 1024);
    const flags = openFlags(segment.fd);
    assert.equal(flags & fs.constants.O_DSYNC, fs.constants.O_DSYNC);
    assert.equal(flags & SEGMENT_OPEN_FLAGS, SEGMENT_OPEN_FLAGS);
    await discardSegment(segment);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('segments reopened by recovery are appended to through O_DSYNC descriptors', {
  skip: process.platform !== 'linux',
}, async () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'shoal-segment-'));
  try {
    await installSegment(dir, await prepareSegment(dir, 1, 1024 * 1024)).then((s) =>
      closeFile(s.fd),
    );
    const recovered = await recoverWal(dir, 1024 * 1024, pino({ level: 'silent' }));
    assert.equal(recovered.segments.length, 1);
    for (const segment of recovered.segments) {
      assert.equal(openFlags(segment.fd) & fs.constants.O_DSYNC, fs.constants.O_DSYNC);
      fs.closeSync(segment.fd);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a paced preallocation writes the same segment, and finishes at once when unpaced midway', async () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'shoal-segment-'));
  try {
    const size = 2 * PREALLOCATE_SYNC_BYTES + 12345;
    const plain = await prepareSegment(dir, 1, size);
    const pacing = { paced: true };
    const pacedPromise = prepareSegment(dir, 2, size, pacing);
    // The WAL does this when it has to wait for the segment (a roll) or closes.
    setImmediate(() => {
      pacing.paced = false;
    });
    const paced = await pacedPromise;
    const a = fs.readFileSync(plain.path);
    const b = fs.readFileSync(paced.path);
    assert.equal(b.length, size);
    // Identical apart from the header's sequence number.
    assert.ok(a.subarray(SEGMENT_HEADER_BYTES).equals(b.subarray(SEGMENT_HEADER_BYTES)));
    assert.ok(b.subarray(SEGMENT_HEADER_BYTES).every((byte) => byte === 0));
    await discardSegment(plain);
    await discardSegment(paced);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
