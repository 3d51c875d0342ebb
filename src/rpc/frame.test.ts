/**
 * Frame format tests: every frame the writer produces decodes back exactly, however the byte
 * stream is split into chunks; malformed input (random bytes, mutated frames, oversized lengths)
 * only ever raises FrameError and never anything else.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  encodeFrame,
  FLAG_END,
  FLAG_RAW,
  FrameDecoder,
  FrameError,
  FrameKind,
  type FrameKindValue,
  FrameWriter,
  HEADER_BYTES,
} from './frame.js';

interface Decoded {
  kind: number;
  flags: number;
  callId: number;
  arg: number;
  method: string;
  payload: Buffer;
}

function collect(frameBytesMax?: number): { decoder: FrameDecoder; frames: Decoded[] } {
  const frames: Decoded[] = [];
  const decoder = new FrameDecoder((kind, flags, callId, arg, methodLength, body) => {
    frames.push({
      kind,
      flags,
      callId,
      arg,
      method: body.toString('utf8', 0, methodLength),
      payload: Buffer.from(body.subarray(methodLength)),
    });
  }, frameBytesMax);
  return { decoder, frames };
}

const kinds = Object.values(FrameKind) as FrameKindValue[];
const frameArbitrary = fc
  .record({
    kind: fc.constantFrom(...kinds),
    flags: fc.constantFrom(0, FLAG_END, FLAG_RAW, FLAG_END | FLAG_RAW),
    callId: fc.nat({ max: 0xffff_ffff }),
    arg: fc.nat({ max: 0xffff_ffff }),
    method: fc.string({ minLength: 1, maxLength: 40 }),
    payload: fc.uint8Array({ maxLength: 40_000 }),
  })
  .map((frame) => ({
    ...frame,
    method: frame.kind === FrameKind.CALL || frame.kind === FrameKind.ONEWAY ? frame.method : '',
  }));

/** Splits `bytes` at the given (sorted, deduplicated) cut points. */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let last = 0;
  for (const point of points) {
    chunks.push(bytes.subarray(last, point));
    last = point;
  }
  chunks.push(bytes.subarray(last));
  return chunks;
}

test('frames written by FrameWriter decode back exactly, however the stream is chunked', () => {
  fc.assert(
    fc.property(
      fc.array(frameArbitrary, { minLength: 1, maxLength: 12 }),
      fc.array(fc.nat(), { maxLength: 20 }),
      (frames, cuts) => {
        const writer = new FrameWriter();
        for (const frame of frames) {
          const method = frame.method === '' ? null : Buffer.from(frame.method);
          writer.append(frame.kind, frame.flags, frame.callId, frame.arg, method, frame.payload);
        }
        const stream = Buffer.concat(writer.take());
        const { decoder, frames: decoded } = collect();
        for (const chunk of split(stream, cuts)) decoder.push(chunk);
        assert.equal(decoded.length, frames.length);
        assert.ok(decoder.atBoundary);
        frames.forEach((frame, index) => {
          const got = decoded[index]!;
          assert.equal(got.kind, frame.kind);
          assert.equal(got.flags, frame.flags);
          assert.equal(got.callId, frame.callId);
          assert.equal(got.arg, frame.arg);
          assert.equal(got.method, frame.method);
          assert.deepEqual(new Uint8Array(got.payload), frame.payload);
        });
      },
    ),
    { seed: 1337, numRuns: 300 },
  );
});

test('small bodies are views into the received chunk, not copies', () => {
  const frame = encodeFrame(FrameKind.MESSAGE, 0, 7, 0, null, Buffer.from('hello'));
  let body: Buffer | null = null;
  const decoder = new FrameDecoder((_k, _f, _c, _a, _m, received) => {
    body = received;
  });
  decoder.push(frame);
  assert.ok(body !== null);
  assert.equal((body as Buffer).buffer, frame.buffer, 'body shares memory with the input chunk');
});

test('large payloads are written by reference, not copied into the batch', () => {
  const writer = new FrameWriter();
  const big = Buffer.alloc(100_000, 9);
  writer.append(FrameKind.MESSAGE, 0, 1, 0, null, big);
  const chunks = writer.take();
  assert.equal(chunks.length, 2, 'header chunk plus the body by reference');
  assert.equal(chunks[1]!.buffer, big.buffer);
  assert.equal(writer.pendingBytes, 0);
});

test('many small frames are gathered into one chunk', () => {
  const writer = new FrameWriter();
  for (let i = 0; i < 100; i++)
    writer.append(FrameKind.ONEWAY, 0, 0, 0, Buffer.from('s.m'), Buffer.alloc(64));
  assert.equal(writer.pendingBytes, 100 * (HEADER_BYTES + 3 + 64));
  assert.equal(writer.take().length, 1);
});

test('an oversized length is rejected before any body is buffered', () => {
  const { decoder } = collect(1024);
  const header = encodeFrame(FrameKind.MESSAGE, 0, 1, 0, null, null);
  header.writeUInt32BE(1025, 0);
  assert.throws(
    () => decoder.push(header),
    (error: unknown) => error instanceof FrameError && error.oversized,
  );
  assert.equal(decoder.bufferedBytes, 0);
  assert.throws(() => decoder.push(Buffer.alloc(1)), FrameError, 'a failed decoder refuses input');
});

test('header rules: unknown kind, unknown flags and bad method lengths are errors', () => {
  const cases: [string, (frame: Buffer) => void][] = [
    ['kind 0', (frame) => (frame[4] = 0)],
    ['kind 11', (frame) => (frame[4] = 11)],
    ['flag 0x80', (frame) => (frame[5] = 0x80)],
    ['method on MESSAGE', (frame) => (frame[4] = FrameKind.MESSAGE)],
    ['method length past body', (frame) => frame.writeUInt16BE(200, 6)],
    ['method length zero on CALL', (frame) => frame.writeUInt16BE(0, 6)],
  ];
  for (const [name, mutate] of cases) {
    const frame = encodeFrame(FrameKind.CALL, FLAG_END, 1, 0, Buffer.from('a.b'), Buffer.from([1]));
    mutate(frame);
    const { decoder, frames } = collect();
    assert.throws(() => decoder.push(frame), FrameError, name);
    assert.equal(frames.length, 0, name);
  }
});

test('random bytes and mutated frames only ever raise FrameError', () => {
  const valid = Buffer.concat([
    encodeFrame(FrameKind.CALL, FLAG_END, 1, 100, Buffer.from('test.echo'), Buffer.from([0x80])),
    encodeFrame(FrameKind.ONEWAY, 0, 0, 0, Buffer.from('test.notify'), Buffer.from([0x80])),
    encodeFrame(FrameKind.PING, 0, 0, 5, null, null),
  ]);
  const mutated = fc
    .array(fc.tuple(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 0, max: 255 })), {
      maxLength: 8,
    })
    .map((edits) => {
      const copy = Buffer.from(valid);
      for (const [at, value] of edits) copy[at] = value;
      return copy;
    });
  const input = fc.oneof(
    fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
    mutated,
  );
  fc.assert(
    fc.property(input, fc.array(fc.nat(), { maxLength: 6 }), (bytes, cuts) => {
      const { decoder } = collect(4096);
      try {
        for (const chunk of split(bytes, cuts)) decoder.push(chunk);
      } catch (error) {
        assert.ok(error instanceof FrameError, `unexpected ${String(error)}`);
      }
      assert.ok(decoder.bufferedBytes <= HEADER_BYTES + 4096, 'never holds more than one frame');
    }),
    { seed: 42, numRuns: 2000 },
  );
});

test('an oversized frame the owner skips is discarded without buffering; framing continues', () => {
  const oversized: { kind: number; callId: number; bodyLength: number }[] = [];
  const frames: number[] = [];
  const decoder = new FrameDecoder(
    (_kind, _flags, callId) => frames.push(callId),
    1024,
    (kind, callId, bodyLength) => {
      oversized.push({ kind, callId, bodyLength });
      return true;
    },
  );
  const stream = Buffer.concat([
    encodeFrame(FrameKind.MESSAGE, 0, 1, 0, null, Buffer.alloc(10)),
    encodeFrame(FrameKind.MESSAGE, 0, 2, 0, null, Buffer.alloc(5000)),
    encodeFrame(FrameKind.MESSAGE, 0, 3, 0, null, Buffer.alloc(10)),
  ]);
  for (let at = 0; at < stream.length; at += 700) {
    decoder.push(stream.subarray(at, at + 700));
    assert.ok(decoder.bufferedBytes <= HEADER_BYTES + 1024);
  }
  assert.deepEqual(frames, [1, 3]);
  assert.deepEqual(oversized, [{ kind: FrameKind.MESSAGE, callId: 2, bodyLength: 5000 }]);
  assert.ok(decoder.atBoundary);
});
