/**
 * Raft entry commands: a plain put, and a batch of plain puts, travel in their binary layouts,
 * everything else (and every put written before that layout existed) as msgpack, and both decode
 * to the same requests.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import type { PutRequest } from '../kv/types.js';
import { type Command, decodeCommand, encodeCommand } from './command.js';

const id = { member: 0x1234_5678_9abc, incarnation: 987_654_321, sequence: 42 };
/** The msgpack form, as every put was encoded before the binary layout. */
const msgpack = new Packr({ useRecords: false, moreTypes: false });

/** A put as the state machine sees it: absent and false flags alike, values as plain bytes. */
function normalized(put: PutRequest | undefined) {
  assert.ok(put !== undefined, 'not a put');
  return {
    key: Buffer.from(put.key),
    value: put.value === undefined ? undefined : Buffer.from(put.value),
    lease: put.lease,
    prevKv: put.prevKv === true,
    ignoreValue: put.ignoreValue === true,
    ignoreLease: put.ignoreLease === true,
  };
}

function putOf(command: Command): PutRequest | undefined {
  return command.kv !== undefined && 'put' in command.kv ? command.kv.put : undefined;
}

const putArbitrary = fc.record(
  {
    key: fc.uint8Array({ minLength: 1, maxLength: 300 }),
    value: fc.uint8Array({ maxLength: 2000 }),
    lease: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
    prevKv: fc.boolean(),
    ignoreValue: fc.boolean(),
    ignoreLease: fc.boolean(),
  },
  { requiredKeys: ['key'] },
);

test('a put decodes from its binary layout exactly as from msgpack', () => {
  fc.assert(
    fc.property(putArbitrary, (put) => {
      const command: Command = { id, kv: { put } };
      const binary = encodeCommand(command);
      assert.equal(binary[0], 0xc1, 'a plain put takes the binary layout');
      const fast = decodeCommand(binary);
      const old = decodeCommand(msgpack.pack(command));
      assert.deepEqual(fast.id, id);
      assert.deepEqual(old.id, id);
      assert.deepEqual(normalized(putOf(fast)), normalized(putOf(old)));
      assert.deepEqual(normalized(putOf(fast)), normalized(put));
    }),
    { seed: 20261125, numRuns: 300 },
  );
});

test('other commands, and puts the layout cannot hold, stay msgpack', () => {
  const others: Command[] = [
    { id, kv: { deleteRange: { key: Buffer.from('a') } } },
    { id, kv: { txn: { compare: [], success: [], failure: [] } } },
    { id, registry: { publish: { id: 7, name: 'm1', clientUrls: ['http://127.0.0.1:2379'] } } },
    // A lease that is not a bigint, a flag that is not a boolean, and a field the layout does
    // not know.
    { id, kv: { put: { key: Buffer.from('k'), lease: 5 as unknown as bigint } } },
    { id, kv: { put: { key: Buffer.from('k'), prevKv: 1 as unknown as boolean } } },
    { id, kv: { put: { key: Buffer.from('k'), extra: 1 } as unknown as PutRequest } },
  ];
  for (const command of others) {
    const bytes = encodeCommand(command);
    assert.notEqual(bytes[0], 0xc1);
    assert.deepEqual(decodeCommand(bytes), decodeCommand(msgpack.pack(command)));
  }
});

test('a damaged binary put is an error, never a wrong request', () => {
  const good = Buffer.from(
    encodeCommand({ id, kv: { put: { key: Buffer.from('key'), value: Buffer.from('value') } } }),
  );
  const damaged = [
    good.subarray(0, 20), // shorter than the fixed part
    good.subarray(0, good.length - 1), // value cut short
    Buffer.concat([good, Buffer.from([0])]), // trailing byte
    (() => {
      const copy = Buffer.from(good);
      copy[25] = 0x40; // an unknown flag
      return copy;
    })(),
    (() => {
      const copy = Buffer.from(good);
      copy.writeUInt32LE(0xffff_ffff, 34); // key length beyond the entry
      return copy;
    })(),
    (() => {
      const copy = Buffer.from(good);
      copy.writeBigInt64LE(7n, 26); // a lease without the flag that says there is one
      return copy;
    })(),
  ];
  for (const bytes of damaged) {
    assert.throws(() => decodeCommand(bytes), /malformed put/);
  }
});

function batchOf(command: Command): PutRequest[] {
  assert.ok(command.kvBatch !== undefined, 'not a batch');
  return command.kvBatch.map((request) => {
    assert.ok('put' in request, 'a batched request that is not a put');
    return request.put;
  });
}

test('a batch of puts decodes from its binary layout exactly as from msgpack, in order', () => {
  fc.assert(
    fc.property(fc.array(putArbitrary, { minLength: 1, maxLength: 40 }), (puts) => {
      const command: Command = { id, kvBatch: puts.map((put) => ({ put })) };
      const binary = encodeCommand(command);
      assert.equal(binary[0], 0xc1, 'a batch of plain puts takes the binary layout');
      const fast = decodeCommand(binary);
      const old = decodeCommand(msgpack.pack(command));
      assert.deepEqual(fast.id, id);
      assert.equal(fast.kv, undefined);
      assert.deepEqual(batchOf(fast).map(normalized), batchOf(old).map(normalized));
      assert.deepEqual(
        batchOf(fast).map(normalized),
        puts.map((put) => normalized(put)),
      );
    }),
    { seed: 20261204, numRuns: 200 },
  );
});

test('a batch holding anything but plain puts stays msgpack and keeps every request', () => {
  const command: Command = {
    id,
    kvBatch: [
      { put: { key: Buffer.from('a'), value: Buffer.from('1') } },
      { deleteRange: { key: Buffer.from('b') } },
    ],
  };
  const bytes = encodeCommand(command);
  assert.notEqual(bytes[0], 0xc1);
  assert.deepEqual(decodeCommand(bytes), decodeCommand(msgpack.pack(command)));
  assert.equal(decodeCommand(bytes).kvBatch?.length, 2);
});

test('a damaged binary batch is an error, never a wrong batch', () => {
  const good = Buffer.from(
    encodeCommand({
      id,
      kvBatch: [
        { put: { key: Buffer.from('k1'), value: Buffer.from('v1') } },
        { put: { key: Buffer.from('k2') } },
      ],
    }),
  );
  assert.equal(batchOf(decodeCommand(good)).length, 2);
  const withCount = (count: number) => {
    const copy = Buffer.from(good);
    copy.writeUInt32LE(count, 26);
    return copy;
  };
  const damaged = [
    good.subarray(0, 28), // shorter than the batch's fixed part
    good.subarray(0, good.length - 1), // the last put cut short
    Buffer.concat([good, Buffer.from([0])]), // trailing byte
    withCount(0), // an empty batch
    withCount(1), // fewer puts than the entry holds
    withCount(3), // more puts than it holds
    withCount(0xffff_ffff), // a count no entry could hold
    (() => {
      const copy = Buffer.from(good);
      copy[30] = 0x40; // an unknown flag on the first put
      return copy;
    })(),
  ];
  for (const bytes of damaged) {
    assert.throws(() => decodeCommand(bytes), /malformed put/);
  }
});
