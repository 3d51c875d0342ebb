/**
 * Fuzzing a live server: random bytes and mutated, truncated or oversized frames go to the server
 * over raw sockets, while a well-behaved client keeps calling it. The server must survive every
 * input, close only the offending connection (logging why), and keep serving everyone else.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import { encodeMessage } from '../../src/rpc/codec.js';
import {
  encodeFrame,
  FLAG_END,
  FLAG_RAW,
  FrameKind,
  type FrameKindValue,
} from '../../src/rpc/frame.js';
import { recordingLogger, startPair, TEST_TIMEOUT_MS, testService, waitFor } from './helpers.js';

const method = (name: string) => Buffer.from(name);
const msgpack = (value: unknown) => Buffer.from(encodeMessage(value));

/** Frames a client might send, valid and invalid, built from fast-check choices. */
const frameArbitrary: fc.Arbitrary<Buffer> = fc.oneof(
  fc
    .string({ maxLength: 20 })
    .map((text) =>
      encodeFrame(FrameKind.CALL, FLAG_END, 1, 1000, method('test.echo'), msgpack({ text })),
    ),
  fc
    .nat({ max: 50 })
    .map((id) =>
      encodeFrame(FrameKind.CALL, FLAG_END, id, 50, method('test.wait'), msgpack({ id: 'x' })),
    ),
  fc
    .string({ minLength: 1, maxLength: 30 })
    .map((name) => encodeFrame(FrameKind.CALL, FLAG_END, 2, 0, method(name), msgpack(1))),
  fc
    .uint8Array({ maxLength: 40 })
    .map((junk) =>
      encodeFrame(FrameKind.CALL, FLAG_END, 3, 0, method('test.echo'), Buffer.from(junk)),
    ),
  fc
    .uint8Array({ maxLength: 40 })
    .map((junk) =>
      encodeFrame(FrameKind.ONEWAY, 0, 0, 0, method('test.notify'), Buffer.from(junk)),
    ),
  fc
    .nat({ max: 5 })
    .map((id) => encodeFrame(FrameKind.CALL, 0, id, 0, method('test.upload'), null)),
  fc
    .tuple(fc.nat({ max: 5 }), fc.uint8Array({ maxLength: 40 }), fc.boolean())
    .map(([id, junk, raw]) =>
      encodeFrame(FrameKind.MESSAGE, raw ? FLAG_RAW : 0, id, 0, null, Buffer.from(junk)),
    ),
  fc
    .tuple(
      fc.constantFrom<FrameKindValue>(
        FrameKind.WINDOW,
        FrameKind.CANCEL,
        FrameKind.PING,
        FrameKind.PONG,
        FrameKind.GOAWAY,
        FrameKind.RESPONSE,
        FrameKind.ERROR,
      ),
      fc.nat({ max: 5 }),
      fc.nat(),
    )
    .map(([kind, id, arg]) => encodeFrame(kind, 0, id, arg, null, null)),
  // A length far over the server's limit.
  fc.nat({ max: 5 }).map((id) => {
    const header = encodeFrame(FrameKind.MESSAGE, 0, id, 0, null, null);
    header.writeUInt32BE(0xffff_fff0, 0);
    return header;
  }),
);

const inputArbitrary: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
  fc
    .tuple(
      fc.array(frameArbitrary, { minLength: 1, maxLength: 6 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
      fc.option(fc.nat(), { nil: undefined }),
    )
    .map(([frames, flips, cut]) => {
      const bytes = Buffer.concat(frames);
      for (const [at, value] of flips) bytes[at % bytes.length] = value;
      return cut === undefined ? bytes : bytes.subarray(0, cut % (bytes.length + 1));
    }),
);

/** Writes `bytes`, half-closes, and resolves when the server has closed the connection. */
function sendAndWaitForClose(port: number, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('error', () => {}); // The server may reset the connection; that is allowed.
    socket.on('data', () => {});
    socket.on('close', () => resolve());
    socket.on('connect', () => {
      socket.write(bytes);
      socket.end();
    });
  });
}

test('a live server survives random and mutated frames and keeps serving other clients', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const { logger, records } = recordingLogger();
  const { client, server, address, close } = await startPair(undefined, {
    logger,
    frameBytesMax: 64 * 1024,
  });
  const port = Number(address.split(':')[1]);
  const stub = client.stub(testService);
  assert.deepEqual(await stub.echo({ text: 'baseline' }), { text: 'baseline' });
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(inputArbitrary, async (bytes) => {
      runs++;
      await sendAndWaitForClose(port, bytes);
      assert.deepEqual(await stub.echo({ text: `run ${runs}` }, { timeoutMs: 5_000 }), {
        text: `run ${runs}`,
      });
    }),
    { seed: 20261124, numRuns: 150 },
  );
  await waitFor(() => server.connectionCount === 1, 'only the healthy client to remain');
  const reasons = records.filter((record) => typeof record.reason === 'string');
  assert.ok(reasons.length > 0, 'protocol errors were logged with a reason');
  assert.ok(
    records.some((record) => record.msg === 'rpc: closing connection after protocol error'),
    'some inputs were protocol errors that closed their connection',
  );
  await close();
});
