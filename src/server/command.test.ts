/**
 * Raft entry commands: a plain put travels in its binary layout, everything else (and every put
 * written before that layout existed) as msgpack, and both decode to the same request.
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
      copy[25] = 0x80; // an unknown flag
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
