/**
 * Maintenance.Snapshot: the stream carries the store's snapshot followed by the trailer etcdctl
 * checks (512-byte alignment, body length, SHA-256), and the body restores into a fresh store with
 * the same keys and revision.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { EtcdTestClient } from '../../../test/support/etcd-client.js';
import { startShoal } from '../../../test/support/shoal-server.js';
import { MvccStore } from '../../kv/index.js';

test('a snapshot carries a verifiable trailer and restores into a new store', async () => {
  const shoal = await startShoal();
  const client = new EtcdTestClient(`127.0.0.1:${shoal.port}`);
  const directory = mkdtempSync(join(tmpdir(), 'shoal-restore-'));
  try {
    for (let i = 0; i < 40; i++) {
      await client.put({ key: Buffer.from(`snap/${i}`), value: Buffer.alloc(300, i) });
    }
    const file = await client.snapshot();
    assert.equal((file.length - 32) % 512, 0, 'body must be 512-byte aligned, as etcdctl checks');
    const body = file.subarray(0, file.length - 32);
    assert.deepEqual(file.subarray(file.length - 32), createHash('sha256').update(body).digest());
    const length = Number(body.readBigUInt64BE(body.length - 8));
    assert.ok(length > 40 * 300 && length < body.length);

    const store = MvccStore.open({
      path: join(directory, 'kv.mdb'),
      logger: pino({ level: 'silent' }),
    });
    try {
      await store.restore(
        (async function* () {
          yield file.subarray(0, length);
        })(),
      );
      const range = store.range({ key: Buffer.from('snap/'), rangeEnd: Buffer.from('snap0') });
      assert.equal(range.count, 40);
      assert.equal(store.revision, 41);
      assert.deepEqual(Buffer.from(range.kvs[0]!.value), Buffer.alloc(300, 0));
    } finally {
      await store.close();
    }
  } finally {
    client.close();
    await shoal.close();
    rmSync(directory, { recursive: true, force: true });
  }
});
