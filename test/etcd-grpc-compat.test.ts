/**
 * gRPC-level compatibility: requests etcdctl cannot express (invalid enums, malformed protobuf,
 * duplicate keys in a txn, empty ops, oversized messages, 64-bit lease ids, count-only reads) sent
 * to real etcd and to shoal; both must answer with the same status code and message, or the same
 * response once per-server identity is masked. Each server must keep serving afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { EtcdTestClient, type Message } from './support/etcd-client.js';
import { etcdInstalled, type RunningEtcd, startEtcd } from './support/etcd-process.js';
import { type RunningShoalMember, startShoalMember } from './support/shoal-server.js';

type Outcome = { ok: true; response: unknown } | { ok: false; code: number; details: string };

const identity = new Set(['clusterId', 'memberId', 'raftTerm']);
function mask(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(mask);
  if (value && typeof value === 'object' && !(value instanceof Buffer)) {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, identity.has(k) ? '<id>' : mask(v)]),
    );
  }
  return value;
}

async function outcome(call: () => Promise<Message>): Promise<Outcome> {
  try {
    return { ok: true, response: mask(await call()) };
  } catch (error) {
    const e = error as grpc.ServiceError;
    return { ok: false, code: e.code, details: e.details };
  }
}

const key = (text: string) => Buffer.from(text);
const put = (k: string, v = 'v') => ({ requestPut: { key: key(k), value: key(v) } });

interface Case {
  name: string;
  run: (client: EtcdTestClient) => Promise<Message>;
  /** Compare only the status code: the transport's wording differs between Go and Node. */
  codeOnly?: boolean;
  /** What etcd must answer, so the case provably exercises the condition. */
  expect: { code: number; details?: string } | 'ok';
}

const cases: Case[] = [
  { name: 'seed a key', run: (c) => c.put({ key: key('k1'), value: key('one') }), expect: 'ok' },
  { name: 'seed another', run: (c) => c.put({ key: key('k2'), value: key('two') }), expect: 'ok' },
  {
    name: 'count-only range',
    run: (c) => c.range({ key: key('k'), rangeEnd: key('l'), countOnly: true }),
    expect: 'ok',
  },
  {
    name: 'range with revision filters',
    run: (c) => c.range({ key: key('k'), rangeEnd: key('l'), minModRevision: 3 }),
    expect: 'ok',
  },
  {
    name: 'put with ignore_value and a value',
    run: (c) => c.put({ key: key('k1'), value: key('x'), ignoreValue: true }),
    expect: { code: 3, details: 'etcdserver: value is provided' },
  },
  {
    name: 'put ignore_value on a missing key',
    run: (c) => c.put({ key: key('nope'), ignoreValue: true }),
    expect: { code: 3, details: 'etcdserver: key not found' },
  },
  {
    name: 'put with a 63-bit lease that does not exist',
    run: (c) => c.put({ key: key('k3'), value: key('x'), lease: '4611686018427387905' }),
    expect: { code: 5, details: 'etcdserver: requested lease not found' },
  },
  {
    name: 'delete with empty key',
    run: (c) => c.deleteRange({ key: Buffer.alloc(0) }),
    expect: { code: 3, details: 'etcdserver: key is not provided' },
  },
  {
    name: 'txn putting one key twice',
    run: (c) => c.txn({ success: [put('d'), put('d')] }),
    expect: { code: 3, details: 'etcdserver: duplicate key given in txn request' },
  },
  {
    name: 'txn putting inside a range it deletes',
    run: (c) =>
      c.txn({ success: [{ requestDeleteRange: { key: key('a'), rangeEnd: key('z') } }, put('m')] }),
    expect: { code: 3, details: 'etcdserver: duplicate key given in txn request' },
  },
  {
    name: 'txn with a nested txn putting the same key in both branches',
    run: (c) =>
      c.txn({ success: [{ requestTxn: { success: [put('n1')], failure: [put('n1')] } }] }),
    expect: 'ok',
  },
  {
    name: 'txn with too many ops',
    run: (c) => c.txn({ success: Array.from({ length: 129 }, (_, i) => put(`many${i}`)) }),
    expect: { code: 3, details: 'etcdserver: too many operations in txn request' },
  },
  {
    name: 'txn with an empty op',
    run: (c) => c.txn({ success: [{}] }),
    expect: { code: 3, details: 'etcdserver: key not found' },
  },
  {
    name: 'txn comparing every key of a range',
    run: (c) =>
      c.txn({
        compare: [{ key: key('k'), rangeEnd: key('l'), target: 0, result: 1, version: 0 }],
        success: [{ requestRange: { key: key('k'), rangeEnd: key('l') } }],
      }),
    expect: 'ok',
  },
  {
    name: 'write just above the request limit',
    run: (c) => c.put({ key: key('big'), value: Buffer.alloc(1.5 * 1024 * 1024 + 64) }),
    expect: { code: 3, details: 'etcdserver: request is too large' },
  },
  {
    name: 'message above the transport limit',
    run: (c) => c.put({ key: key('huge'), value: Buffer.alloc(2.5 * 1024 * 1024) }),
    codeOnly: true,
    expect: { code: 8 },
  },
  { name: 'still serving after errors', run: (c) => c.range({ key: key('k1') }), expect: 'ok' },
];

/**
 * Where shoal deliberately differs from etcd 3.4: enum values outside the proto are refused with
 * etcd 3.5's "invalid sort option". etcd 3.4.23 ignores an unknown sort order and crashes (nil
 * pointer panic, process exit) on an unknown sort target, so these run against shoal only.
 */
const shoalOnly: Case[] = [
  {
    name: 'invalid sort order',
    run: (c) => c.range({ key: key('k1'), sortOrder: 9 }),
    expect: { code: 3, details: 'etcdserver: invalid sort option' },
  },
  {
    name: 'invalid sort target',
    run: (c) => c.range({ key: key('k1'), sortTarget: 9 }),
    expect: { code: 3, details: 'etcdserver: invalid sort option' },
  },
];

describe('raw gRPC requests against etcd and shoal', {
  skip: etcdInstalled() ? false : 'etcd is not installed',
}, () => {
  let etcd: RunningEtcd;
  let shoal: RunningShoalMember;
  let etcdClient: EtcdTestClient;
  let shoalClient: EtcdTestClient;

  before(async () => {
    [etcd, shoal] = await Promise.all([startEtcd(), startShoalMember()]);
    etcdClient = new EtcdTestClient(etcd.endpoint);
    shoalClient = new EtcdTestClient(`127.0.0.1:${shoal.port}`);
  });
  after(async () => {
    etcdClient?.close();
    shoalClient?.close();
    await Promise.all([etcd?.stop(), shoal?.close()]);
  });

  test('every case gets the same answer from both', async () => {
    for (const c of cases) {
      const reference = await outcome(() => c.run(etcdClient));
      const actual = await outcome(() => c.run(shoalClient));
      if (c.expect === 'ok')
        assert.equal(reference.ok, true, `${c.name}: etcd ${JSON.stringify(reference)}`);
      else {
        assert.equal(reference.ok, false, c.name);
        if (!reference.ok) {
          assert.equal(reference.code, c.expect.code, `${c.name}: etcd ${reference.details}`);
          if (c.expect.details) assert.equal(reference.details, c.expect.details, c.name);
        }
      }
      if (c.codeOnly && !reference.ok && !actual.ok) {
        assert.equal(actual.code, reference.code, `${c.name}: ${actual.details}`);
      } else {
        assert.deepEqual(actual, reference, c.name);
      }
    }
  });

  test('enum values outside the proto are refused (etcd 3.5 behaviour)', async () => {
    for (const c of shoalOnly) {
      const actual = await outcome(() => c.run(shoalClient));
      assert.deepEqual(actual, { ok: false, ...(c.expect as object) }, c.name);
    }
  });

  test('malformed protobuf is refused with INTERNAL, as etcd does, and the server survives', async () => {
    for (const address of [etcd.endpoint, `127.0.0.1:${shoal.port}`]) {
      const client = new grpc.Client(address, grpc.credentials.createInsecure());
      // Field 1 declared as length-delimited with a length far past the end of the message.
      const garbage = Buffer.from([0x0a, 0xff, 0xff, 0x03, 0x01]);
      const code = await new Promise<number>((resolve) => {
        client.makeUnaryRequest(
          '/etcdserverpb.KV/Range',
          (b: Buffer) => b,
          (b: Buffer) => b,
          garbage,
          (error) => resolve(error ? error.code : 0),
        );
      });
      client.close();
      assert.equal(code, grpc.status.INTERNAL, address);
    }
    const after = await shoalClient.range({ key: key('k1') });
    assert.equal((after.kvs as unknown[]).length, 1);
  });
});
