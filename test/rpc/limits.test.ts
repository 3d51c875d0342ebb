/**
 * Limits over real sockets: frame size (both directions, and a peer ignoring the limit), calls in
 * flight (client and server side) and buffered bytes. Each limit gives the caller RpcError
 * RESOURCE_EXHAUSTED and the connection goes on serving.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { encodeFrame, FLAG_END, FLAG_RAW, FrameDecoder, FrameKind } from '../../src/rpc/frame.js';
import { isRpcError } from '../../src/rpc/index.js';
import {
  defaultImplementation,
  recordingLogger,
  startNotifyPair,
  startPair,
  TEST_TIMEOUT_MS,
  testService,
  waitFor,
} from './helpers.js';

const exhausted = (error: unknown) => isRpcError(error, 'RESOURCE_EXHAUSTED');

test('a request over the frame limit fails on the client before it is sent', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const { client, close } = await startPair(defaultImplementation(), {}, { frameBytesMax: 1024 });
  const stub = client.stub(testService);
  await assert.rejects(stub.bytes(new Uint8Array(2000)), (error: unknown) => {
    return exhausted(error) && /exceeds the frame limit of 1024/.test((error as Error).message);
  });
  assert.throws(() => stub.notify({ seq: 1, pad: 'x'.repeat(2000) } as { seq: number }), exhausted);
  const stream = stub.download({ count: 1, size: 1, pad: 'x'.repeat(2000) } as {
    count: number;
    size: number;
  });
  await assert.rejects(stream[Symbol.asyncIterator]().next(), exhausted);
  assert.equal((await stub.bytes(new Uint8Array(100))).length, 100, 'still serving');
  await close();
});

test('a request over the server limit fails only that call; the connection keeps serving', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const { logger, records } = recordingLogger();
  const { client, server, close } = await startPair(defaultImplementation(), {
    frameBytesMax: 1024,
    logger,
  });
  const stub = client.stub(testService);
  await assert.rejects(stub.bytes(new Uint8Array(50_000)), (error: unknown) => {
    return exhausted(error) && /server's limit of 1024/.test((error as Error).message);
  });
  assert.equal((await stub.bytes(new Uint8Array(10))).length, 10);
  assert.equal(server.connectionCount, 1, 'same connection');
  assert.ok(records.some((record) => record.msg === 'rpc: skipped oversized frame'));
  await close();
});

test('a response over the server limit fails the call with RESOURCE_EXHAUSTED', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const { client, close } = await startPair(
    defaultImplementation({ echo: (request) => ({ text: request.text.repeat(1000) }) }),
    { frameBytesMax: 4096 },
  );
  const stub = client.stub(testService);
  await assert.rejects(stub.echo({ text: 'abcdefgh' }), exhausted);
  assert.deepEqual(await stub.echo({ text: 'a' }), { text: 'a'.repeat(1000) });
  await close();
});

test('a response over the client limit fails the call with RESOURCE_EXHAUSTED', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const { client, close } = await startPair(defaultImplementation(), {}, { frameBytesMax: 70_000 });
  const stub = client.stub(testService);
  const big = stub.download({ count: 1, size: 100_000 });
  await assert.rejects(
    (async () => {
      for await (const _ of big);
    })(),
    (error: unknown) => exhausted(error) && /client's limit/.test((error as Error).message),
  );
  assert.deepEqual(await stub.echo({ text: 'ok' }), { text: 'ok' });
  await close();
});

test('the client refuses calls past callsInFlightMax', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { client, close } = await startPair(
    defaultImplementation({ wait: () => new Promise<string>(() => {}) }),
    {},
    { callsInFlightMax: 10 },
  );
  const stub = client.stub(testService);
  await stub.echo({ text: 'connect first' });
  const controller = new AbortController();
  const waiting = Array.from({ length: 10 }, (_, i) =>
    stub.wait({ id: String(i) }, { signal: controller.signal }).catch(() => 'cancelled'),
  );
  await assert.rejects(stub.echo({ text: 'one too many' }), exhausted);
  controller.abort();
  assert.deepEqual(await Promise.all(waiting), Array(10).fill('cancelled'));
  assert.deepEqual(await stub.echo({ text: 'room again' }), { text: 'room again' });
  await close();
});

test('the server refuses calls past its callsInFlightMax', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  let started = 0;
  const { client, close } = await startPair(
    defaultImplementation({
      wait: (_request, context) => {
        started++;
        return new Promise<string>((resolve) =>
          context.signal.addEventListener('abort', () => resolve('aborted')),
        );
      },
    }),
    { callsInFlightMax: 5 },
  );
  const stub = client.stub(testService);
  const controller = new AbortController();
  let settled = 0;
  const calls = Array.from({ length: 8 }, (_, i) =>
    stub
      .wait({ id: String(i) }, { signal: controller.signal })
      .then(
        () => 'ok',
        (error: unknown) => (isRpcError(error) ? error.code : 'other'),
      )
      .finally(() => settled++),
  );
  await waitFor(() => started === 5 && settled === 3, 'five calls to start, three to be refused');
  controller.abort();
  const outcomes = await Promise.all(calls);
  assert.equal(outcomes.filter((code) => code === 'RESOURCE_EXHAUSTED').length, 3);
  assert.equal(outcomes.filter((code) => code === 'CANCELLED').length, 5);
  await close();
});

test('one-way sends past bufferedBytesMax throw RESOURCE_EXHAUSTED; the ones accepted arrive', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const { close, received, stub } = await startNotifyPair({}, { bufferedBytesMax: 64 * 1024 });
  await stub.echo({ text: 'connect first' });
  let accepted = 0;
  let refused = 0;
  // One synchronous burst: nothing is flushed until the loop yields, so the buffer fills.
  for (let seq = 0; seq < 2000; seq++) {
    try {
      stub.notify({ seq, pad: 'x'.repeat(100) } as { seq: number });
      accepted++;
    } catch (error) {
      assert.ok(exhausted(error), String(error));
      refused++;
    }
  }
  assert.ok(refused > 0 && accepted > 0, `accepted ${accepted}, refused ${refused}`);
  await waitFor(() => received.length === accepted, 'every accepted message');
  assert.deepEqual(
    received,
    Array.from({ length: accepted }, (_, i) => i),
  );
  await assert.doesNotReject(stub.echo({ text: 'still fine' }));
  await close();
});

test('the server refuses streams past its streamsInFlightMax; unary calls go on', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const { client, close } = await startPair(
    defaultImplementation({
      async *download(_request, context) {
        yield { index: 0, data: new Uint8Array(1) };
        await new Promise((resolve) => context.signal.addEventListener('abort', resolve));
      },
    }),
    { streamsInFlightMax: 2 },
  );
  const stub = client.stub(testService);
  const first = stub.download({ count: 1, size: 1 });
  const second = stub.download({ count: 1, size: 1 });
  const open: AsyncIterator<unknown>[] = [first, second].map((s) => s[Symbol.asyncIterator]());
  for (const iterator of open) await iterator.next(); // both streams are running on the server
  const third = stub.download({ count: 1, size: 1 })[Symbol.asyncIterator]();
  await assert.rejects(
    third.next(),
    (error: unknown) =>
      exhausted(error) && /streams open on this connection/.test((error as Error).message),
  );
  first.cancel();
  second.cancel();
  assert.deepEqual(await stub.echo({ text: 'unary calls unaffected' }), {
    text: 'unary calls unaffected',
  });
  await close();
});

test('the client refuses streams past its own streamsInFlightMax before sending them', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const { client, close } = await startPair(
    defaultImplementation({
      async *download(_request, context) {
        await new Promise((resolve) => context.signal.addEventListener('abort', resolve));
      },
    }),
    {},
    { streamsInFlightMax: 1 },
  );
  const stub = client.stub(testService);
  await stub.echo({ text: 'connect first' });
  const first = stub.download({ count: 1, size: 1 });
  const second = stub.download({ count: 1, size: 1 })[Symbol.asyncIterator]();
  await assert.rejects(
    second.next(),
    (error: unknown) =>
      exhausted(error) && /too many streams open to/.test((error as Error).message),
  );
  first.cancel();
  await close();
});

test('a server stops reading from a client that does not read its responses, then resumes', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  let handled = 0;
  const { address, close } = await startPair(
    defaultImplementation({
      bytes: (request) => {
        handled++;
        return request;
      },
    }),
    { bufferedBytesMax: 256 * 1024 },
  );
  const [host, port] = address.split(':');
  const socket = connect({ host: host!, port: Number(port) });
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.pause(); // read nothing: responses pile up on the server side
  const calls = 2000;
  const payload = new Uint8Array(16 * 1024);
  for (let id = 1; id <= calls; id++) {
    socket.write(
      encodeFrame(FrameKind.CALL, FLAG_END | FLAG_RAW, id, 0, Buffer.from('test.bytes'), payload),
    );
  }
  // Wait until the server stalls: the handled count stops moving for many event-loop turns.
  let last = -1;
  let stableTurns = 0;
  while (stableTurns < 200) {
    await new Promise((resolve) => setImmediate(resolve));
    stableTurns = handled === last ? stableTurns + 1 : 0;
    last = handled;
  }
  assert.ok(handled < calls, `server handled all ${calls} calls for a client that reads nothing`);
  // Reading again lets the server drain and resume; every call is answered.
  let responses = 0;
  const decoder = new FrameDecoder((kind) => {
    if (kind === FrameKind.RESPONSE) responses++;
  });
  socket.on('data', (chunk) => decoder.push(chunk));
  socket.resume();
  await waitFor(() => responses === calls, 'every response after resuming', 20_000);
  assert.equal(handled, calls);
  socket.destroy();
  await close();
});
