/**
 * Robustness: random and mutated protobuf bodies sent to every unary method of the etcd API must
 * each get an answer (a response or a gRPC status), never crash the member or leave it unable to
 * serve. Mutations start from valid requests so they reach deep into decoding and validation.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { EtcdTestClient } from '../../../test/support/etcd-client.js';
import { seededRandom } from '../../../test/support/register-workload.js';
import { type RunningShoal, startShoal } from '../../../test/support/shoal-server.js';
import { loadEtcdRoot } from './codec.js';

let shoal: RunningShoal;
before(async () => {
  shoal = await startShoal();
});
after(async () => {
  await shoal.close();
});

const root = loadEtcdRoot();
const k = (text: string) => Buffer.from(text);
/** One valid request per method, the seeds the mutations start from. */
const seeds: Record<string, [string, Record<string, unknown>]> = {
  'KV/Range': [
    'RangeRequest',
    { key: k('a'), rangeEnd: k('z'), limit: 5, sortOrder: 2, sortTarget: 4 },
  ],
  'KV/Put': ['PutRequest', { key: k('fuzz'), value: k('v'), prevKv: true }],
  'KV/DeleteRange': ['DeleteRangeRequest', { key: k('fuzz'), rangeEnd: k('fuzz0'), prevKv: true }],
  'KV/Txn': [
    'TxnRequest',
    {
      compare: [{ key: k('fuzz'), target: 3, result: 0, value: k('v'), rangeEnd: k('fuzz0') }],
      success: [
        { requestPut: { key: k('fuzz'), value: k('w') } },
        { requestRange: { key: k('a') } },
      ],
      failure: [{ requestTxn: { success: [{ requestDeleteRange: { key: k('fuzz') } }] } }],
    },
  ],
  'KV/Compact': ['CompactionRequest', { revision: 3 }],
  'Lease/LeaseGrant': ['LeaseGrantRequest', { TTL: 5, ID: 77 }],
  'Lease/LeaseRevoke': ['LeaseRevokeRequest', { ID: 77 }],
  'Lease/LeaseTimeToLive': ['LeaseTimeToLiveRequest', { ID: 77, keys: true }],
  'Lease/LeaseLeases': ['LeaseLeasesRequest', {}],
  'Cluster/MemberList': ['MemberListRequest', {}],
  'Maintenance/Status': ['StatusRequest', {}],
  'Maintenance/HashKV': ['HashKVRequest', { revision: 2 }],
  'Maintenance/Alarm': ['AlarmRequest', { action: 0 }],
};

function mutate(bytes: Uint8Array, random: () => number): Buffer {
  const out = Buffer.from(bytes);
  const kind = random();
  if (kind < 0.3) {
    // Flip a few bytes.
    for (let i = 0; i < 1 + Math.floor(random() * 4); i++) {
      if (out.length > 0) out[Math.floor(random() * out.length)] = Math.floor(random() * 256);
    }
    return out;
  }
  if (kind < 0.5) return out.subarray(0, Math.floor(random() * out.length)); // truncate
  if (kind < 0.7) {
    // Splice in random bytes.
    const at = Math.floor(random() * (out.length + 1));
    const junk = Buffer.from(
      Array.from({ length: 1 + Math.floor(random() * 12) }, () => Math.floor(random() * 256)),
    );
    return Buffer.concat([out.subarray(0, at), junk, out.subarray(at)]);
  }
  return Buffer.from(
    Array.from({ length: Math.floor(random() * 40) }, () => Math.floor(random() * 256)),
  );
}

test('mutated requests to every method are answered and the member keeps serving', async () => {
  const client = new grpc.Client(`127.0.0.1:${shoal.port}`, grpc.credentials.createInsecure());
  const random = seededRandom(424242);
  const codes = new Map<number, number>();
  try {
    for (const [method, [typeName, value]] of Object.entries(seeds)) {
      const type = root.lookupType(`etcdserverpb.${typeName}`);
      const valid = type.encode(type.fromObject(value)).finish();
      for (let i = 0; i < 60; i++) {
        const body = mutate(valid, random);
        const code = await new Promise<number>((resolve) => {
          client.makeUnaryRequest(
            `/etcdserverpb.${method}`,
            (b: Buffer) => b,
            (b: Buffer) => b,
            body,
            { deadline: new Date(Date.now() + 10_000) },
            (error) => resolve(error ? error.code : 0),
          );
        });
        assert.notEqual(code, grpc.status.DEADLINE_EXCEEDED, `${method} did not answer`);
        assert.notEqual(code, grpc.status.UNAVAILABLE, `${method}: the member went away`);
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
    }
  } finally {
    client.close();
  }
  // UNKNOWN is what an unexpected exception turns into: every failure must be a designed one.
  assert.equal(codes.get(grpc.status.UNKNOWN), undefined, JSON.stringify([...codes]));
  // Both outcomes must occur, or the mutations never reached past the decoder.
  assert.ok((codes.get(0) ?? 0) > 0, `no request succeeded: ${JSON.stringify([...codes])}`);
  assert.ok(
    [...codes.keys()].some((code) => code !== 0),
    'no request failed',
  );
  const check = new EtcdTestClient(`127.0.0.1:${shoal.port}`);
  try {
    const status = await check.status();
    assert.ok(Number((status.header as { revision: string }).revision) >= 1);
  } finally {
    check.close();
  }
});
