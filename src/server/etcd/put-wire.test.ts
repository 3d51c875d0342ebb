/**
 * The direct Put codec against protobufjs: requests decode to what the generic path decodes, and
 * responses encode to the very bytes protobufjs writes for the same values.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  decodePutRequest,
  encodePutResponse,
  loadEtcdRoot,
  type PbMessage,
  toLong,
} from './codec.js';
import { checkPutResponse, decodePutRequestBytes, encodePutResponseBytes } from './put-wire.js';
import type { PutResponse } from './types.js';

const root = loadEtcdRoot();
const requestType = root.lookupType('etcdserverpb.PutRequest');
const responseType = root.lookupType('etcdserverpb.PutResponse');

const bytes = fc.oneof(
  fc.uint8Array({ maxLength: 8 }),
  fc.uint8Array({ minLength: 100, maxLength: 400 }),
);
const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const uint64 = fc.oneof(
  fc.bigInt({ min: 0n, max: 300n }),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
);
const revision = fc.oneof(fc.integer({ min: 0, max: 200 }), fc.maxSafeNat());

test('a PutRequest decodes as the generic path decodes protobufjs messages', () => {
  fc.assert(
    fc.property(
      fc.record(
        {
          key: bytes,
          value: bytes,
          lease: int64,
          prevKv: fc.boolean(),
          ignoreValue: fc.boolean(),
          ignoreLease: fc.boolean(),
        },
        { requiredKeys: [] },
      ),
      (fields) => {
        const message: PbMessage = { ...fields };
        if (fields.lease !== undefined) message.lease = toLong(fields.lease, false);
        const wire = Buffer.from(requestType.encode(message).finish());
        const generic = decodePutRequest(requestType.decode(wire) as unknown as PbMessage);
        const direct = decodePutRequestBytes(wire);
        assert.deepEqual(
          { ...direct, key: Buffer.from(direct.key), value: Buffer.from(direct.value) },
          { ...generic, key: Buffer.from(generic.key), value: Buffer.from(generic.value) },
        );
      },
    ),
    { seed: 20261125, numRuns: 400 },
  );
});

test('unknown fields are skipped and a repeated field keeps its last value, as protobufjs does', () => {
  const wire = Buffer.concat([
    Buffer.from([0x0a, 0x01, 0x61]), // key "a"
    Buffer.from([0x38, 0x96, 0x01]), // field 7 varint (unknown)
    Buffer.from([0x41, 1, 2, 3, 4, 5, 6, 7, 8]), // field 8 fixed64 (unknown)
    Buffer.from([0x4a, 0x02, 0x78, 0x79]), // field 9 bytes (unknown)
    Buffer.from([0x55, 1, 2, 3, 4]), // field 10 fixed32 (unknown)
    Buffer.from([0x0a, 0x01, 0x62]), // key "b" again
    Buffer.from([0x20, 0x02]), // prev_kv = 2, which is true
  ]);
  const generic = decodePutRequest(requestType.decode(wire) as unknown as PbMessage);
  const direct = decodePutRequestBytes(wire);
  assert.equal(Buffer.from(direct.key).toString(), 'b');
  assert.equal(direct.prevKv, true);
  assert.deepEqual(
    { ...direct, key: Buffer.from(direct.key), value: Buffer.from(direct.value) },
    { ...generic, key: Buffer.from(generic.key), value: Buffer.from(generic.value) },
  );
});

test('a truncated or malformed PutRequest is refused, never misread', () => {
  const wire = Buffer.from(
    requestType.encode({ key: Buffer.from('key'), value: Buffer.alloc(50, 1), lease: 7 }).finish(),
  );
  for (let cut = 1; cut < wire.length; cut++) {
    const prefix = wire.subarray(0, cut);
    let decoded: ReturnType<typeof decodePutRequestBytes> | undefined;
    try {
      decoded = decodePutRequestBytes(prefix);
    } catch (error) {
      assert.ok(error instanceof Error);
      continue;
    }
    // A cut that falls between two fields is a valid shorter message: it must say what it holds.
    const generic = decodePutRequest(requestType.decode(prefix) as unknown as PbMessage);
    assert.deepEqual(Buffer.from(decoded.key), Buffer.from(generic.key));
    assert.deepEqual(Buffer.from(decoded.value), Buffer.from(generic.value));
  }
  assert.throws(() => decodePutRequestBytes(Buffer.from([0x08, 0x01])), /wire type/); // key as varint
  assert.throws(() => decodePutRequestBytes(Buffer.from([0x00])), /field 0/);
  assert.throws(
    () => decodePutRequestBytes(Buffer.from([0x18, ...Array(11).fill(0xff)])),
    /10 bytes/,
  );
});

test('a PutResponse encodes to the bytes protobufjs writes', () => {
  const keyValue = fc.record({
    key: bytes,
    createRevision: revision,
    modRevision: revision,
    version: revision,
    value: bytes,
    lease: int64,
  });
  fc.assert(
    fc.property(
      fc.record(
        {
          header: fc.record({
            clusterId: uint64,
            memberId: uint64,
            revision,
            raftTerm: uint64,
          }),
          prevKv: keyValue,
        },
        { requiredKeys: ['header'] },
      ),
      (response: PutResponse) => {
        const expected = Buffer.from(responseType.encode(encodePutResponse(response)).finish());
        assert.deepEqual(Buffer.from(encodePutResponseBytes(response)), expected);
      },
    ),
    { seed: 20261125, numRuns: 400 },
  );
});

test('a revision that is not a safe integer is refused, as the generic path refuses it', () => {
  const header = { clusterId: 1n, memberId: 2n, revision: 2 ** 53, raftTerm: 3n };
  assert.throws(() => encodePutResponse({ header }), /not a safe integer/);
  assert.throws(() => encodePutResponseBytes({ header }), /not a safe integer/);
  assert.throws(() => checkPutResponse({ header }), /not a safe integer/);
  const prevKv = {
    key: Buffer.from('k'),
    createRevision: 1,
    modRevision: 2 ** 60,
    version: 1,
    value: Buffer.from('v'),
    lease: 0n,
  };
  assert.throws(
    () => checkPutResponse({ header: { ...header, revision: 5 }, prevKv }),
    /modRevision/,
  );
  checkPutResponse({ header: { ...header, revision: 5 }, prevKv: { ...prevKv, modRevision: 2 } });
});
