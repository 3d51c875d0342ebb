/**
 * The wire codec: the core's size arithmetic must match msgpackr byte for byte (the datagram bound
 * depends on it), and malformed input of every kind is rejected rather than thrown.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodePacket, encodePacket } from './codec.js';
import { splitPushPull } from './core/push-pull.js';
import { msgpackSizeBytes } from './core/size.js';
import type { Message, PushPullEntry } from './core/types.js';
import { decodeMemberMeta, encodeMemberMeta } from './meta.js';

const nameArb = fc.string({ minLength: 1, maxLength: 40 });
const countArb = fc.oneof(fc.nat(300), fc.nat(), fc.constant(2 ** 40));
const metaArb = fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes));
const messageArb: fc.Arbitrary<Message> = fc.oneof(
  fc.record({ type: fc.constant('ack' as const), seq: countArb }),
  fc.record({ type: fc.constant('nack' as const), seq: countArb }),
  fc.record({
    type: fc.constant('ping' as const),
    seq: countArb,
    target: nameArb,
    source: nameArb,
    sourceAddress: nameArb,
  }),
  fc.record({
    type: fc.constant('alive' as const),
    name: nameArb,
    address: nameArb,
    incarnation: countArb,
    meta: metaArb,
  }),
  fc.record({
    type: fc.constant('suspect' as const),
    name: nameArb,
    incarnation: countArb,
    from: nameArb,
  }),
);

test('msgpackSizeBytes equals the encoded size, and messages round-trip', () => {
  fc.assert(
    fc.property(fc.array(messageArb, { minLength: 1, maxLength: 20 }), (generated) => {
      // fast-check may build null-prototype records; the decoder yields plain objects.
      const messages = generated.map((message) => ({ ...message }));
      const bytes = encodePacket(messages);
      assert.equal(msgpackSizeBytes(messages), bytes.byteLength);
      assert.deepEqual(decodePacket(bytes), messages);
    }),
    { seed: 42, numRuns: 300 },
  );
});

test('malformed datagrams decode to null, never throw', () => {
  const bad: Uint8Array[] = [
    new Uint8Array(0),
    Buffer.from([0xc1]),
    Buffer.from([0x93, 0x01]),
    encodePacket([]),
    Buffer.from(JSON.stringify({ type: 'ping' })),
    encodePacket([{ type: 'ack', seq: -1 } as unknown as Message]),
    encodePacket([
      { type: 'alive', name: 'a', address: 'b', incarnation: 1 } as unknown as Message,
    ]),
    encodePacket([{ type: 'ack', seq: 1 }, { type: 'bogus' } as unknown as Message]),
  ];
  for (const bytes of bad) assert.equal(decodePacket(bytes), null);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const decoded = decodePacket(bytes);
      assert.ok(decoded === null || Array.isArray(decoded));
    }),
    { seed: 7, numRuns: 2000 },
  );
});

test('a push-pull split into datagrams keeps every entry and fits each piece', () => {
  const states: PushPullEntry[] = Array.from({ length: 120 }, (_, index) => ({
    name: `member-${index}`,
    address: `10.0.0.${index}:7946`,
    incarnation: index,
    state: 0,
    meta: new Uint8Array(index % 40),
  }));
  const pieces = splitPushPull({ type: 'pushPull', join: true, reply: true, states }, 1400);
  assert.ok(pieces.length > 1);
  assert.deepEqual(
    pieces.flatMap((piece) => piece.states),
    states,
  );
  assert.deepEqual(
    pieces.map((piece) => piece.reply),
    [true, ...pieces.slice(1).map(() => false)],
  );
  for (const piece of pieces) assert.ok(encodePacket([piece]).byteLength <= 1400);
});

test('member metadata round-trips and rejects oversized records', () => {
  const meta = {
    role: 'voter',
    clientUrls: ['http://127.0.0.1:2379'],
    peerUrls: ['http://127.0.0.1:2380'],
    freeDiskBytes: 2 ** 40,
  };
  assert.deepEqual(decodeMemberMeta(encodeMemberMeta(meta)), meta);
  assert.equal(decodeMemberMeta(new Uint8Array(0)), null);
  assert.throws(() => encodeMemberMeta({ ...meta, clientUrls: [('x' as string).repeat(600)] }), {
    code: 'META_TOO_LARGE',
  });
});
