/**
 * HPACK decoder checks against RFC 7541 Appendix C's worked examples (Huffman strings, the dynamic
 * table carried across requests) and the literal encoder round trip.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  encodeLiteralBlock,
  HpackDecoder,
  HpackError,
  HpackIndexingEncoder,
  huffmanDecode,
} from './hpack.js';

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');

describe('HPACK', () => {
  test('decodes RFC 7541 C.4: three requests with Huffman strings and a dynamic table', () => {
    const decoder = new HpackDecoder();
    assert.deepEqual(decoder.decode(hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff')), [
      { name: ':method', value: 'GET' },
      { name: ':scheme', value: 'http' },
      { name: ':path', value: '/' },
      { name: ':authority', value: 'www.example.com' },
    ]);
    // 0xbe is index 62: the :authority the first request inserted.
    assert.deepEqual(decoder.decode(hex('8286 84be 5886 a8eb 1064 9cbf')), [
      { name: ':method', value: 'GET' },
      { name: ':scheme', value: 'http' },
      { name: ':path', value: '/' },
      { name: ':authority', value: 'www.example.com' },
      { name: 'cache-control', value: 'no-cache' },
    ]);
    const third = decoder.decode(
      hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf'),
    );
    assert.deepEqual(third.at(-1), { name: 'custom-key', value: 'custom-value' });
    assert.deepEqual(third[3], { name: ':authority', value: 'www.example.com' });
  });

  test('Huffman: the 13-bit code of byte 0 with its padding, and bad padding is refused', () => {
    assert.equal(huffmanDecode(hex('ffc7')), '\x00');
    assert.equal(huffmanDecode(hex('')), '');
    // Padding that is not all ones, and padding of 8 bits or more, are errors (RFC 7541 §5.2).
    assert.throws(() => huffmanDecode(hex('f1e3c2e5f23a6ba0ab90f400')), HpackError);
    assert.throws(() => huffmanDecode(hex('f1e3c2e5f23a6ba0ab90f4ffff')), HpackError);
  });

  test('the literal encoder round-trips through the decoder without touching its table', () => {
    const fields = [
      { name: ':authority', value: '127.0.0.1:2379' },
      { name: 'x-long', value: 'v'.repeat(300) },
      { name: 'x-bin', value: '\u00ff\u0000' },
    ];
    const decoder = new HpackDecoder();
    assert.deepEqual(decoder.decode(encodeLiteralBlock(fields)), fields);
    // Nothing was inserted, so index 62 does not exist.
    assert.throws(() => decoder.decode(hex('be')), HpackError);
  });

  test('truncated and out-of-range blocks fail with HpackError', () => {
    const decoder = new HpackDecoder();
    for (const block of ['41', '418c f1e3', 'ff', 'c0', '3fe1ff', '0f']) {
      assert.throws(() => decoder.decode(hex(block)), HpackError, block);
    }
  });

  test('the indexing encoder adds fields once, then sends indexes the decoder resolves', () => {
    const encoder = new HpackIndexingEncoder();
    const decoder = new HpackDecoder();
    const put = [
      { name: ':method', value: 'POST' },
      { name: ':path', value: '/etcdserverpb.KV/Put' },
      { name: 'content-type', value: 'application/grpc' },
    ];
    const range = [
      { name: ':method', value: 'POST' },
      { name: ':path', value: '/etcdserverpb.KV/Range' },
      { name: 'content-type', value: 'application/grpc' },
    ];
    const first = encoder.encode(put);
    assert.deepEqual(decoder.decode(first), put);
    const second = encoder.encode(put);
    assert.equal(second.length, 3, 'three one-byte indexes');
    assert.deepEqual(decoder.decode(second), put);
    assert.equal(encoder.encode(put), second, 'an unchanged table reuses the block');
    // A new field shifts every index by one: both sides must agree after it.
    assert.deepEqual(decoder.decode(encoder.encode(range)), range);
    assert.deepEqual(decoder.decode(encoder.encode(put)), put);
    assert.deepEqual(decoder.decode(encoder.encode(range)), range);
  });

  test('the indexing encoder evicts as the decoder does and follows a lowered table size', () => {
    const encoder = new HpackIndexingEncoder(100);
    const decoder = new HpackDecoder();
    // Each entry is name + value + 32 bytes: two of these fill a 100-byte table.
    const field = (i: number) => ({ name: `x-${i}`, value: 'v'.repeat(10) });
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 5; i++) {
        const fields = [field(i), field((i + 1) % 5)];
        assert.deepEqual(decoder.decode(encoder.encode(fields)), fields);
      }
    }
    // The peer lowers its table to 0: the next block starts with a size update, nothing indexes.
    const fields = [field(1), field(2)];
    encoder.setPeerTableBytesMax(0);
    const block = encoder.encode(fields);
    assert.equal(block[0], 0x20, 'a dynamic table size update to 0 comes first');
    assert.deepEqual(decoder.decode(block), fields);
    assert.deepEqual(decoder.decode(encoder.encode(fields)), fields);
  });
});
