/**
 * Connection management over real sockets: reconnect after a server restart, fail-fast backoff
 * with a seeded random source, keepalive detecting peers that stop answering (both directions),
 * graceful close on both sides, and the per-address client pool.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { encodeFrame, FrameDecoder, FrameKind } from '../../src/rpc/frame.js';
import {
  BACKOFF_DEFAULTS,
  backoffDelayMs,
  isRpcError,
  RpcClient,
  RpcClientPool,
  RpcServer,
  seededRandom,
} from '../../src/rpc/index.js';
import {
  defaultImplementation,
  recordingLogger,
  startPair,
  TEST_TIMEOUT_MS,
  testService,
  waitFor,
} from './helpers.js';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function serveOn(port: number): Promise<RpcServer> {
  const server = new RpcServer({ logger: recordingLogger().logger });
  server.addService(testService, defaultImplementation());
  await server.listen({ port, host: '127.0.0.1' });
  return server;
}

/** Retries `attempt` while it fails with UNAVAILABLE, up to `limitMs`; returns its result. */
async function eventually<T>(attempt: () => Promise<T>, limitMs = 5_000): Promise<T> {
  const start = performance.now();
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (!isRpcError(error, 'UNAVAILABLE') || performance.now() - start > limitMs) throw error;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}

test('the client reconnects after the server restarts', { timeout: TEST_TIMEOUT_MS }, async () => {
  const port = await freePort();
  let server = await serveOn(port);
  const client = new RpcClient(`127.0.0.1:${port}`, {
    logger: recordingLogger().logger,
    backoff: { initialMs: 5, maxMs: 20, random: seededRandom(1) },
  });
  const stub = client.stub(testService);
  assert.deepEqual(await stub.echo({ text: 'before' }), { text: 'before' });
  await server.close(1_000);
  await assert.rejects(stub.echo({ text: 'down' }), (error: unknown) =>
    isRpcError(error, 'UNAVAILABLE'),
  );
  server = await serveOn(port);
  assert.deepEqual(await eventually(() => stub.echo({ text: 'after' })), { text: 'after' });
  assert.equal(client.state, 'ready');
  await client.close();
  await server.close();
});

test('after a failed dial, calls fail fast with UNAVAILABLE until the backoff delay passes', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const port = await freePort();
  const client = new RpcClient(`127.0.0.1:${port}`, {
    logger: recordingLogger().logger,
    backoff: { initialMs: 60_000, maxMs: 60_000, jitter: 0.1, random: seededRandom(5) },
  });
  const stub = client.stub(testService);
  await assert.rejects(stub.echo({ text: 'x' }), /cannot connect/);
  assert.equal(client.state, 'backoff');
  const started = performance.now();
  // The injected random source decides the jittered delay: the same seed predicts it.
  const expectedMs = backoffDelayMs(
    { ...BACKOFF_DEFAULTS, initialMs: 60_000, maxMs: 60_000, jitter: 0.1, random: seededRandom(5) },
    1,
  );
  await assert.rejects(stub.echo({ text: 'x' }), (error: unknown) => {
    const waitMs = Number(/next attempt in (\d+) ms/.exec(String(error))?.[1]);
    return isRpcError(error, 'UNAVAILABLE') && waitMs <= expectedMs && waitMs > expectedMs - 1_000;
  });
  assert.notEqual(expectedMs, 60_000, 'jitter moved the delay off the base value');
  assert.throws(
    () => stub.notify({ seq: 1 }),
    (error: unknown) => isRpcError(error, 'UNAVAILABLE'),
  );
  assert.ok(performance.now() - started < 1_000, 'failing fast, not waiting for the backoff');
  await client.close();
});

test('keepalive closes a connection whose server stops answering', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  // A "server" that accepts the connection and then never reads or writes: a hung peer.
  const sockets: Socket[] = [];
  const hung = createServer((socket) => {
    socket.pause();
    sockets.push(socket);
  });
  await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
  const { port } = hung.address() as { port: number };
  const { logger, records } = recordingLogger();
  const client = new RpcClient(`127.0.0.1:${port}`, {
    logger,
    keepaliveIntervalMs: 20,
    keepaliveTimeoutMs: 60,
  });
  await assert.rejects(client.stub(testService).echo({ text: 'anyone?' }), (error: unknown) => {
    return isRpcError(error, 'UNAVAILABLE') && /keepalive/.test(error.message);
  });
  assert.ok(records.some((record) => record.msg === 'rpc: keepalive timed out'));
  await client.close();
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => hung.close(resolve));
});

test('keepalive lets a server drop a client that stopped answering', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const { server, address, close } = await startPair(defaultImplementation(), {
    keepaliveIntervalMs: 20,
    keepaliveTimeoutMs: 60,
  });
  const [host, port] = address.split(':');
  const socket = connect({ host: host!, port: Number(port) });
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.pause(); // never reads the server's PINGs, never answers
  await waitFor(() => server.connectionCount === 1, 'the server to see the connection');
  await waitFor(() => server.connectionCount === 0, 'the server to drop the silent client');
  socket.destroy();
  await close();
});

test('a peer that answers pings keeps the connection through many keepalive rounds', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  // A minimal peer that answers every PING with a PONG and counts them; nothing else.
  let pingsAnswered = 0;
  let peerSocket: Socket | null = null;
  const peer = createServer((socket) => {
    peerSocket = socket;
    const decoder = new FrameDecoder((kind, _flags, _callId, arg) => {
      if (kind !== FrameKind.PING) return;
      pingsAnswered++;
      socket.write(encodeFrame(FrameKind.PONG, 0, 0, arg, null, null));
    });
    socket.on('data', (chunk) => decoder.push(chunk));
  });
  await new Promise<void>((resolve) => peer.listen(0, '127.0.0.1', resolve));
  const { port } = peer.address() as { port: number };
  const client = new RpcClient(`127.0.0.1:${port}`, {
    logger: recordingLogger().logger,
    keepaliveIntervalMs: 10,
    keepaliveTimeoutMs: 10_000,
  });
  client.stub(testService).notify({ seq: 1 }); // dials the connection
  await waitFor(() => pingsAnswered >= 10, 'ten keepalive rounds');
  assert.equal(client.state, 'ready');
  assert.equal((peerSocket as Socket | null)?.destroyed, false);
  await client.close(0);
  await new Promise((resolve) => peer.close(resolve));
});

test('server close lets calls in flight finish, then refuses new ones', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  let release: (() => void) | null = null;
  const { client, server, close } = await startPair(
    defaultImplementation({
      wait: () => new Promise<string>((resolve) => (release = () => resolve('finished'))),
    }),
  );
  const stub = client.stub(testService);
  const inFlight = stub.wait({ id: 'slow' });
  await waitFor(() => release !== null, 'the call to reach the handler');
  const closing = server.close(5_000);
  await assert.rejects(stub.echo({ text: 'late' }), (error: unknown) =>
    isRpcError(error, 'UNAVAILABLE'),
  );
  release!();
  assert.equal(await inFlight, 'finished');
  await closing;
  assert.equal(server.connectionCount, 0);
  await close();
});

test('client close lets calls in flight finish, then refuses new ones', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  let release: (() => void) | null = null;
  const { client, close } = await startPair(
    defaultImplementation({
      wait: () => new Promise<string>((resolve) => (release = () => resolve('done'))),
    }),
  );
  const stub = client.stub(testService);
  const inFlight = stub.wait({ id: 'slow' });
  await waitFor(() => release !== null, 'the call to reach the handler');
  const closing = client.close(5_000);
  await assert.rejects(stub.echo({ text: 'late' }), /closed/);
  release!();
  assert.equal(await inFlight, 'done');
  await closing;
  assert.equal(client.state, 'closed');
  await close();
});

test('calls in flight fail with UNAVAILABLE when the connection is cut', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const { client, server, close } = await startPair(
    defaultImplementation({ wait: () => new Promise<string>(() => {}) }),
  );
  const call = client.stub(testService).wait({ id: 'forever' });
  await waitFor(() => server.connectionCount === 1, 'the connection');
  await server.close(0);
  await assert.rejects(call, (error: unknown) => isRpcError(error, 'UNAVAILABLE'));
  await close();
});

test('the pool keeps one client per address', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { address, close } = await startPair();
  const pool = new RpcClientPool({ logger: recordingLogger().logger });
  assert.equal(pool.get(address), pool.get(address));
  const stub = pool.stub(address, testService);
  assert.deepEqual(await stub.echo({ text: 'pooled' }), { text: 'pooled' });
  assert.equal(pool.size, 1);
  await pool.remove(address);
  assert.equal(pool.size, 0);
  await pool.close();
  await close();
});

test('a quiet connection writes at the end of the callback, a busy one after the turn', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const received: number[] = [];
  const pair = await startPair(
    defaultImplementation({ notify: (message) => void received.push(message.seq) }),
  );
  const stub = pair.client.stub(testService);
  try {
    stub.notify({ seq: 0 });
    await waitFor(() => received.length === 1, 'the connection is up');
    const socket = (pair.client as unknown as { connection: { socket: { bytesWritten: number } } })
      .connection.socket;
    const afterTick = () => new Promise<void>((resolve) => process.nextTick(resolve));
    const afterTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
    // Quiet (the last write carried one frame): the frame leaves before the next tick's turn.
    let before = socket.bytesWritten;
    stub.notify({ seq: 1 });
    await afterTick();
    assert.ok(socket.bytesWritten > before, 'a lone frame waited for the rest of the turn');
    // Five frames in one callback make one write, and the connection counts as busy ...
    await afterTurn();
    for (let seq = 2; seq < 7; seq++) stub.notify({ seq });
    await afterTick();
    await afterTurn();
    // ... so the next frame waits for the turn's other callbacks.
    before = socket.bytesWritten;
    stub.notify({ seq: 7 });
    await afterTick();
    assert.equal(socket.bytesWritten, before, 'a busy connection wrote before the turn ended');
    await afterTurn();
    assert.ok(socket.bytesWritten > before);
    await waitFor(() => received.length === 8, 'every notify arrived');
    assert.deepEqual(received, [0, 1, 2, 3, 4, 5, 6, 7]);
  } finally {
    await pair.close();
  }
});
