/**
 * SnapshotInbox: stale partials are deleted on open, a resume must match the bytes held, and a new
 * transfer or offset question stops the one in progress before it answers.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import { pino } from 'pino';
import { isRpcError } from '../rpc/index.js';
import {
  partialFileName,
  SNAPSHOT_PARTIAL_AGE_MS_MAX,
  type SnapshotIdentity,
  SnapshotInbox,
} from './snapshot-inbox.js';

const logger = pino({ level: 'silent' });
const NOW_MS = 1_800_000_000_000;

function identity(index: number, data: Uint8Array, from = 1): SnapshotIdentity {
  return { from, index, term: 2, totalBytes: data.length, crc: crc32c(data) };
}

describe('SnapshotInbox', () => {
  let dir = '';
  beforeEach(() => {
    dir = fs.mkdtempSync(join(tmpdir(), 'shoal-inbox-'));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('deletes stale partials on open and keeps a current one', async () => {
    const data = new Uint8Array(100).fill(7);
    const installed = partialFileName(identity(40, data));
    const tooOld = partialFileName(identity(60, data));
    const current = partialFileName(identity(70, data));
    for (const name of [installed, tooOld, current, 'garbage.partial']) {
      fs.writeFileSync(join(dir, name), data.subarray(0, 50));
    }
    const oldSeconds = (NOW_MS - SNAPSHOT_PARTIAL_AGE_MS_MAX - 1000) / 1000;
    fs.utimesSync(join(dir, tooOld), oldSeconds, oldSeconds);
    const recentSeconds = NOW_MS / 1000;
    for (const name of [installed, current, 'garbage.partial']) {
      fs.utimesSync(join(dir, name), recentSeconds, recentSeconds);
    }
    const inbox = await SnapshotInbox.open(dir, { installedIndex: 50, logger, nowMs: NOW_MS });
    assert.deepEqual(await inbox.partialFiles(), [current]);
    assert.equal(await inbox.offset(identity(70, data)), 50);
    assert.equal(await inbox.offset(identity(70, data, 9)), 0, 'another sender holds nothing');
  });

  it('keeps only the most recently written partial on open', async () => {
    const data = new Uint8Array(10);
    const older = partialFileName(identity(60, data));
    const newer = partialFileName(identity(61, data));
    fs.writeFileSync(join(dir, older), data);
    fs.writeFileSync(join(dir, newer), data);
    fs.utimesSync(join(dir, older), NOW_MS / 1000 - 10, NOW_MS / 1000 - 10);
    fs.utimesSync(join(dir, newer), NOW_MS / 1000, NOW_MS / 1000);
    const inbox = await SnapshotInbox.open(dir, { installedIndex: 0, logger, nowMs: NOW_MS });
    assert.deepEqual(await inbox.partialFiles(), [newer]);
  });

  it('refuses a resume offset it does not hold', async () => {
    const inbox = await SnapshotInbox.open(dir, { installedIndex: 0, logger });
    const data = new Uint8Array(64).fill(1);
    await assert.rejects(
      inbox.begin(identity(5, data), 32),
      (error) => isRpcError(error) && error.code === 'FAILED_PRECONDITION',
    );
    const writer = await inbox.begin(identity(5, data), 0);
    await writer.write(data.subarray(0, 16));
    await writer.release();
    await assert.rejects(
      inbox.begin(identity(5, data), 32),
      (error) => isRpcError(error) && error.code === 'FAILED_PRECONDITION',
    );
    const resumed = await inbox.begin(identity(5, data), 16);
    await resumed.write(data.subarray(16));
    assert.deepEqual(await resumed.complete(), Buffer.from(data));
    await resumed.release();
    assert.deepEqual(await inbox.partialFiles(), []);
  });

  it('stops a transfer in progress before answering an offset question', async () => {
    const inbox = await SnapshotInbox.open(dir, { installedIndex: 0, logger });
    const data = new Uint8Array(64).fill(3);
    const id = identity(8, data);
    const writer = await inbox.begin(id, 0);
    await writer.write(data.subarray(0, 24));
    let superseded = false;
    // The transport stops reading its stream when superseded, then releases the file.
    void writer.superseded.then(async () => {
      superseded = true;
      await writer.release();
    });
    assert.equal(await inbox.offset(id), 24);
    assert.equal(superseded, true);
    await assert.rejects(writer.write(data.subarray(24)), /released/);
  });
});
