/**
 * Tests of the on-disk formats and whole-state operations: etcd's KeyValue protobuf bytes and
 * revision keys, HashKV as etcd computes it, and snapshot -> restore giving an identical store.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import { Packr } from 'msgpackr';
import { decodeKeyValue, decodeRevisionKey, encodeKeyValue, encodeRevisionKey } from './codec.js';
import { KvErrorMessage } from './errors.js';
import type { MvccStore } from './mvcc.js';
import { removeCheckpoint, SNAPSHOT_CHUNK_BYTES_MAX } from './snapshot.js';
import { StoreHarness } from './testing.js';
import type { KvRequest } from './types.js';

const b = (text: string): Buffer => Buffer.from(text);
const ALL = new Uint8Array([0]);
const harnesses: StoreHarness[] = [];
function open(): StoreHarness {
  const harness = StoreHarness.open();
  harnesses.push(harness);
  return harness;
}
afterEach(async () => {
  for (const harness of harnesses.splice(0)) await harness.close();
});

/** A store of 30 values of 100 KiB (several snapshot chunks), a snapshot of it and its hash. */
async function snapshotOfBigValues() {
  const source = open();
  const value = Buffer.alloc(100 * 1024, 7);
  for (let i = 0; i < 30; i++) source.ok({ put: { key: b(`big${i}`), value } });
  const snapshot = source.store.snapshot();
  const hashBefore = (await source.store.hashKv()).hash;
  return { source, value, snapshot, hashBefore };
}

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const chunk of chunks) out.push(chunk);
  return out;
}
async function* replay(chunks: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const chunk of chunks) yield chunk;
}

describe('codec', () => {
  test('KeyValue is encoded as etcd protobuf bytes', () => {
    const kv = {
      key: b('foo'),
      createRevision: 2,
      modRevision: 300,
      version: 1,
      value: b('bar'),
      lease: 0n,
    };
    const expected = '0a03666f6f100218ac0220012a03626172';
    assert.equal(encodeKeyValue(kv).toString('hex'), expected);
    const decoded = decodeKeyValue(Buffer.from(expected, 'hex'));
    assert.deepEqual({ ...decoded, key: b('foo'), value: b('bar') }, kv);
    // A tombstone holds only the key; a lease id above 2^53 and a negative one round-trip.
    assert.equal(
      encodeKeyValue({
        ...kv,
        createRevision: 0,
        modRevision: 0,
        version: 0,
        value: new Uint8Array(0),
      }).toString('hex'),
      '0a03666f6f',
    );
    for (const lease of [0x7fff_ffff_ffff_ffffn, -1n]) {
      assert.equal(decodeKeyValue(encodeKeyValue({ ...kv, lease })).lease, lease);
    }
    assert.equal(encodeKeyValue({ ...kv, lease: -1n }).length, 17 + 1 + 10);
  });

  test('revision keys are etcd bolt keys', () => {
    assert.equal(
      encodeRevisionKey(2, 1, false).toString('hex'),
      '00000000000000025f0000000000000001',
    );
    assert.equal(
      encodeRevisionKey(2, 1, true).toString('hex'),
      '00000000000000025f000000000000000174',
    );
    assert.deepEqual(decodeRevisionKey(encodeRevisionKey(2 ** 40, 7, true)), {
      main: 2 ** 40,
      sub: 7,
      tombstone: true,
    });
    // Both halves of each 8-byte number, up to the largest revision a JavaScript number holds.
    assert.equal(
      encodeRevisionKey(Number.MAX_SAFE_INTEGER, 2 ** 32 + 5, false).toString('hex'),
      '001fffffffffffff5f0000000100000005',
    );
    assert.throws(() => encodeRevisionKey(-1, 0, false), RangeError);
    assert.throws(() => encodeRevisionKey(1.5, 0, false), RangeError);
  });
});

describe('HashKV', () => {
  test('is CRC-32C over "key" and the bolt entries, as etcd computes it', async () => {
    const h = open();
    h.ok({ put: { key: b('foo'), value: b('bar') } });
    const entry = Buffer.concat([
      Buffer.from('00000000000000025f0000000000000000', 'hex'),
      Buffer.from('0a03666f6f100218022001' + '2a03626172', 'hex'),
    ]);
    const expected = crc32c(entry, crc32c(b('key')));
    const response = await h.store.hashKv();
    assert.equal(response.hash, expected);
    assert.equal(response.compactRevision, -1);
    assert.equal(response.header.revision, 2);
  });

  test('is equal across stores with the same history and rejects bad revisions', async () => {
    const [one, two] = [open(), open()];
    for (const h of [one, two]) applyWorkload(h);
    for (const revision of [0, 6, 9, one.store.revision]) {
      assert.equal(
        (await one.store.hashKv(revision)).hash,
        (await two.store.hashKv(revision)).hash,
      );
    }
    assert.notEqual((await one.store.hashKv(6)).hash, (await one.store.hashKv(9)).hash);
    await assert.rejects(one.store.hashKv(5), { message: KvErrorMessage.compacted });
    await assert.rejects(one.store.hashKv(one.store.revision + 1), {
      message: KvErrorMessage.futureRev,
    });
  });

  test('a long hash yields to the event loop and hashes the state at its call', async () => {
    const h = open();
    let index = h.nextIndex;
    for (let batch = 0; batch < 12; batch++) {
      const entries = Array.from({ length: 1000 }, (_, i) => ({
        index: index++,
        request: { put: { key: b(`k${i}`), value: b(`${batch}`) } },
      }));
      h.store.applyBatch(entries);
    }
    h.nextIndex = index;
    const revision = h.store.revision;
    const pending = h.store.hashKv();
    let yielded = false;
    setImmediate(() => {
      yielded = true;
      h.ok({ put: { key: b('k1'), value: b('during the hash') } });
    });
    const during = await pending;
    assert.equal(yielded, true, 'the hash never yielded');
    assert.equal(during.header.revision, revision);
    assert.equal(during.hash, (await h.store.hashKv(revision)).hash);
    assert.notEqual(during.hash, (await h.store.hashKv()).hash);
  });
});

/** A history with updates, deletes, a range delete, a txn, leases, a revoke and a compaction. */
function applyWorkload(h: StoreHarness): void {
  h.ok({ leaseGrant: { ID: 77n, TTL: 100 } });
  for (let i = 0; i < 10; i++) h.ok({ put: { key: b(`k${i % 4}`), value: b(`v${i}`) } });
  h.ok({ compaction: { revision: 5 } });
  h.ok({ put: { key: b('leased'), value: b('x'), lease: 77n } });
  h.ok({ deleteRange: { key: b('k1'), rangeEnd: b('k3') } });
  h.ok({
    txn: {
      success: [
        { requestPut: { key: b('t1'), value: b('a') } },
        { requestPut: { key: b('t2\0'), value: b('b') } },
      ],
    },
  });
  h.ok({ leaseGrant: { ID: 78n, TTL: 100 } });
  h.ok({ put: { key: b('leased2'), value: b('y'), lease: 78n } });
  h.ok({ leaseRevoke: { ID: 77n } });
}

async function fingerprint(store: MvccStore) {
  const kvs = store.range({ key: ALL, rangeEnd: ALL }).kvs.map((kv) => ({
    ...kv,
    key: Buffer.from(kv.key).toString('hex'),
    value: Buffer.from(kv.value).toString('hex'),
  }));
  return {
    revision: store.revision,
    compact: store.compactedRevision,
    applied: store.appliedIndex,
    hash: (await store.hashKv()).hash,
    hashAt: (await store.hashKv(8)).hash,
    kvs,
    past: store.range({ key: ALL, rangeEnd: ALL, revision: 7 }).count,
    leases: store.leaseIds().map((id) => store.lease(id)),
    history: store.readHistory(5, { prevKv: true }),
  };
}

describe('snapshot and restore', () => {
  test('restore reproduces the store exactly, and both continue identically', async () => {
    const [source, target] = [open(), open()];
    applyWorkload(source);
    target.ok({ put: { key: b('stale'), value: b('gone after restore') } });
    const snapshot = source.store.snapshot();
    assert.equal(snapshot.appliedIndex, source.store.appliedIndex);
    assert.equal(snapshot.revision, source.store.revision);
    await target.store.restore(snapshot.chunks);
    assert.deepEqual(await fingerprint(target.store), await fingerprint(source.store));
    const next: KvRequest = { put: { key: b('k0'), value: b('after'), lease: 78n } };
    const index = source.store.appliedIndex + 1;
    const [a] = source.store.applyBatch([{ index, request: next }]);
    const [c] = target.store.applyBatch([{ index, request: next }]);
    assert.deepEqual(c, a);
    await target.reopen();
    assert.deepEqual(await fingerprint(target.store), await fingerprint(source.store));
  });

  test('the snapshot is the state when it was taken, and chunks are bounded', async () => {
    const { source, value, snapshot, hashBefore } = await snapshotOfBigValues();
    source.ok({ put: { key: b('later'), value: b('not in the snapshot') } });
    const chunks = await collect(snapshot.chunks);
    assert.ok(chunks.length > 3, `expected several chunks, got ${chunks.length}`);
    for (const chunk of chunks)
      assert.ok(chunk.length <= SNAPSHOT_CHUNK_BYTES_MAX + value.length + 1024);
    const target = open();
    await target.store.restore(replay(chunks));
    assert.equal((await target.store.hashKv()).hash, hashBefore);
    assert.equal(target.store.range({ key: b('later') }).count, 0);
  });

  test('reading a snapshot yields to the event loop between chunks; writes in between stay out', async () => {
    const { source, snapshot, hashBefore } = await snapshotOfBigValues();
    let turns = 0;
    const tick = (): void => {
      turns++;
      // A write while the snapshot is being read: the snapshot must not contain it.
      if (turns === 1) source.ok({ put: { key: b('during'), value: b('x') } });
      if (turns < 1000) setImmediate(tick);
    };
    setImmediate(tick);
    const chunks: Uint8Array[] = [];
    let turnsAtFirstChunk = -1;
    for await (const chunk of snapshot.chunks) {
      if (turnsAtFirstChunk < 0) turnsAtFirstChunk = turns;
      chunks.push(chunk);
    }
    assert.ok(chunks.length > 3);
    assert.ok(turns > turnsAtFirstChunk, 'no event-loop turn ran while the snapshot was read');
    const target = open();
    await target.store.restore(replay(chunks));
    assert.equal((await target.store.hashKv()).hash, hashBefore);
    assert.equal(target.store.range({ key: b('during') }).count, 0);
  });

  test('a truncated snapshot fails and leaves a store that refuses to open', async () => {
    const source = open();
    applyWorkload(source);
    const chunks = await collect(source.store.snapshot().chunks);
    const target = open();
    await assert.rejects(
      target.store.restore(replay(chunks.slice(0, -1))),
      /without its end chunk/,
    );
    assert.throws(() => target.store.range({ key: b('a') }), /unavailable/);
    await assert.rejects(target.reopen(), /unfinished snapshot restore/);
  });

  test('a version 1 snapshot, which carried the key index table, still restores', async () => {
    const source = open();
    applyWorkload(source);
    const packr = new Packr({ useRecords: false, moreTypes: false });
    const current = await collect(source.store.snapshot().chunks);
    const chunks = current.map((bytes) => {
      const chunk = packr.unpack(bytes) as {
        version: number;
        records: unknown[];
        end?: true;
        recordCount?: number;
      };
      assert.equal(chunk.version, 2);
      chunk.version = 1;
      // Version 1 put the index table's rows under database id 3; restore must skip them.
      chunk.records.unshift([3, b('k0'), Buffer.from([0xdb, 0x01])]);
      if (chunk.end) chunk.recordCount! += current.length;
      return packr.pack(chunk);
    });
    const target = open();
    await target.store.restore(replay(chunks));
    assert.deepEqual(await fingerprint(target.store), await fingerprint(source.store));
    const future = chunks.map((bytes) => packr.pack({ ...packr.unpack(bytes), version: 3 }));
    await assert.rejects(open().store.restore(replay(future)), /unsupported kv snapshot version 3/);
  });

  test('garbage is rejected', async () => {
    const target = open();
    await assert.rejects(target.store.restore(replay([b('not msgpack at all')])));
  });

  test('a checkpoint is one consistent copy while batches keep being applied, and restores exactly', async () => {
    // The member's store form: unsynced, through LMDB's shared map (kept as one file here).
    const source = StoreHarness.open({ noSync: true });
    harnesses.push(source);
    const value = Buffer.alloc(2048, 3);
    for (let i = 0; i < 2000; i++) source.ok({ put: { key: b(`k${i % 500}`), value } });
    let applying = true;
    let appliedDuringCopy = 0;
    const writer = (async () => {
      while (applying) {
        source.ok({ put: { key: b(`late${appliedDuringCopy++}`), value } });
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const checkpoint = await source.store.checkpoint();
    applying = false;
    await writer;
    // One put per raft index from 1: a consistent copy holds revision = index + 1.
    assert.equal(checkpoint.revision, checkpoint.appliedIndex + 1);
    assert.ok(checkpoint.appliedIndex >= 2000);
    const image = await readFile(checkpoint.file);
    await removeCheckpoint(dirname(checkpoint.file));

    const target = open();
    target.ok({ put: { key: b('only-in-target'), value: b('x') } });
    await target.store.restoreCheckpoint(image);
    assert.equal(target.store.appliedIndex, checkpoint.appliedIndex);
    assert.equal(target.store.revision, checkpoint.revision);
    assert.equal(
      (await target.store.hashKv()).hash,
      (await source.store.hashKv(checkpoint.revision)).hash,
    );
    assert.equal(target.store.range({ key: b('only-in-target') }).kvs.length, 0);
  });

  test('a checkpoint copies the pages as they are, and compacts only a store that is mostly free pages', async () => {
    const h = StoreHarness.open({ noSync: true });
    harnesses.push(h);
    const value = Buffer.alloc(1024, 5);
    for (let i = 0; i < 3000; i++) h.ok({ put: { key: b(`k${i}`), value } });
    const sizeOf = async () => {
      const checkpoint = await h.store.checkpoint();
      const bytes = (await readFile(checkpoint.file)).length;
      await removeCheckpoint(dirname(checkpoint.file));
      return bytes;
    };
    const full = h.store.status();
    assert.ok(full.dbSizeInUseBytes >= full.dbSizeBytes * 0.75, 'a store of puts is mostly in use');
    // The plain copy is the file up to its last page, free pages included.
    assert.equal(await sizeOf(), full.dbSizeBytes);

    // Delete nearly everything and compact the history away: most pages become free.
    h.ok({ deleteRange: { key: b('k'), rangeEnd: b('l') } });
    h.ok({ compaction: { revision: h.store.revision } });
    while (h.store.compactStep());
    const freed = h.store.status();
    assert.ok(freed.dbSizeInUseBytes < freed.dbSizeBytes * 0.75, 'most pages are free now');
    const compacted = await sizeOf();
    assert.ok(
      compacted < freed.dbSizeBytes / 2,
      `compacted copy ${compacted} bytes of a ${freed.dbSizeBytes}-byte store`,
    );
  });

  test('a truncated or damaged checkpoint is refused before LMDB maps it, and the store is untouched', async () => {
    const source = open();
    source.ok({ put: { key: b('a'), value: b('1') } });
    const checkpoint = await source.store.checkpoint();
    const image = await readFile(checkpoint.file);
    await removeCheckpoint(dirname(checkpoint.file));
    const target = open();
    target.ok({ put: { key: b('kept'), value: b('1') } });
    for (const damaged of [
      image.subarray(0, 100),
      image.subarray(0, image.length - 4096),
      Buffer.alloc(image.length),
      Buffer.concat([image.subarray(0, 4096), Buffer.alloc(image.length - 4096)]),
    ]) {
      await assert.rejects(target.store.restoreCheckpoint(damaged), /not a whole kv checkpoint/);
    }
    assert.equal(target.store.range({ key: b('kept') }).kvs.length, 1, 'refused before clearing');
    await target.store.restoreCheckpoint(image);
    assert.equal(target.store.range({ key: b('a') }).kvs.length, 1);
  });
});
