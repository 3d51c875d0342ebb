/**
 * Tests for the protobuf conversions: 64-bit ids survive the round trip exactly (including values
 * above 2^63 and negative lease ids), revisions are checked numbers, unset fields read as proto3
 * defaults, and malformed values become InvalidArgument errors instead of exceptions elsewhere.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decodeCompare,
  decodeRangeRequest,
  decodeTxnRequest,
  encodeKeyValue,
  encodeMember,
  encodeTxnResponse,
  int64Bigint,
  int64Number,
  loadEtcdRoot,
  type PbMessage,
  txnDepthMax,
  uint64Bigint,
} from './codec.js';
import { EtcdError, GrpcCode } from './errors.js';

const root = loadEtcdRoot();
const roundTrip = (typeName: string, message: PbMessage): PbMessage => {
  const type = root.lookupType(typeName);
  return type.decode(type.encode(message).finish()) as unknown as PbMessage;
};

test('uint64 member ids round-trip exactly, up to 2^64-1', () => {
  for (const id of [0n, 1n, 2n ** 53n + 1n, 2n ** 63n + 5n, 2n ** 64n - 1n]) {
    const decoded = roundTrip(
      'etcdserverpb.Member',
      encodeMember({
        id,
        name: 'm',
        peerUrls: [],
        clientUrls: [],
        isLearner: false,
      }),
    );
    assert.equal(uint64Bigint(decoded, 'ID'), id);
  }
});

test('int64 lease ids round-trip exactly, negative ones included', () => {
  for (const lease of [0n, 7587869245426543n, 2n ** 63n - 1n, -1n, -(2n ** 63n)]) {
    const kv = {
      key: new Uint8Array([1]),
      createRevision: 1,
      modRevision: 2,
      version: 1,
      value: new Uint8Array(),
      lease,
    };
    const decoded = roundTrip('mvccpb.KeyValue', encodeKeyValue(kv));
    assert.equal(int64Bigint(decoded, 'lease'), lease);
    assert.equal(int64Number(decoded, 'modRevision'), 2);
  }
});

test('revisions beyond 2^53 are clamped, keeping their meaning', () => {
  const decoded = roundTrip('etcdserverpb.RangeRequest', {
    key: Buffer.from('k'),
    revision: { low: -1, high: 0x7fffffff },
    limit: { low: 0, high: -2147483648 },
  });
  const request = decodeRangeRequest(decoded);
  assert.equal(request.revision, Number.MAX_SAFE_INTEGER);
  assert.equal(request.limit, Number.MIN_SAFE_INTEGER);
});

test('unset fields read as proto3 defaults', () => {
  const request = decodeRangeRequest(roundTrip('etcdserverpb.RangeRequest', {}));
  assert.deepEqual(request.key, new Uint8Array(0));
  assert.deepEqual(request.rangeEnd, new Uint8Array(0));
  assert.equal(request.limit, 0);
  assert.equal(request.sortOrder, 'none');
  assert.equal(request.sortTarget, 'key');
  assert.equal(request.serializable, false);
});

test("a compare's operand comes from the field matching its target", () => {
  // Target MOD with no operand: compares against zero, as etcd does.
  const compare = decodeCompare(
    roundTrip('etcdserverpb.Compare', { key: Buffer.from('k'), target: 2, result: 1 }),
  );
  assert.deepEqual(compare, {
    result: 'greater',
    key: Buffer.from('k'),
    rangeEnd: new Uint8Array(0),
    target: 'mod',
    modRevision: 0,
  });
  const value = decodeCompare(
    roundTrip('etcdserverpb.Compare', {
      key: Buffer.from('k'),
      target: 3,
      value: Buffer.from('v'),
    }),
  );
  assert.equal(value.target, 'value');
  assert.deepEqual(value.target === 'value' && Buffer.from(value.value), Buffer.from('v'));
});

test('malformed values are InvalidArgument errors', () => {
  const bad = (message: PbMessage) => () => decodeRangeRequest(message);
  const isInvalid = (error: unknown) =>
    error instanceof EtcdError && error.code === GrpcCode.invalidArgument;
  assert.throws(bad({ key: 'a string' }), isInvalid);
  assert.throws(bad({ key: Buffer.from('k'), limit: 1.5 }), isInvalid);
  assert.throws(bad({ key: Buffer.from('k'), keysOnly: 1 }), isInvalid);
  assert.throws(bad({ key: Buffer.from('k'), sortOrder: 7 }), /invalid sort option/);
});

test('txn decoding flags empty ops and bounds nesting', () => {
  const withEmpty = decodeTxnRequest(roundTrip('etcdserverpb.TxnRequest', { success: [{}] }));
  assert.equal(withEmpty.hasEmptyOp, true);
  let nested: PbMessage = { success: [{ requestPut: { key: Buffer.from('k') } }] };
  for (let i = 0; i <= txnDepthMax; i++) nested = { success: [{ requestTxn: nested }] };
  assert.throws(
    () => decodeTxnRequest(roundTrip('etcdserverpb.TxnRequest', nested)),
    /nested deeper/,
  );
});

test('inner txn headers carry only the txn revision, nested txn headers are empty', () => {
  const header = { clusterId: 9n, memberId: 8n, revision: 4, raftTerm: 2n };
  const encoded = encodeTxnResponse({
    header,
    succeeded: true,
    responses: [
      { type: 'put', response: { header: { ...header, revision: 3 } } },
      { type: 'txn', response: { header, succeeded: false, responses: [] } },
    ],
  });
  const responses = encoded.responses as PbMessage[];
  assert.deepEqual((responses[0]!.responsePut as PbMessage).header, { revision: 4 });
  assert.deepEqual((responses[1]!.responseTxn as PbMessage).header, {});
});
