/**
 * Tests for the single-member backend on the LMDB MVCC store: concurrent writes are group-committed
 * into one store batch yet each gets its own revision and answer, a failing write does not disturb
 * its batch mates, store errors arrive as etcd errors, and headers carry the member's identity.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { MvccStore } from '../../kv/index.js';
import { EtcdError, GrpcCode } from './errors.js';
import { SingleMemberBackend } from './mvcc-backend.js';
import type { PutRequest, RangeRequest } from './types.js';

let directory: string;
let store: MvccStore;
let backend: SingleMemberBackend;
let batches = 0;

before(() => {
  directory = mkdtempSync(join(tmpdir(), 'shoal-backend-'));
  store = MvccStore.open({ path: join(directory, 'kv.mdb'), logger: pino({ level: 'silent' }) });
  const applyBatch = store.applyBatch.bind(store);
  store.applyBatch = (entries) => {
    batches++;
    return applyBatch(entries);
  };
  backend = new SingleMemberBackend({
    store,
    clusterId: 2n ** 64n - 3n,
    memberId: 2n ** 63n + 7n,
    name: 'one',
    peerUrls: ['http://127.0.0.1:2380'],
    clientUrls: ['http://127.0.0.1:2379'],
  });
});

after(async () => {
  await store.close();
  rmSync(directory, { recursive: true, force: true });
});

const bytes = (text: string) => new Uint8Array(Buffer.from(text));
const put = (key: string, value: string, lease = 0n): PutRequest => ({
  key: bytes(key),
  value: bytes(value),
  lease,
  prevKv: false,
  ignoreValue: false,
  ignoreLease: false,
});
const range = (key: string, end = ''): RangeRequest => ({
  key: bytes(key),
  rangeEnd: bytes(end),
  limit: 0,
  revision: 0,
  sortOrder: 'none',
  sortTarget: 'key',
  serializable: false,
  keysOnly: false,
  countOnly: false,
  minModRevision: 0,
  maxModRevision: 0,
  minCreateRevision: 0,
  maxCreateRevision: 0,
});

test('concurrent writes share one batch but get distinct revisions and answers', async () => {
  const before = batches;
  const writes = Array.from({ length: 200 }, (_, i) => backend.put(put(`g/${i}`, `v${i}`)));
  const bad = backend.put(put('g/bad', 'x', 12345n));
  const responses = await Promise.all(writes);
  await assert.rejects(
    bad,
    (error) =>
      error instanceof EtcdError &&
      error.code === GrpcCode.notFound &&
      error.message === 'etcdserver: requested lease not found',
  );
  assert.equal(batches - before, 1, 'all writes queued in one turn are applied as one batch');
  const revisions = responses.map((r) => r.header.revision);
  assert.equal(new Set(revisions).size, 200);
  const read = await backend.range(range('g/', 'g0'));
  assert.equal(read.count, 200);
  assert.equal(read.header.revision, Math.max(...revisions));
});

test('putBatch is one store entry: a revision per put, in order, and a refused put fails alone', async () => {
  const indexBefore = store.appliedIndex;
  const puts = Array.from({ length: 30 }, (_, i) =>
    i === 11 ? put('pb/bad', 'x', 424242n) : put(`pb/${i}`, `v${i}`),
  );
  const alone = backend.put(put('pb/alone', 'y'));
  const results = await backend.putBatch(puts);
  await alone;
  // The batch and the lone put queued in the same turn: two store entries, not 31.
  assert.equal(store.appliedIndex - indexBefore, 2);
  assert.equal(results.length, 30);
  const refused = results[11];
  assert.ok(refused instanceof EtcdError, `put 11 answered ${String(refused)}`);
  assert.equal(refused.code, GrpcCode.notFound);
  const revisions = results.flatMap((r) => (r instanceof Error ? [] : [r.header.revision]));
  assert.equal(revisions.length, 29);
  for (let i = 1; i < revisions.length; i++) assert.equal(revisions[i], revisions[0]! + i);
  const read = await backend.range(range('pb/', 'pb0'));
  assert.equal(read.count, 30, '29 batched puts and the lone one');
});

test('headers carry the member identity and store errors map to etcd errors', async () => {
  const response = await backend.range(range('g/1'));
  assert.equal(response.header.clusterId, 2n ** 64n - 3n);
  assert.equal(response.header.memberId, 2n ** 63n + 7n);
  assert.deepEqual(Buffer.from(response.kvs[0]!.value).toString(), 'v1');
  await assert.rejects(backend.range({ ...range('g/1'), revision: 10_000 }), /future revision/);
  await backend.compact({ revision: 5, physical: false });
  await assert.rejects(
    backend.range({ ...range('g/1'), revision: 3 }),
    (error) =>
      error instanceof EtcdError &&
      error.code === GrpcCode.outOfRange &&
      /compacted/.test(error.message),
  );
  const status = await backend.status();
  assert.equal(status.leader, 2n ** 63n + 7n);
  assert.ok(status.dbSize > 0);
  assert.equal(status.raftIndex, BigInt(store.appliedIndex));
});

test('a physical compaction answers only once the old history is gone', async () => {
  for (let round = 0; round < 30; round++) {
    await Promise.all(
      Array.from({ length: 100 }, (_, i) => backend.put(put(`c/${i}`, `r${round}`))),
    );
  }
  const head = store.revision;
  await backend.compact({ revision: head - 1, physical: true });
  assert.equal(store.status().compactionPending, false);
  assert.equal(store.compactedRevision, head - 1);
  const hash = await backend.hashKv(0);
  assert.equal(hash.compactRevision, head - 1);
});

test('a physical compaction waits for a running HashKV without polling the store each turn', async () => {
  // Enough history that the hash yields to the event loop several times (every 5,000 entries).
  for (let round = 0; round < 10; round++) {
    await Promise.all(
      Array.from({ length: 2_500 }, (_, i) => backend.put(put(`h/${i}`, `r${round}`))),
    );
  }
  const expected = (await backend.hashKv(0)).hash;
  let stepsWhileHashing = 0;
  const compactStep = store.compactStep.bind(store);
  store.compactStep = (entriesMax) => {
    if (store.hashing) stepsWhileHashing++;
    return compactStep(entriesMax);
  };
  try {
    const hashing = backend.hashKv(0);
    assert.equal(store.hashing, true);
    const compacted = backend.compact({ revision: store.revision - 1, physical: true });
    assert.equal((await hashing).hash, expected, 'the hash saw the history as it began');
    await compacted;
    assert.equal(store.status().compactionPending, false);
    // One step may find the hash running; then the scheduler waits for its end. Polling made
    // one call per event-loop turn for as long as the hash ran.
    assert.ok(stepsWhileHashing <= 1, `${stepsWhileHashing} compaction steps while the hash ran`);
  } finally {
    store.compactStep = compactStep;
  }
});

test('an expired lease is revoked and its keys deleted; keep-alive renews, unknown ids get TTL 0', async () => {
  const granted = await backend.leaseGrant(1, 0n);
  assert.ok(granted.id > 0n);
  assert.equal(granted.ttlSeconds, 2, 'the store raises TTLs to its 2 s minimum, as etcd does');
  await backend.put(put('leased/key', 'v', granted.id));
  const renewed = await backend.leaseKeepAlive(granted.id);
  assert.equal(renewed.ttlSeconds, 2);
  assert.equal((await backend.leaseKeepAlive(987654321n)).ttlSeconds, 0);
  const deleted = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('lease did not expire within 10 s')), 10_000);
    const unsubscribe = backend.subscribe((revisions) => {
      for (const revision of revisions) {
        for (const event of revision.events) {
          if (event.type === 'delete' && Buffer.from(event.kv.key).toString() === 'leased/key') {
            clearTimeout(timer);
            unsubscribe();
            resolve(revision.revision);
          }
        }
      }
    });
  });
  await deleted;
  assert.equal((await backend.range(range('leased/key'))).count, 0);
  const ttl = await backend.leaseTimeToLive(granted.id, true);
  assert.equal(ttl.ttlSeconds, -1);
  assert.deepEqual((await backend.leaseLeases()).leases.includes(granted.id), false);
});
