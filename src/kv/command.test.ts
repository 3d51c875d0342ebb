/**
 * Tests of the raft-entry encoding of key-value commands: round trips (bytes, int64 lease ids,
 * nested transactions) and rejection of malformed or hostile input.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Packr } from 'msgpackr';
import { decodeKvRequest, encodeKvRequest, KvCommandError } from './command.js';
import type { KvRequest } from './types.js';

const b = (text: string): Buffer => Buffer.from(text);

test('commands round-trip, lease ids as bigint', () => {
  const requests: KvRequest[] = [
    {
      put: {
        key: b('k\0'),
        value: Buffer.from([0, 255]),
        lease: 0x7fff_ffff_ffff_fff1n,
        prevKv: true,
      },
    },
    {
      range: {
        key: b('a'),
        rangeEnd: Buffer.from([0]),
        revision: 2 ** 40,
        sortOrder: 2,
        sortTarget: 4,
      },
    },
    {
      txn: {
        compare: [{ key: b('a'), target: 4, result: 3, lease: 5n }],
        success: [
          { requestTxn: { success: [{ requestDeleteRange: { key: b('x'), prevKv: true } }] } },
        ],
        failure: [{ requestPut: { key: b('y'), value: b('z'), lease: 7n } }],
      },
    },
    { compaction: { revision: 12, physical: true } },
    { leaseGrant: { ID: 42n, TTL: 60 } },
    { leaseRevoke: { ID: -3n } },
  ];
  for (const request of requests)
    assert.deepEqual(decodeKvRequest(encodeKvRequest(request)), request);
});

test('small lease ids sent as numbers by other encoders become bigint', () => {
  const packr = new Packr({ useRecords: false });
  const decoded = decodeKvRequest(packr.pack({ put: { key: b('k'), lease: 5 } }));
  assert.deepEqual(decoded, { put: { key: b('k'), lease: 5n } });
});

test('undefined fields are dropped so the store sees exactly one request', () => {
  const decoded = decodeKvRequest(
    encodeKvRequest({
      range: undefined,
      put: { key: b('k'), value: undefined },
    } as unknown as KvRequest),
  );
  assert.deepEqual(Object.keys(decoded), ['put']);
  assert.deepEqual(decoded, { put: { key: b('k') } });
});

test('malformed commands are rejected with a KvCommandError', () => {
  const packr = new Packr({ useRecords: false });
  const bad: unknown[] = [
    null,
    [],
    {},
    { put: { key: b('k') }, range: { key: b('k') } },
    { put: { key: 'text' } },
    { put: { value: b('v') } },
    { put: { key: b('k'), lease: 1.5 } },
    { put: { key: b('k'), extra: 1 } },
    { range: { key: b('k'), sortOrder: 3 } },
    { range: { key: b('k'), revision: 2 ** 60 } },
    { txn: { success: [{}] } },
    { txn: { success: [{ requestPut: { key: b('a') }, requestRange: { key: b('a') } }] } },
    { txn: { compare: [{ key: b('a'), target: 9, result: 0 }] } },
    { leaseGrant: { ID: 1n } },
    { unknown: {} },
  ];
  for (const value of bad) {
    assert.throws(
      () => decodeKvRequest(packr.pack(value)),
      KvCommandError,
      JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? `${v}` : v)),
    );
  }
  assert.throws(() => decodeKvRequest(new Uint8Array([0xc1])), KvCommandError);
});

test('nesting depth and op count are bounded', () => {
  let txn: Record<string, unknown> = { success: [] };
  for (let i = 0; i < 20; i++) txn = { success: [{ requestTxn: txn }] };
  assert.throws(() => decodeKvRequest(encodeKvRequest({ txn } as KvRequest)), /deeper/);
  const many = Array.from({ length: 10_001 }, () => ({ requestRange: { key: b('a') } }));
  assert.throws(
    () => decodeKvRequest(encodeKvRequest({ txn: { success: many } })),
    /over 10000 ops/,
  );
});
