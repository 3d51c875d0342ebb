/**
 * RpcStreamTransport against hand-written peers on a loopback RpcServer: replies are validated
 * (a peer's garbage is rejected with a coded error and counted), metadata is copied out of the
 * frame, pings resolve false instead of throwing, and a closed transport answers UNAVAILABLE.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { isRpcError, RpcClientPool, RpcServer } from '../rpc/index.js';
import type { PingMessage, PushPullMessage } from './core/types.js';
import { membershipService, RpcStreamTransport } from './rpc-stream-transport.js';

const logger = pino({ level: 'silent' });
const request: PushPullMessage = { type: 'pushPull', join: false, reply: true, states: [] };
const ping: PingMessage = { type: 'ping', seq: 1, target: 'b', source: 'a', sourceAddress: 'a:1' };

/** What the fake peer answers next. */
let nextReply: unknown = null;
const peer = new RpcServer({ logger });
let peerAddress = '';
const clients = new RpcClientPool({ logger });

before(async () => {
  peer.addService(membershipService, {
    pushPull: () => nextReply as PushPullMessage,
    ping: () => nextReply as { ack: boolean },
  });
  const { port } = await peer.listen({ port: 0, host: '127.0.0.1' });
  peerAddress = `127.0.0.1:${port}`;
});
after(async () => {
  await clients.close(0);
  await peer.close(0);
});

function transport(): RpcStreamTransport {
  return new RpcStreamTransport({ server: new RpcServer({ logger }), clients, logger });
}

test('a well-formed reply is returned with its metadata copied out of the frame', async () => {
  const meta = new Uint8Array([1, 2, 3]);
  const entry = { name: 'b', address: 'b:1', incarnation: 4, state: 0 as const, meta };
  nextReply = { type: 'pushPull', join: false, reply: false, states: [entry] };
  const reply = await transport().pushPull(peerAddress, request, 2000);
  assert.deepEqual(reply?.states[0]?.name, 'b');
  const copied = reply!.states[0]!.meta;
  assert.deepEqual([...copied], [1, 2, 3]);
  // A copy owns exactly its bytes, unlike a view into the received frame.
  assert.equal(copied.byteOffset, 0);
  assert.equal(copied.buffer.byteLength, 3);
});

test('malformed replies are rejected with a coded error and counted', async () => {
  const stream = transport();
  const bad = [
    { type: 'pushPull', join: false, reply: false, states: [{ name: '' }] },
    { type: 'pushPull', join: false, reply: true, states: [] }, // A reply must not ask for one.
    { ack: true },
    null,
  ];
  for (const reply of bad) {
    nextReply = reply;
    await assert.rejects(stream.pushPull(peerAddress, request, 2000), (error: unknown) =>
      isRpcError(error, 'INTERNAL'),
    );
  }
  assert.equal(stream.stats.repliesRejected, bad.length);
  assert.equal(stream.stats.pushPullsFailed, bad.length);
});

test('pings resolve true only on a well-formed ack, and false on errors', async () => {
  const stream = transport();
  nextReply = { ack: true };
  assert.equal(await stream.ping(peerAddress, ping, 2000), true);
  nextReply = { ack: 'yes' };
  assert.equal(await stream.ping(peerAddress, ping, 2000), false);
  const closed = new RpcServer({ logger });
  const { port } = await closed.listen({ port: 0, host: '127.0.0.1' });
  await closed.close(0);
  assert.equal(await stream.ping(`127.0.0.1:${port}`, ping, 2000), false);
  assert.deepEqual([stream.stats.pingsAcked, stream.stats.pingsFailed], [1, 2]);
});

test('a closed transport answers UNAVAILABLE; its service stays registered', async () => {
  const server = new RpcServer({ logger });
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
  const served = new RpcStreamTransport({ server, clients, logger });
  served.serve({ pushPull: () => null, ping: () => true });
  const caller = transport();
  const address = `127.0.0.1:${port}`;
  assert.equal(await caller.ping(address, ping, 2000), true);
  await served.close();
  const stub = clients.stub(address, membershipService);
  await assert.rejects(stub.ping(ping, { timeoutMs: 2000 }), (error: unknown) =>
    isRpcError(error, 'UNAVAILABLE'),
  );
  await server.close(0);
});
