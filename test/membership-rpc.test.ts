/**
 * Process-level SWIM over real sockets on 127.0.0.1 with the TCP half on shoal RPC: every member
 * has one peer RpcServer (port from binding 0) and its UDP socket on the same port number. Members
 * join through one seed by TCP push-pull; a member whose outgoing UDP is dropped stays alive
 * through the TCP fallback ping, while one that is cut off on both is declared dead; malformed
 * push-pull and ping requests are answered with errors while the member keeps serving. Waits are
 * bounded conditions, not sleeps.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import {
  META_BYTES_MAX,
  Memberlist,
  type MemberlistOptions,
  membershipService,
  type PacketTransport,
  type PingMessage,
  PUSH_PULL_BYTES_MAX,
  type PushPullMessage,
} from '../src/membership/index.js';
import { UdpTransport } from '../src/membership/udp-transport.js';
import { isRpcError, RpcClientPool, RpcServer } from '../src/rpc/index.js';

const fastConfig = {
  probeIntervalMs: 200,
  probeTimeoutMs: 50,
  gossipIntervalMs: 20,
  pushPullIntervalMs: 1000,
  suspicionMult: 3,
};
/** Attempts at finding a port free for both TCP and UDP (UDP may be taken by someone else). */
const PORT_ATTEMPTS_MAX = 10;

interface TestMember {
  readonly memberlist: Memberlist;
  readonly server: RpcServer;
  readonly clients: RpcClientPool;
  /** Outgoing datagrams the wrapper dropped (only for members with `dropUdpOut`). */
  readonly udpDropped: () => number;
}

const started: TestMember[] = [];
after(async () => {
  for (const member of started) {
    await member.memberlist.shutdown();
    await member.clients.close(0);
    await member.server.close(0);
  }
});

/** Wraps a bound UDP transport so that everything it would send is dropped (UDP blocked out). */
function droppingOutgoing(udp: UdpTransport): PacketTransport & { dropped: number } {
  return {
    dropped: 0,
    address: udp.address,
    stats: udp.stats,
    send(): void {
      this.dropped++;
    },
    onPacket: (handler) => udp.onPacket(handler),
    close: () => udp.close(),
  };
}

/** A peer RPC server on port 0 and a UDP socket on the same port number. */
async function bindPeerPorts(): Promise<{ server: RpcServer; udp: UdpTransport }> {
  for (let attempt = 1; ; attempt++) {
    const server = new RpcServer();
    const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
    try {
      return { server, udp: await UdpTransport.bind('127.0.0.1', port) };
    } catch (error) {
      await server.close(0);
      if (attempt >= PORT_ATTEMPTS_MAX) throw error;
    }
  }
}

async function startMember(name: string, seed: number, dropUdpOut = false): Promise<TestMember> {
  const { server, udp } = await bindPeerPorts();
  const clients = new RpcClientPool();
  const packetTransport = dropUdpOut ? droppingOutgoing(udp) : udp;
  const options: MemberlistOptions = {
    name,
    config: fastConfig,
    seed,
    rpc: { server, clients },
    packetTransport,
  };
  const memberlist = await Memberlist.create(options);
  const member: TestMember = {
    memberlist,
    server,
    clients,
    udpDropped: () => ('dropped' in packetTransport ? packetTransport.dropped : 0),
  };
  started.push(member);
  return member;
}

async function waitFor(what: string, condition: () => boolean, deadlineMs = 20_000) {
  const startedMs = Date.now();
  while (!condition()) {
    if (Date.now() - startedMs > deadlineMs) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function stateOf(observer: Memberlist, name: string): string | undefined {
  return observer.members().find((member) => member.name === name)?.state;
}

async function rejectionCode(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (error) {
    assert.ok(isRpcError(error), `expected an RpcError, got ${String(error)}`);
    return error.code;
  }
  return 'OK';
}

test('TCP push-pull joins; UDP-blocked member survives by fallback ping; fully cut off is dead', async () => {
  const seed = await startMember('seed', 1);
  const a = await startMember('a', 2);
  const b = await startMember('b', 3);
  const mute = await startMember('mute', 4, true);
  const cut = await startMember('cut', 5, true);
  const everyone = [seed, a, b, mute, cut];
  // UDP shares the RPC server's port number: peers dial TCP at the address they learned by SWIM.
  for (const member of everyone) {
    assert.equal(member.memberlist.address, `127.0.0.1:${member.server.address.port}`);
  }

  const seedEvents: string[] = [];
  seed.memberlist.on('event', (event) => seedEvents.push(`${event.type}:${event.member.name}`));
  for (const member of [a, b, mute, cut]) {
    // The muted members cannot send a single datagram, so their join can only work over TCP.
    assert.equal(await member.memberlist.join([seed.memberlist.address]), seed.memberlist.address);
  }
  assert.ok(seed.memberlist.stats.stream.pushPullsServed >= 4);
  assert.ok(mute.memberlist.stats.stream.pushPullsSent >= 1);
  await waitFor('everyone to see five alive members', () =>
    everyone.every((member) => member.memberlist.aliveMembers().length === 5),
  );

  // Cut "cut" off on TCP too: its RPC server stops, its outgoing UDP was dropped all along.
  await cut.server.close(0);
  await waitFor('cut to be declared dead by the seed, a and b', () =>
    [seed, a, b].every((member) => stateOf(member.memberlist, 'cut') === 'dead'),
  );

  // Meanwhile "mute" was probed as often, and every probe of it needed the TCP fallback.
  await waitFor('ten probes of mute rescued over TCP', () => {
    let rescues = 0;
    for (const member of [seed, a, b]) rescues += member.memberlist.stats.swim.fallbackPingRescues;
    return rescues >= 10;
  });
  for (const member of [seed, a, b]) {
    assert.equal(stateOf(member.memberlist, 'mute'), 'alive');
    assert.ok(member.memberlist.stats.stream.pingsServed > 0);
  }
  assert.ok(seedEvents.includes('dead:cut'));
  assert.ok(!seedEvents.includes('dead:mute'));
  assert.ok(mute.udpDropped() > 0);
  // mute's own probes fail over UDP too; the fallback keeps it from suspecting the others.
  assert.ok(mute.memberlist.stats.swim.fallbackPingRescues > 0);
  for (const name of ['seed', 'a', 'b']) assert.equal(stateOf(mute.memberlist, name), 'alive');
});

test('malformed push-pull and ping requests get coded errors and the member keeps serving', async () => {
  const target = await startMember('target', 11);
  const peer = await startMember('peer', 12);
  await peer.memberlist.join([target.memberlist.address]);
  const pool = new RpcClientPool();
  const stub = pool.stub(target.memberlist.address, membershipService);
  const asPushPull = (value: unknown) => value as PushPullMessage;
  const options = { timeoutMs: 5000 };
  try {
    const entry = (name: string) => ({
      name,
      address: `${name}:1`,
      incarnation: 0,
      state: 0,
      meta: new Uint8Array(META_BYTES_MAX),
    });
    const malformed = [
      asPushPull({ type: 'pushPull', join: 'yes', reply: true, states: [] }),
      asPushPull({ type: 'pushPull', join: false, reply: true, states: [{ name: 5 }] }),
      asPushPull({ type: 'ping', seq: 1 }),
      asPushPull(new Uint8Array([1, 2, 3])),
      asPushPull(null),
    ];
    for (const request of malformed) {
      assert.equal(await rejectionCode(stub.pushPull(request, options)), 'INVALID_ARGUMENT');
    }
    // Well-formed but over PUSH_PULL_BYTES_MAX (and under the RPC frame limit).
    const states = Array.from({ length: 8000 }, (_, index) => entry(`big-${index}`));
    const huge = asPushPull({ type: 'pushPull', join: false, reply: true, states });
    assert.ok(states.length * META_BYTES_MAX < PUSH_PULL_BYTES_MAX * 1.1);
    assert.equal(await rejectionCode(stub.pushPull(huge, options)), 'RESOURCE_EXHAUSTED');
    const badPing = { type: 'ping', seq: -1 } as unknown as PingMessage;
    assert.equal(await rejectionCode(stub.ping(badPing, options)), 'INVALID_ARGUMENT');
    assert.equal(target.memberlist.stats.stream.requestsRejected, malformed.length + 2);
    assert.equal(stateOf(target.memberlist, 'big-0'), undefined);

    // Still serving: a valid exchange returns its state, and a ping for its name is acked.
    const reply = await stub.pushPull(
      { type: 'pushPull', join: false, reply: true, states: [] },
      options,
    );
    assert.deepEqual(reply?.states.map((state) => state.name).sort(), ['peer', 'target']);
    const ping = (target: string): PingMessage => ({
      type: 'ping',
      seq: 7,
      target,
      source: 'x',
      sourceAddress: 'x:1',
    });
    assert.deepEqual(await stub.ping(ping('target'), options), { ack: true });
    assert.deepEqual(await stub.ping(ping('someone-else'), options), { ack: false });
    await waitFor('the peer to still see the target alive after more probes', () => {
      return (
        peer.memberlist.stats.swim.probes >= 10 && stateOf(peer.memberlist, 'target') === 'alive'
      );
    });
  } finally {
    await pool.close(0);
  }
});

test('a join through a seed nobody listens on times out and names the TCP error', async () => {
  const closed = new RpcServer();
  const { port } = await closed.listen({ port: 0, host: '127.0.0.1' });
  await closed.close(0);
  const lonely = await startMember('lonely', 21);
  await assert.rejects(lonely.memberlist.join([`127.0.0.1:${port}`], 1500), (error: unknown) => {
    const { code, message } = error as { code?: string; message: string };
    return code === 'JOIN_TIMEOUT' && message.includes('UNAVAILABLE');
  });
  assert.ok(lonely.memberlist.stats.stream.pushPullsFailed >= 1);
});

test('the UDP port must be the RPC server port number', async () => {
  const server = new RpcServer();
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
  const clients = new RpcClientPool();
  try {
    await assert.rejects(
      Memberlist.create({
        name: 'x',
        port: port === 65535 ? port - 1 : port + 1,
        rpc: { server, clients },
      }),
      (error: unknown) => (error as { code?: string }).code === 'INVALID_OPTIONS',
    );
  } finally {
    await server.close(0);
  }
});
