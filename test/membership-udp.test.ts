/**
 * Process-level SWIM over real UDP sockets on 127.0.0.1: members join through one seed, a member
 * that is shut down without leaving is detected as dead, a graceful leave is seen as left, and
 * garbage datagrams are counted and dropped. Timings are shortened so the suite stays quick; waits
 * are bounded conditions, not sleeps.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { after, test } from 'node:test';
import {
  decodeMemberMeta,
  encodeMemberMeta,
  encodePacket,
  Memberlist,
  type Message,
} from '../src/membership/index.js';
import { parseAddress } from '../src/membership/udp-transport.js';

const fastConfig = {
  probeIntervalMs: 100,
  probeTimeoutMs: 40,
  gossipIntervalMs: 20,
  pushPullIntervalMs: 2000,
  suspicionMult: 3,
};

const members: Memberlist[] = [];
after(async () => {
  for (const member of members) await member.shutdown();
});

async function waitFor(what: string, condition: () => boolean, deadlineMs = 15_000) {
  const startedMs = Date.now();
  while (!condition()) {
    if (Date.now() - startedMs > deadlineMs) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function stateOf(observer: Memberlist, name: string): string | undefined {
  return observer.members().find((member) => member.name === name)?.state;
}

test('members join through a seed, detect a crashed member and see a graceful leave', async () => {
  for (let index = 0; index < 4; index++) {
    members.push(
      await Memberlist.create({ name: `node-${index}`, config: fastConfig, seed: index + 1 }),
    );
  }
  const [seed, a, b, c] = members as [Memberlist, Memberlist, Memberlist, Memberlist];
  for (const member of [a, b, c]) assert.equal(await member.join([seed.address]), seed.address);
  await waitFor('everyone to see four alive members', () =>
    members.every((member) => member.aliveMembers().length === 4),
  );

  const events: string[] = [];
  seed.on('event', (event) => events.push(`${event.type}:${event.member.name}`));
  const meta = {
    role: 'learner',
    clientUrls: [],
    peerUrls: ['http://127.0.0.1:2380'],
    freeDiskBytes: 5,
  };
  a.updateMeta(encodeMemberMeta(meta));
  await waitFor('the new metadata to reach the seed', () => {
    const view = seed.members().find((member) => member.name === 'node-1');
    return view !== undefined && decodeMemberMeta(view.meta)?.role === 'learner';
  });
  assert.ok(events.includes('update:node-1'));

  await c.shutdown(); // A crash, as far as the others can tell.
  await waitFor('node-3 to be declared dead by all', () =>
    [seed, a, b].every((member) => stateOf(member, 'node-3') === 'dead'),
  );
  assert.ok(events.includes('dead:node-3'));

  await b.leave();
  await b.shutdown();
  await waitFor('node-2 to be seen as left', () =>
    [seed, a].every((member) => stateOf(member, 'node-2') === 'left'),
  );
  assert.ok(events.includes('left:node-2'));
  assert.equal(seed.aliveMembers().length, 2);
});

test('garbage and oversized datagrams are dropped and counted', async () => {
  const target = await Memberlist.create({ name: 'target', config: fastConfig, seed: 9 });
  members.push(target);
  const { port } = parseAddress(target.address);
  const socket = createSocket('udp4');
  const send = (bytes: Buffer) =>
    new Promise<void>((resolve) => socket.send(bytes, port, '127.0.0.1', () => resolve()));
  await send(Buffer.from('definitely not msgpack'));
  await send(Buffer.from([0x91, 0x81, 0xa4, 0x74, 0x79, 0x70, 0x65, 0xa3, 0x62, 0x61, 0x64]));
  await send(Buffer.alloc(4000, 0x90));
  // Well-formed, but gossips an address that is not host:port: probing it must not crash.
  const bogus = {
    type: 'alive',
    name: 'bogus',
    address: 'no-port-here',
    incarnation: 0,
    meta: new Uint8Array(0),
  };
  await send(encodePacket([bogus as Message]));
  socket.close();
  await waitFor('four datagrams to be counted', () => target.stats.udp.datagramsReceived >= 4);
  assert.equal(target.stats.udp.droppedMalformed, 2);
  assert.equal(target.stats.udp.droppedOversized, 1);
  await waitFor('a probe of the bogus address', () => target.stats.udp.droppedBadAddress > 0);
  assert.equal(
    target.members().find((member) => member.name === 'bogus')?.state !== undefined,
    true,
  );
});
