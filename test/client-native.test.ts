/**
 * ShoalClient against the native service over real sockets, served by the single-member MVCC
 * backend: the key-value API end to end (strings and binary keys, prefixes, txn, compaction),
 * etcd's errors as typed ShoalErrors, malformed requests refused with errors that name the field,
 * the retry rules (an unsent write and a "no leader" answer are retried, a timed-out write is not),
 * and serializable reads spread over members by request counters.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { freePorts } from '../src/cli/ports.js';
import {
  compare,
  op,
  ShoalClient,
  ShoalError,
  type Watch,
  type WatchEvent,
} from '../src/client/index.js';
import {
  nativeKv,
  PUT_BATCH_BYTES_MAX,
  PUT_BATCH_PUTS_MAX,
  type PutBatchResponse,
  parseLeaderHint,
} from '../src/client/protocol.js';
import { MvccStore } from '../src/kv/index.js';
import { defineService, RpcClient, RpcError, RpcServer, Status } from '../src/rpc/index.js';
import type { EtcdBackend } from '../src/server/etcd/backend.js';
import { etcdErrors } from '../src/server/etcd/errors.js';
import { SingleMemberBackend } from '../src/server/etcd/mvcc-backend.js';
import {
  createNativeKvService,
  type RunningNativeServer,
  startNativeServer,
} from '../src/server/native/index.js';

const silent = pino({ level: 'silent' });
let directory: string;
let store: MvccStore;
let backend: SingleMemberBackend;
let server: RunningNativeServer;
let client: ShoalClient;

before(async () => {
  directory = mkdtempSync(join(tmpdir(), 'shoal-client-'));
  store = MvccStore.open({ path: join(directory, 'kv.mdb'), logger: silent });
  backend = new SingleMemberBackend({
    store,
    clusterId: 7n,
    memberId: 2n ** 63n + 5n,
    name: 'one',
    peerUrls: ['http://127.0.0.1:1'],
    clientUrls: [],
  });
  server = await startNativeServer({ backend, logger: silent });
  client = new ShoalClient({ endpoints: [server.address] });
});

after(async () => {
  await client.close();
  await server.close();
  backend.close();
  await store.close();
  rmSync(directory, { recursive: true, force: true });
});

const text = (bytes: Uint8Array | undefined) => Buffer.from(bytes ?? []).toString();

/** Passes every call to `inner` except those `override` answers (fault injection). */
function wrap(inner: EtcdBackend, override: Partial<EtcdBackend>): EtcdBackend {
  return new Proxy(inner, {
    get(target, property, receiver) {
      const replacement = (override as Record<string | symbol, unknown>)[property];
      if (replacement !== undefined) return replacement;
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

describe('key-value API', () => {
  it('puts and gets strings and binary keys, with revisions', async () => {
    const first = await client.put('color', 'blue');
    const second = await client.put(Buffer.from([0, 1, 0xff]), Buffer.from([9, 0, 9]));
    assert.equal(second.header.revision, first.header.revision + 1);
    assert.equal(second.header.memberId, 2n ** 63n + 5n);
    const kv = await client.get('color');
    assert.equal(text(kv?.value), 'blue');
    assert.equal(kv?.modRevision, first.header.revision);
    assert.equal(kv?.version, 1);
    const binary = await client.get(new Uint8Array([0, 1, 0xff]));
    assert.deepEqual([...(binary?.value ?? [])], [9, 0, 9]);
    assert.equal(await client.get('missing'), undefined);
    const old = await client.put('color', 'red', { prevKv: true });
    assert.equal(text(old.prevKv?.value), 'blue');
  });

  it('reads prefixes with limit, sort, count and keys-only, and deletes them', async () => {
    for (const name of ['b', 'a', 'c']) await client.put(`dir/${name}`, name.toUpperCase());
    await client.put('dir0', 'outside');
    const all = await client.range('dir/', { prefix: true });
    assert.deepEqual(
      all.kvs.map((kv) => text(kv.key)),
      ['dir/a', 'dir/b', 'dir/c'],
    );
    const limited = await client.range('dir/', { prefix: true, limit: 2, sortOrder: 'descend' });
    assert.deepEqual(
      limited.kvs.map((kv) => text(kv.key)),
      ['dir/c', 'dir/b'],
    );
    assert.equal(limited.more, true);
    assert.equal(limited.count, 3);
    const keysOnly = await client.range('dir/', { prefix: true, keysOnly: true });
    assert.equal(keysOnly.kvs[0]?.value.length, 0);
    const counted = await client.range('dir/', { prefix: true, countOnly: true });
    assert.equal(counted.count, 3);
    assert.equal(counted.kvs.length, 0);
    const deleted = await client.delete('dir/', { prefix: true, prevKv: true });
    assert.equal(deleted.deleted, 3);
    assert.deepEqual(deleted.prevKvs.map((kv) => text(kv.value)).sort(), ['A', 'B', 'C']);
    assert.equal((await client.range('dir', { prefix: true })).count, 1);
  });

  it('runs a compare-and-swap txn on both branches', async () => {
    await client.put('cas', 'v1');
    const swapped = await client
      .txn()
      .if(compare('cas').value('=', 'v1'), compare('cas').version('>', 0))
      .then(op.put('cas', 'v2'), op.get('cas'))
      .else(op.get('cas'))
      .commit();
    assert.equal(swapped.succeeded, true);
    const read = swapped.responses[1];
    assert.equal(read?.type, 'range');
    assert.equal(read?.type === 'range' ? text(read.response.kvs[0]?.value) : '', 'v2');
    const refused = await client
      .txn()
      .if(compare('cas').value('=', 'v1'))
      .then(op.put('cas', 'v3'))
      .else(op.get('cas'))
      .commit();
    assert.equal(refused.succeeded, false);
    const current = refused.responses[0];
    assert.equal(current?.type === 'range' ? text(current.response.kvs[0]?.value) : '', 'v2');
    assert.equal(text((await client.get('cas'))?.value), 'v2');
  });

  it('refuses to be awaited like a promise', async () => {
    const builder = client.txn().if(compare('cas').version('=', 0));
    const awaited: unknown = builder;
    await assert.rejects(async () => await awaited, /call commit\(\) to run the txn/);
  });

  it('reports compaction and future revisions as typed errors with etcd messages', async () => {
    const first = await client.put('history', 'one');
    const second = await client.put('history', 'two');
    assert.equal(
      text((await client.get('history', { revision: first.header.revision }))?.value),
      'one',
    );
    await client.compact(second.header.revision);
    const compacted = await client
      .get('history', { revision: first.header.revision })
      .catch((e) => e);
    assert.ok(compacted instanceof ShoalError);
    assert.equal(compacted.code, 'OUT_OF_RANGE');
    assert.equal(compacted.reason, 'compacted');
    assert.equal(compacted.message, 'etcdserver: mvcc: required revision has been compacted');
    const future = await client
      .get('history', { revision: second.header.revision + 1000 })
      .catch((e) => e);
    assert.equal(future.reason, 'futureRevision');
    const empty = await client.put('', 'x').catch((e) => e);
    assert.equal(empty.code, 'INVALID_ARGUMENT');
    assert.equal(empty.message, 'etcdserver: key is not provided');
  });

  it('answers status, member list and per-method counters', async () => {
    const status = await client.status();
    assert.equal(status.leader, 2n ** 63n + 5n);
    assert.equal(status.header.memberId, status.leader);
    assert.equal(await client.leaderEndpoint(), server.address);
    const members = await client.memberList();
    assert.equal(members.members[0]?.name, 'one');
    const before = (await client.stats(server.address)).requests.put ?? 0;
    await client.put('counted', 'x');
    const afterStats = await client.stats(server.address);
    assert.equal(afterStats.requests.put, before + 1);
    assert.equal(afterStats.memberId, 2n ** 63n + 5n);
  });
});

describe('leases', () => {
  it('grants, attaches, renews, reports and revokes a lease', async () => {
    const granted = await client.leaseGrant(60);
    assert.ok(granted.id > 0n);
    assert.equal(granted.ttlSeconds, 60);
    await client.put('leased', 'x', { lease: granted.id });
    assert.equal((await client.get('leased'))?.lease, granted.id);
    const renewed = await client.leaseKeepAlive(granted.id);
    assert.equal(renewed.ttlSeconds, 60);
    const ttl = await client.leaseTimeToLive(granted.id, { keys: true });
    assert.equal(ttl.grantedTtlSeconds, 60);
    assert.deepEqual(ttl.keys.map(text), ['leased']);
    await client.leaseRevoke(granted.id);
    assert.equal(await client.get('leased'), undefined);
    assert.equal((await client.leaseKeepAlive(granted.id)).ttlSeconds, 0);
    const gone = await client.leaseRevoke(granted.id).catch((e) => e);
    assert.equal(gone.code, 'NOT_FOUND');
    assert.equal(gone.message, 'etcdserver: requested lease not found');
  });
});

describe('watch', () => {
  /** Collects `count` events from a watch, bounded by a deadline that fails the test. */
  async function take(watch: Watch, count: number): Promise<WatchEvent[]> {
    const events: WatchEvent[] = [];
    const timer = setTimeout(() => watch.cancel(), 10_000);
    try {
      for await (const batch of watch) {
        events.push(...batch.events);
        if (events.length >= count) break;
      }
    } finally {
      clearTimeout(timer);
    }
    assert.equal(events.length, count, 'watch ended before delivering every event');
    return events;
  }

  it('delivers live puts and deletes on a prefix, with previous values', async () => {
    const watch = client.watch('w/', { prefix: true, prevKv: true });
    const events = take(watch, 3);
    // The watch starts after the revision current when it was created: wait for that first.
    await watch.started;
    await client.put('w/a', '1');
    await client.put('outside', 'x');
    await client.put('w/a', '2');
    await client.delete('w/a');
    const seen = await events;
    assert.deepEqual(
      seen.map(
        (e) => `${e.type} ${text(e.kv.key)} ${text(e.kv.value)} prev=${text(e.prevKv?.value)}`,
      ),
      ['put w/a 1 prev=', 'put w/a 2 prev=1', 'delete w/a  prev=2'],
    );
  });

  it('replays history from a start revision, in order and exactly once', async () => {
    const first = await client.put('h/0', 'x');
    for (let i = 1; i < 5; i++) await client.put(`h/${i}`, 'x');
    const events = await take(
      client.watch('h/', { prefix: true, startRevision: first.header.revision }),
      5,
    );
    assert.deepEqual(
      events.map((e) => text(e.kv.key)),
      ['h/0', 'h/1', 'h/2', 'h/3', 'h/4'],
    );
    assert.deepEqual(
      events.map((e) => e.kv.modRevision),
      [0, 1, 2, 3, 4].map((i) => first.header.revision + i),
    );
  });

  it('ends with a compacted error when the start revision is gone', async () => {
    const watch = client.watch('history', { startRevision: 1 });
    const error = await (async () => {
      for await (const _ of watch) return undefined;
    })().catch((e: unknown) => e);
    assert.ok(error instanceof ShoalError);
    assert.equal(error.reason, 'compacted');
  });
});

describe('bad input to the native service', () => {
  it('refuses malformed requests with errors naming the field', async () => {
    const raw = new RpcClient(server.address);
    // The stub is typed; the casts send what a buggy or hostile client could put on the wire.
    const stub = raw.stub(nativeKv) as unknown as Record<string, (r: unknown) => Promise<unknown>>;
    try {
      const cases: [string, unknown, RegExp][] = [
        ['put', { key: 'text-not-bytes', value: Buffer.from('v') }, /put\.key must be bytes/],
        ['put', 42, /put must be a map/],
        ['put', { key: Buffer.from('k'), lease: -1 }, /put\.lease must be a 64-bit/],
        [
          'range',
          { key: Buffer.from('k'), limit: 1.5 },
          /range\.limit must be a non-negative integer/,
        ],
        [
          'range',
          { key: Buffer.from('k'), sortOrder: 'sideways' },
          /range\.sortOrder must be one of/,
        ],
        [
          'txn',
          { compare: [{ result: 'equal', key: Buffer.from('k'), target: 'colour' }] },
          /txn\.compare\[0\]\.target/,
        ],
        [
          'txn',
          { success: [{ type: 'put', request: { key: 5 } }] },
          /txn\.success\[0\]\.request\.key must be bytes/,
        ],
        ['txn', { success: 'all' }, /txn\.success must be an array/],
        ['compact', { revision: -3 }, /compact\.revision must be a non-negative integer/],
      ];
      for (const [method, request, message] of cases) {
        const error = await stub[method]!(request).catch((e: unknown) => e);
        assert.ok(error instanceof RpcError, `${method} ${JSON.stringify(String(request))}`);
        assert.equal(error.code, 'INVALID_ARGUMENT');
        assert.match(error.message, message);
      }
      let nested: unknown = { success: [{ type: 'put', request: { key: Buffer.from('k') } }] };
      for (let i = 0; i < 20; i++) nested = { success: [{ type: 'txn', request: nested }] };
      const deep = await stub.txn!(nested).catch((e: unknown) => e);
      assert.match((deep as Error).message, /nest at most/);
      // The member still serves well-formed requests afterwards.
      assert.equal(text((await client.get('cas'))?.value), 'v2');
    } finally {
      await raw.close(0);
    }
  });
});

describe('request size limit', () => {
  it('refuses writes above --max-request-bytes, each put of a batch on its own', async () => {
    const member = await startNativeServer({ backend, logger: silent, maxRequestBytes: 1024 });
    const limited = new ShoalClient({ endpoints: [member.address] });
    try {
      const tooLarge = async (write: Promise<unknown>) => {
        const error = await write.then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.ok(error instanceof ShoalError, 'refused');
        assert.equal(error.code, 'INVALID_ARGUMENT');
        assert.equal(error.message, 'etcdserver: request is too large');
      };
      await tooLarge(limited.put('big', Buffer.alloc(2000)));
      await limited.put('fits', Buffer.alloc(1000));
      const [big, small] = await Promise.allSettled([
        limited.put('big-in-batch', Buffer.alloc(1500)),
        limited.put('small-in-batch', 'ok'),
      ]);
      assert.equal(member.service.requests.putBatch, 1, 'both puts went as one batch');
      await tooLarge(big.status === 'rejected' ? Promise.reject(big.reason) : Promise.resolve());
      assert.equal(small.status, 'fulfilled');
      await tooLarge(
        limited
          .txn()
          .then(op.put('t1', Buffer.alloc(600)), op.put('t2', Buffer.alloc(600)))
          .commit(),
      );
      assert.equal(await client.get('big'), undefined);
      assert.equal(await client.get('big-in-batch'), undefined);
      assert.equal(await client.get('t1'), undefined);
      assert.equal((await client.get('fits'))?.value.length, 1000);
    } finally {
      await limited.close();
      await member.close();
    }
  });
});

describe('retries and load balancing', () => {
  it('retries a write that could not be sent onto a member that answers', async () => {
    const [deadPort] = await freePorts(1);
    const failover = new ShoalClient({ endpoints: [`127.0.0.1:${deadPort}`, server.address] });
    try {
      const putsBefore = server.service.requests.put!;
      const response = await failover.put('failover', 'ok');
      assert.ok(response.header.revision > 0);
      assert.equal(server.service.requests.put, putsBefore + 1);
      assert.equal(text((await failover.get('failover'))?.value), 'ok');
    } finally {
      await failover.close();
    }
  });

  it('retries a write refused for want of a leader, but not one that timed out', async () => {
    let noLeaderLeft = 2;
    let putCalls = 0;
    const flaky = wrap(backend, {
      put: async (request) => {
        putCalls++;
        if (noLeaderLeft-- > 0) throw etcdErrors.noLeader();
        return backend.put(request);
      },
      txn: async () => {
        throw etcdErrors.timeout();
      },
    });
    const flakyServer = await startNativeServer({ backend: flaky, logger: silent });
    const flakyClient = new ShoalClient({ endpoints: [flakyServer.address] });
    try {
      await flakyClient.put('after-no-leader', 'applied');
      assert.equal(putCalls, 3);
      assert.equal(text((await client.get('after-no-leader'))?.value), 'applied');
      const txnsBefore = flakyServer.service.requests.txn!;
      const error = await flakyClient
        .txn()
        .then(op.put('t', '1'))
        .commit()
        .catch((e) => e);
      assert.ok(error instanceof ShoalError);
      assert.equal(error.code, 'UNAVAILABLE');
      assert.equal(error.message, 'etcdserver: request timed out');
      assert.equal(
        flakyServer.service.requests.txn,
        txnsBefore + 1,
        'a maybe-applied write is not resent',
      );
    } finally {
      await flakyClient.close();
      await flakyServer.close();
    }
  });

  it('names the leader in "not leader" answers, and the client follows the hint', async () => {
    let refusals = 1;
    const redirecting = wrap(backend, {
      put: async (request) => {
        if (refusals-- > 0) throw etcdErrors.notLeader();
        return backend.put(request);
      },
    });
    const member = await startNativeServer({ backend: redirecting, logger: silent });
    const raw = new RpcClient(member.address);
    const follower = new ShoalClient({ endpoints: [member.address] });
    try {
      const error = await raw
        .stub(nativeKv)
        .put({ key: Buffer.from('hinted') })
        .catch((e: unknown) => e);
      assert.ok(error instanceof RpcError);
      assert.equal(error.code, 'FAILED_PRECONDITION');
      // The backend's member list names the leader's peer URL http://127.0.0.1:1.
      assert.deepEqual(parseLeaderHint(error.message), {
        id: 2n ** 63n + 5n,
        address: '127.0.0.1:1',
      });
      refusals = 1;
      // The client tries the hinted address (refused: nothing listens there), then rediscovers.
      await follower.put('hinted', 'y');
      assert.equal(text((await client.get('hinted'))?.value), 'y');
      assert.ok(follower.endpoints.includes('127.0.0.1:1'));
    } finally {
      await raw.close(0);
      await follower.close();
      await member.close();
    }
  });

  it('spreads serializable reads over every member and keeps linearizable ones on the leader', async () => {
    // Two more "members" serving the same store: the leader is the one whose status names itself.
    const followerBackend = (memberId: bigint) =>
      wrap(backend, {
        status: async () => {
          const status = await backend.status();
          return { ...status, header: { ...status.header, memberId } };
        },
      });
    const followers = [
      await startNativeServer({ backend: followerBackend(11n), logger: silent }),
      await startNativeServer({ backend: followerBackend(12n), logger: silent }),
    ];
    const all = [followers[0]!, server, followers[1]!];
    const spread = new ShoalClient({ endpoints: all.map((s) => s.address) });
    try {
      assert.equal(await spread.leaderEndpoint(), server.address);
      const before = all.map((s) => s.service.requests.range!);
      const reads = 30;
      for (let i = 0; i < reads; i++) await spread.get('cas', { serializable: true });
      for (let i = 0; i < 5; i++) await spread.get('cas');
      const served = all.map((s, i) => s.service.requests.range! - before[i]!);
      assert.deepEqual(served, [10, 10 + 5, 10]);
    } finally {
      await spread.close();
      for (const follower of followers) await follower.close();
    }
  });
});

describe('put batching', () => {
  it('sends the puts of one turn as one call, each with its own revision and answer', async () => {
    await client.leaderEndpoint();
    const before = { ...server.service.requests };
    const missingLease = 0x5eedn;
    const puts = Array.from({ length: 50 }, (_, i) =>
      i === 17
        ? client.put('batched/17', 'x', { lease: missingLease })
        : client.put(`batched/${i}`, `value-${i}`),
    );
    const settled = await Promise.allSettled(puts);
    assert.equal(server.service.requests.putBatch, before.putBatch! + 1, 'one putBatch call');
    assert.equal(server.service.requests.put, before.put! + 50, 'fifty puts');
    const failed = settled[17]!;
    assert.equal(failed.status, 'rejected');
    assert.ok(failed.reason instanceof ShoalError);
    assert.equal(failed.reason.code, 'NOT_FOUND');
    assert.equal(failed.reason.message, 'etcdserver: requested lease not found');
    const revisions = settled
      .filter((s) => s.status === 'fulfilled')
      .map((s) => s.value.header.revision);
    assert.equal(revisions.length, 49);
    // Each put was applied on its own, in the order it was issued.
    for (let i = 1; i < revisions.length; i++) assert.equal(revisions[i], revisions[0]! + i);
    assert.equal(text((await client.get('batched/49'))?.value), 'value-49');
    assert.equal(await client.get('batched/17'), undefined);
  });

  it('sends a lone put as a plain put, and cuts a batch at its count and byte limits', async () => {
    await client.leaderEndpoint();
    const before = { ...server.service.requests };
    await client.put('alone', '1');
    assert.equal(server.service.requests.putBatch, before.putBatch);
    assert.equal(server.service.requests.put, before.put! + 1);
    const count = PUT_BATCH_PUTS_MAX + 1;
    await Promise.all(Array.from({ length: count }, (_, i) => client.put(`cut/${i}`, 'v')));
    // The first PUT_BATCH_PUTS_MAX leave as one batch, the last alone.
    assert.equal(server.service.requests.putBatch, before.putBatch! + 1);
    assert.equal(server.service.requests.put, before.put! + 1 + count);
    // Two puts whose values together pass PUT_BATCH_BYTES_MAX leave one by one.
    const half = Buffer.alloc(PUT_BATCH_BYTES_MAX / 2 + 1, 0x62);
    await Promise.all([client.put('large/1', half), client.put('large/2', half)]);
    assert.equal(server.service.requests.putBatch, before.putBatch! + 1);
    assert.equal(server.service.requests.put, before.put! + 3 + count);
    assert.equal((await client.get('large/2'))?.value.length, half.length);
  });

  it('does not resend the puts of a batch that timed out', async () => {
    let writes = 0;
    const stalled = wrap(backend, {
      putBatch: () => {
        writes++;
        return new Promise(() => {});
      },
    });
    const member = await startNativeServer({ backend: stalled, logger: silent });
    const impatient = new ShoalClient({ endpoints: [member.address], timeoutMs: 200 });
    try {
      await impatient.leaderEndpoint();
      const results = await Promise.allSettled([
        impatient.put('slow/1', 'a'),
        impatient.put('slow/2', 'b'),
        impatient.put('slow/3', 'c'),
      ]);
      for (const result of results) {
        assert.equal(result.status, 'rejected');
        assert.ok(result.reason instanceof ShoalError);
        assert.equal(result.reason.code, 'DEADLINE_EXCEEDED');
      }
      assert.equal(member.service.requests.putBatch, 1);
      assert.equal(writes, 1, 'the three puts went as one write, and it was not resent');
    } finally {
      await impatient.close();
      await member.close();
    }
  });

  it('refuses a malformed batch whole and a malformed put alone', async () => {
    const raw = new RpcClient(server.address);
    const stub = raw.stub(nativeKv) as unknown as Record<string, (r: unknown) => Promise<unknown>>;
    try {
      for (const request of [{ puts: [] }, { puts: 'many' }, 7]) {
        const error = await stub.putBatch!(request).catch((e: unknown) => e);
        assert.ok(error instanceof RpcError);
        assert.equal(error.code, 'INVALID_ARGUMENT');
        assert.match(error.message, request === 7 ? /putBatch must be a map/ : /putBatch\.puts/);
      }
      const tooMany = Array.from({ length: PUT_BATCH_PUTS_MAX + 1 }, () => ({
        key: Buffer.from('k'),
      }));
      const refused = await stub.putBatch!({ puts: tooMany }).catch((e: unknown) => e);
      assert.match((refused as Error).message, /a list of 1 to 1024 puts/);
      const heavy = [0, 1].map(() => ({ key: Buffer.from('k'), value: Buffer.alloc(600_000) }));
      const tooHeavy = await stub.putBatch!({ puts: heavy }).catch((e: unknown) => e);
      assert.ok(tooHeavy instanceof RpcError);
      assert.match(tooHeavy.message, /putBatch\.puts carry 1200002 key and value bytes/);
      const odd = (await stub.putBatch!({
        puts: [null, [], new Uint8Array(1)],
      })) as PutBatchResponse;
      assert.deepEqual(
        odd.results.map((r) => ('error' in r ? r.error.message : 'ok')),
        [0, 1, 2].map((i) => `shoal: putBatch.puts[${i}] must be a map`),
      );
      const answer = (await stub.putBatch!({
        puts: [{ key: 5 }, { key: Buffer.from('mixed'), value: Buffer.from('ok') }, {}],
      })) as PutBatchResponse;
      assert.equal(answer.results.length, 3);
      const [bad, good, empty] = answer.results;
      assert.ok(bad !== undefined && 'error' in bad);
      assert.equal(bad.error.status, Status.INVALID_ARGUMENT);
      assert.match(bad.error.message, /putBatch\.puts\[0\]\.key must be bytes/);
      assert.ok(good !== undefined && 'header' in good && good.header.revision > 0);
      assert.ok(empty !== undefined && 'error' in empty);
      assert.match(empty.error.message, /putBatch\.puts\[2\]\.key must be bytes/);
      assert.equal(text((await client.get('mixed'))?.value), 'ok');
    } finally {
      await raw.close(0);
    }
  });
});

describe("put batching keeps a plain put's behaviour", () => {
  it('does not let a later delete overtake a batched put', async () => {
    await client.leaderEndpoint();
    await Promise.resolve();
    // Issued inside a promise reaction, where nextTick runs only after every microtask.
    const put = client.put('ordered', 'x');
    const removed = client.delete('ordered');
    const [putResponse, deleteResponse] = await Promise.all([put, removed]);
    assert.equal(deleteResponse.deleted, 1);
    assert.ok(deleteResponse.header.revision > putResponse.header.revision);
    assert.equal(await client.get('ordered'), undefined);
  });

  it('applies the puts of one batch in the order they were issued', async () => {
    await client.leaderEndpoint();
    const before = server.service.requests.putBatch!;
    const writes = ['first', 'second', 'third'].map((value) =>
      client.put('in-order', value, { prevKv: true }),
    );
    const [first, second, third] = await Promise.all(writes);
    assert.equal(server.service.requests.putBatch, before + 1, 'one batch');
    // Each put saw the one issued before it as its previous value.
    assert.equal(text(second!.prevKv?.value), 'first');
    assert.equal(text(third!.prevKv?.value), 'second');
    assert.ok(first!.header.revision < second!.header.revision);
    assert.equal(text((await client.get('in-order'))?.value), 'third');
  });

  it('fails only the put that cannot be encoded, not its neighbours', async () => {
    await client.leaderEndpoint();
    const [bad, good] = await Promise.allSettled([
      client.putRequest({ key: Buffer.from('lease-too-big'), lease: 2n ** 70n }),
      client.put('beside-the-bad-one', 'fine'),
    ]);
    assert.equal(bad.status, 'rejected');
    assert.ok(bad.reason instanceof ShoalError);
    assert.equal(bad.reason.code, 'INVALID_ARGUMENT');
    assert.equal(good.status, 'fulfilled');
    assert.equal(text((await client.get('beside-the-bad-one'))?.value), 'fine');
  });

  it('falls back to single puts on a member that has no putBatch', async () => {
    const { putBatch: _, ...olderMethods } = nativeKv.methods;
    const olderKv = defineService({ name: nativeKv.name, methods: olderMethods });
    const older = new RpcServer({ logger: silent });
    const service = createNativeKvService({ backend, logger: silent });
    older.addService(olderKv, service.handlers);
    const { port } = await older.listen({ host: '127.0.0.1', port: 0 });
    const olderClient = new ShoalClient({ endpoints: [`127.0.0.1:${port}`] });
    try {
      await olderClient.leaderEndpoint();
      for (let round = 0; round < 2; round++) {
        const puts = await Promise.all(
          [0, 1, 2].map((i) => olderClient.put(`older/${round}/${i}`, 'v')),
        );
        assert.equal(puts.length, 3);
      }
      assert.equal(service.requests.put, 6);
      assert.equal(text((await client.get('older/1/2'))?.value), 'v');
    } finally {
      await olderClient.close();
      await older.close();
    }
  });

  it('rejects each put of a malformed answer, with no unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    const hostile = new RpcServer({ logger: silent });
    const real = createNativeKvService({ backend, logger: silent }).handlers;
    hostile.addService(nativeKv, {
      ...real,
      putBatch: () =>
        ({ results: [{ error: null }, { error: 5 }, null] }) as unknown as PutBatchResponse,
    });
    const { port } = await hostile.listen({ host: '127.0.0.1', port: 0 });
    const victim = new ShoalClient({ endpoints: [`127.0.0.1:${port}`] });
    try {
      await victim.leaderEndpoint();
      const settled = await Promise.allSettled([0, 1, 2].map((i) => victim.put(`h/${i}`, 'v')));
      for (const result of settled) {
        assert.equal(result.status, 'rejected');
        assert.ok(result.reason instanceof ShoalError);
        assert.equal(result.reason.code, 'UNKNOWN');
        assert.match(result.reason.message, /putBatch answer held/);
      }
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await victim.close();
      await hostile.close();
    }
  });

  it('cancels the puts still waiting when the client closes', async () => {
    const closing = new ShoalClient({ endpoints: [server.address] });
    await closing.leaderEndpoint();
    const before = server.service.requests.put!;
    const waiting = closing.put('never-sent', 'x').catch((e: unknown) => e);
    await closing.close();
    const error = await waiting;
    assert.ok(error instanceof ShoalError);
    assert.equal(error.code, 'CANCELLED');
    assert.equal(error.message, 'the client is closed');
    assert.equal(server.service.requests.put, before);
  });
});
