/**
 * The single-member server keeps its data, revision and identity across a restart on the same
 * data directory, and refuses a port that is already taken with an error instead of a crash.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { EtcdTestClient, type Message } from '../../../test/support/etcd-client.js';
import { startSingleMemberServer } from './single-member.js';

const logger = pino({ level: 'silent' });

test('data, revision and member id survive a restart', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'shoal-single-'));
  try {
    const first = await startSingleMemberServer({ dataDir, port: 0, name: 'm1', logger });
    let client = new EtcdTestClient(`127.0.0.1:${first.port}`);
    await client.put({ key: Buffer.from('durable'), value: Buffer.from('yes') });
    const before = (await client.range({ key: Buffer.from('durable') })).header as Message;
    client.close();
    await first.close();

    const second = await startSingleMemberServer({ dataDir, port: 0, name: 'm1', logger });
    client = new EtcdTestClient(`127.0.0.1:${second.port}`);
    const after = await client.range({ key: Buffer.from('durable') });
    client.close();
    const clash = startSingleMemberServer({ dataDir: `${dataDir}-2`, port: second.port, logger });
    await assert.rejects(clash);
    await second.close();
    rmSync(`${dataDir}-2`, { recursive: true, force: true });

    assert.equal(((after.kvs as Message[])[0]!.value as Buffer).toString(), 'yes');
    const header = after.header as Message;
    assert.equal(header.revision, before.revision);
    assert.equal(header.memberId, before.memberId);
    assert.equal(header.clusterId, before.clusterId);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
