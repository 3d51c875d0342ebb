/**
 * Streaming over real sockets: content and order, end-to-end backpressure in both directions (a
 * slow or stopped reader bounds how far the producer runs ahead, so memory stays bounded),
 * cancellation of a stream reaching the producer, and errors mid-stream.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RpcError } from '../../src/rpc/errors.js';
import { INITIAL_WINDOW_BYTES } from '../../src/rpc/index.js';
import {
  type Chunk,
  defaultImplementation,
  startPair,
  TEST_TIMEOUT_MS,
  testService,
  waitFor,
} from './helpers.js';

const CHUNK_BYTES = 16 * 1024;
/** The window holds 4 chunks; the sender may overdraw by one, and one more may sit in the generator. */
const AHEAD_MAX = INITIAL_WINDOW_BYTES / CHUNK_BYTES + 2;

async function turns(count: number): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise((resolve) => setImmediate(resolve));
}

test('server streams deliver every message in order', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { client, close } = await startPair();
  const stub = client.stub(testService);
  let expected = 0;
  for await (const chunk of stub.download({ count: 500, size: 3000 })) {
    assert.equal(chunk.index, expected);
    assert.equal(chunk.data.length, 3000);
    assert.equal(chunk.data[0], expected & 0xff);
    expected++;
  }
  assert.equal(expected, 500);
  await close();
});

test('client streams deliver every message and return the handler result', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const { client, close } = await startPair();
  const stub = client.stub(testService);
  async function* chunks(): AsyncGenerator<Chunk> {
    for (let index = 0; index < 300; index++) yield { index, data: new Uint8Array(5000) };
  }
  assert.deepEqual(await stub.upload(chunks()), { count: 300, bytes: 300 * 5000 });
  assert.deepEqual(await stub.upload([]), { count: 0, bytes: 0 }, 'empty stream');
  await close();
});

test('a stopped reader stops the server-stream producer; memory stays bounded', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  let produced = 0;
  const { client, close } = await startPair(
    defaultImplementation({
      async *download(request) {
        for (let index = 0; index < request.count; index++) {
          produced++;
          yield { index, data: new Uint8Array(request.size) };
        }
      },
    }),
    { streamWindowBytes: INITIAL_WINDOW_BYTES },
    { streamWindowBytes: INITIAL_WINDOW_BYTES },
  );
  const stream = client.stub(testService).download({ count: 2000, size: CHUNK_BYTES });
  const iterator = stream[Symbol.asyncIterator]();
  await iterator.next();
  await waitFor(
    () => produced >= INITIAL_WINDOW_BYTES / CHUNK_BYTES,
    'the producer to fill the window',
  );
  // The reader now stops. Give the producer many event-loop turns to run ahead if it could.
  await turns(200);
  assert.ok(
    produced <= AHEAD_MAX + 1,
    `producer ran ${produced} messages ahead of a stopped reader`,
  );
  const buffered = (stream as unknown as { bufferedBytes: number }).bufferedBytes;
  assert.ok(
    buffered <= INITIAL_WINDOW_BYTES + CHUNK_BYTES + 64,
    `client buffers ${buffered} bytes`,
  );
  // A slow reader: the producer is never more than the window ahead of it.
  let consumed = 1;
  let maxAhead = 0;
  for (;;) {
    const item = await iterator.next();
    if (item.done) break;
    consumed++;
    maxAhead = Math.max(maxAhead, produced - consumed);
    if (consumed % 50 === 0) await turns(3);
  }
  assert.equal(consumed, 2000);
  assert.ok(maxAhead <= AHEAD_MAX, `producer ran ${maxAhead} ahead`);
  await close();
});

test('a slow server handler stops the client-stream source; memory stays bounded', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  let pulled = 0;
  let consumed = 0;
  let maxAhead = 0;
  let release: (() => void) | null = null;
  const { client, close } = await startPair(
    defaultImplementation({
      async upload(chunks) {
        let bytes = 0;
        for await (const chunk of chunks) {
          consumed++;
          bytes += chunk.data.length;
          if (consumed === 1) await new Promise<void>((resolve) => (release = resolve));
        }
        return { count: consumed, bytes };
      },
    }),
    { streamWindowBytes: INITIAL_WINDOW_BYTES },
  );
  function* source(): Generator<Chunk> {
    for (let index = 0; index < 1000; index++) {
      pulled++;
      maxAhead = Math.max(maxAhead, pulled - consumed);
      yield { index, data: new Uint8Array(CHUNK_BYTES) };
    }
  }
  const call = client.stub(testService).upload(source());
  await waitFor(() => release !== null, 'the handler to take the first chunk');
  await turns(200);
  assert.ok(pulled <= AHEAD_MAX + 1, `source pulled ${pulled} chunks while the handler was stuck`);
  release!();
  assert.deepEqual(await call, { count: 1000, bytes: 1000 * CHUNK_BYTES });
  assert.ok(maxAhead <= AHEAD_MAX + 1, `source ran ${maxAhead} ahead of the handler`);
  await close();
});

test('breaking out of a server stream cancels the producer on the server', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  let finallyRan = false;
  let signalReason: unknown = null;
  const { client, close } = await startPair(
    defaultImplementation({
      async *download(request, context) {
        try {
          for (let index = 0; ; index++) yield { index, data: new Uint8Array(request.size) };
        } finally {
          finallyRan = true;
          signalReason = context.signal.reason;
        }
      },
    }),
  );
  let seen = 0;
  for await (const chunk of client.stub(testService).download({ count: 0, size: 100 })) {
    seen = chunk.index;
    if (seen === 10) break;
  }
  await waitFor(() => finallyRan, 'the producer to be stopped');
  assert.ok(signalReason instanceof RpcError && signalReason.code === 'CANCELLED');
  await close();
});

test('an error thrown mid-stream reaches the reader with its code', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const { client, close } = await startPair(
    defaultImplementation({
      async *download() {
        yield { index: 0, data: new Uint8Array(1) };
        throw new RpcError('DATA_LOSS', 'chunk 1 is corrupt');
      },
    }),
  );
  const seen: number[] = [];
  await assert.rejects(
    (async () => {
      for await (const chunk of client.stub(testService).download({ count: 5, size: 1 }))
        seen.push(chunk.index);
    })(),
    (error: unknown) => error instanceof RpcError && error.code === 'DATA_LOSS',
  );
  assert.deepEqual(seen, [0]);
  await close();
});

test('a source that throws fails the client stream and the handler sees the cancellation', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  let handlerError: unknown = null;
  const { client, close } = await startPair(
    defaultImplementation({
      async upload(chunks) {
        try {
          for await (const _ of chunks);
        } catch (error) {
          handlerError = error;
          throw error;
        }
        return { count: 0, bytes: 0 };
      },
    }),
  );
  async function* broken(): AsyncGenerator<Chunk> {
    yield { index: 0, data: new Uint8Array(1) };
    throw new Error('disk read failed');
  }
  await assert.rejects(client.stub(testService).upload(broken()), /disk read failed/);
  await waitFor(() => handlerError !== null, 'the handler to see the cancelled stream');
  assert.ok(handlerError instanceof RpcError);
  await close();
});

test('a stream deadline ends the stream with DEADLINE_EXCEEDED', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const { client, close } = await startPair(
    defaultImplementation({
      async *download(_request, context) {
        yield { index: 0, data: new Uint8Array(1) };
        await new Promise((resolve) => context.signal.addEventListener('abort', resolve));
      },
    }),
  );
  await assert.rejects(
    (async () => {
      for await (const _ of client
        .stub(testService)
        .download({ count: 2, size: 1 }, { timeoutMs: 40 }));
    })(),
    (error: unknown) => error instanceof RpcError && error.code === 'DEADLINE_EXCEEDED',
  );
  await close();
});

test('stream senders wait for a congested socket to drain instead of buffering past the limit', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  // A large window but a small connection buffer: the socket, not credit, is what holds the
  // server back, through whenWritable(); the transfer must still complete in order.
  const { client, close } = await startPair(
    defaultImplementation(),
    { bufferedBytesMax: 32 * 1024 },
    { streamWindowBytes: 8 * 1024 * 1024, bufferedBytesMax: 32 * 1024 },
  );
  const stub = client.stub(testService);
  let expected = 0;
  for await (const chunk of stub.download({ count: 300, size: CHUNK_BYTES })) {
    assert.equal(chunk.index, expected++);
  }
  assert.equal(expected, 300);
  async function* chunks(): AsyncGenerator<Chunk> {
    for (let index = 0; index < 300; index++) yield { index, data: new Uint8Array(CHUNK_BYTES) };
  }
  assert.deepEqual(await stub.upload(chunks()), { count: 300, bytes: 300 * CHUNK_BYTES });
  await close();
});
