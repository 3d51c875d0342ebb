/**
 * Unary and one-way calls over real sockets: results, ordering, thousands of concurrent calls on one
 * connection, error codes, deadlines enforced on both sides, and cancellation reaching the handler.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { encodeMessage } from '../../src/rpc/codec.js';
import { RpcError } from '../../src/rpc/errors.js';
import { encodeFrame, FLAG_END, FrameDecoder, FrameKind } from '../../src/rpc/frame.js';
import { defineService, unary } from '../../src/rpc/index.js';
import {
  defaultImplementation,
  recordingLogger,
  startNotifyPair,
  startPair,
  TEST_TIMEOUT_MS,
  testService,
  waitFor,
} from './helpers.js';

function isCode(code: string) {
  return (error: unknown) => error instanceof RpcError && error.code === code;
}

test('unary calls return their results; binary passes through as bytes', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const { client, close } = await startPair();
  const stub = client.stub(testService);
  assert.deepEqual(await stub.echo({ text: 'hello' }), { text: 'hello' });
  const bytes = new Uint8Array(100_000).map((_, i) => i & 0xff);
  const back = await stub.bytes(bytes);
  assert.ok(back instanceof Uint8Array);
  assert.deepEqual(new Uint8Array(back), bytes);
  await close();
});

test('5000 concurrent calls on one connection each get their own answer', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const { client, server, close } = await startPair();
  const stub = client.stub(testService);
  const calls = Array.from({ length: 5000 }, (_, i) => stub.echo({ text: `call ${i}` }));
  const results = await Promise.all(calls);
  assert.deepEqual(
    results.map((result) => result.text),
    calls.map((_, i) => `call ${i}`),
  );
  assert.equal(server.connectionCount, 1, 'all calls shared one connection');
  await close();
});

test('handlers see unary calls in the order they were issued', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const seen: string[] = [];
  const { client, close } = await startPair(
    defaultImplementation({
      echo: (request) => {
        seen.push(request.text);
        return request;
      },
    }),
  );
  const stub = client.stub(testService);
  const texts = Array.from({ length: 1000 }, (_, i) => String(i));
  await Promise.all(texts.map((text) => stub.echo({ text })));
  assert.deepEqual(seen, texts);
  await close();
});

test('calls issued while the client dials wait for the connection, then run', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const notified: number[] = [];
  const { client, close } = await startPair(
    defaultImplementation({ notify: (message) => void notified.push(message.seq) }),
  );
  const stub = client.stub(testService);
  assert.equal(client.state, 'idle');
  const first = stub.echo({ text: 'a' });
  assert.equal(client.state, 'connecting');
  stub.notify({ seq: 1 });
  const second = stub.echo({ text: 'b' });
  assert.deepEqual(await Promise.all([first, second]), [{ text: 'a' }, { text: 'b' }]);
  assert.equal(client.state, 'ready');
  await waitFor(() => notified.length === 1, 'the one-way message queued while dialing');
  assert.deepEqual(notified, [1]);
  await close();
});

test('one-way messages arrive in the order they were sent', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const { close, received, stub } = await startNotifyPair();
  const count = 20_000;
  for (let seq = 0; seq < count; seq++) stub.notify({ seq });
  await waitFor(() => received.length === count, 'all one-way messages');
  assert.deepEqual(
    received,
    Array.from({ length: count }, (_, i) => i),
  );
  await close();
});

test('flush() writes queued one-way messages at once instead of at the end of the turn', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const { client, close, received, stub } = await startNotifyPair();
  await stub.echo({ text: 'connected' });
  stub.notify({ seq: 1 });
  // Queued: the connection writes it with the rest of this event-loop turn.
  assert.ok(client.bufferedBytes > 0);
  client.flush();
  // Taken by the kernel already (a small frame on an idle loopback socket).
  assert.equal(client.bufferedBytes, 0);
  stub.notify({ seq: 2 });
  await waitFor(() => received.length === 2, 'both one-way messages');
  assert.deepEqual(received, [1, 2]);
  await close();
});

test('handler errors reach the caller with their code and message', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const { client, close } = await startPair(
    defaultImplementation({
      echo: (request) => {
        if (request.text === 'missing') throw new RpcError('NOT_FOUND', 'no such key');
        throw new Error('boom');
      },
    }),
  );
  const stub = client.stub(testService);
  await assert.rejects(stub.echo({ text: 'missing' }), (error: unknown) => {
    return (
      error instanceof RpcError && error.code === 'NOT_FOUND' && error.message === 'no such key'
    );
  });
  await assert.rejects(stub.echo({ text: 'x' }), (error: unknown) => {
    return error instanceof RpcError && error.code === 'UNKNOWN' && error.message === 'boom';
  });
  await close();
});

test('unknown methods answer UNIMPLEMENTED and invalid requests INVALID_ARGUMENT', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const { logger, records } = recordingLogger();
  const { client, close } = await startPair(defaultImplementation(), { logger });
  const other = defineService({ name: 'test', methods: { nope: unary<number, number>() } });
  await assert.rejects(client.stub(other).nope(1), isCode('UNIMPLEMENTED'));
  const stub = client.stub(testService);
  const sneaky = stub.validated as unknown as (request: unknown) => Promise<number>;
  await assert.rejects(sneaky({ n: 'not a number' }), isCode('INVALID_ARGUMENT'));
  assert.equal(await stub.validated({ n: 21 }), 42, 'the connection keeps serving');
  const reasons = records.map((record) => String(record.reason));
  assert.ok(reasons.includes('unknown method test.nope'), JSON.stringify(reasons));
  assert.ok(reasons.includes('request failed validation'), JSON.stringify(reasons));
  await close();
});

test('a deadline fails the call and aborts the handler with DEADLINE_EXCEEDED', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  let handlerReason: unknown = null;
  const { client, close } = await startPair(
    defaultImplementation({
      wait: (_request, context) =>
        new Promise((_, reject) =>
          context.signal.addEventListener('abort', () => {
            handlerReason = context.signal.reason;
            reject(context.signal.reason);
          }),
        ),
    }),
  );
  const stub = client.stub(testService);
  await assert.rejects(stub.wait({ id: 'a' }, { timeoutMs: 30 }), isCode('DEADLINE_EXCEEDED'));
  await assert.rejects(stub.echo({ text: 'x' }, { timeoutMs: 0 }), isCode('INVALID_ARGUMENT'));
  await assert.rejects(
    stub.echo({ text: 'x' }, { timeoutMs: 2 ** 40 }),
    isCode('INVALID_ARGUMENT'),
  );
  await waitFor(() => handlerReason !== null, 'the handler to see the deadline');
  assert.ok(isCode('DEADLINE_EXCEEDED')(handlerReason));
  await close();
});

test('cancelling with an AbortSignal reaches the handler as CANCELLED', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  let handlerReason: unknown = null;
  let started = false;
  const { client, close } = await startPair(
    defaultImplementation({
      wait: (_request, context) => {
        started = true;
        return new Promise((_, reject) =>
          context.signal.addEventListener('abort', () => {
            handlerReason = context.signal.reason;
            reject(context.signal.reason);
          }),
        );
      },
    }),
  );
  const stub = client.stub(testService);
  const controller = new AbortController();
  const call = stub.wait({ id: 'b' }, { signal: controller.signal });
  await waitFor(() => started, 'the handler to start');
  controller.abort();
  await assert.rejects(call, isCode('CANCELLED'));
  await waitFor(() => handlerReason !== null, 'the handler to see the cancellation');
  assert.ok(isCode('CANCELLED')(handlerReason));
  const aborted = new AbortController();
  aborted.abort();
  await assert.rejects(stub.echo({ text: 'x' }, { signal: aborted.signal }), isCode('CANCELLED'));
  await close();
});

test('the server enforces the deadline a call carries even if the client never gives up', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  // A raw client sends a CALL with a 40 ms deadline and no cancel; the server must answer
  // DEADLINE_EXCEEDED by itself.
  const { address, close } = await startPair();
  const [host, port] = address.split(':');
  const socket = connect({ host: host!, port: Number(port) });
  const errors: { callId: number; status: number; message: string }[] = [];
  const decoder = new FrameDecoder((kind, _flags, callId, arg, _m, body) => {
    if (kind === FrameKind.ERROR) errors.push({ callId, status: arg, message: body.toString() });
  });
  socket.on('data', (chunk) => decoder.push(chunk));
  const payload = encodeMessage({ id: 'raw' });
  socket.write(encodeFrame(FrameKind.CALL, FLAG_END, 9, 40, Buffer.from('test.wait'), payload));
  await waitFor(() => errors.length === 1, 'the server-side deadline');
  assert.equal(errors[0]!.callId, 9);
  assert.equal(errors[0]!.status, 4, 'DEADLINE_EXCEEDED');
  socket.destroy();
  await close();
});
