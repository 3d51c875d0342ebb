/**
 * Scenario tests for memberlist's TCP fallback ping and the stream half of push-pull in the pure
 * core. Two real cores talk: datagrams from the target are "blocked" by simply not delivering them,
 * while the stream ping is carried by calling the target's `answerStreamPing`, as a stream
 * transport would.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createSeededRandom } from './random.js';
import { msgpackSizeBytes } from './size.js';
import { Swim, type SwimOutput } from './swim.js';
import {
  type AliveMessage,
  defaultLanConfig,
  META_BYTES_MAX,
  type Message,
  type PingMessage,
  PUSH_PULL_BYTES_MAX,
  type SwimConfig,
} from './types.js';

const empty = new Uint8Array(0);

function member(name: string, config: SwimConfig = defaultLanConfig()): Swim {
  return new Swim({
    name,
    address: `${name}-addr`,
    config,
    random: createSeededRandom(7),
    nowMs: 0,
  });
}

function alive(name: string, meta = empty): AliveMessage {
  return { type: 'alive', name, address: `${name}-addr`, incarnation: 0, meta };
}

function typesOf(output: SwimOutput): string[] {
  // Piggybacked gossip (alive, suspect, dead) is left out: only the probe traffic matters here.
  const probing = new Set<Message['type']>(['ping', 'pingReq', 'ack', 'nack']);
  return output.packets.flatMap((packet) =>
    packet.messages
      .filter((message: Message) => probing.has(message.type))
      .map((message: Message) => `${message.type}->${packet.toAddress}`),
  );
}

/**
 * `a` knows the target `b` and two helpers, and its first probe (to b, whose datagrams are lost)
 * reaches the probe timeout. Returns what a sent at the timeout.
 */
function probeTimesOut(config = defaultLanConfig({ indirectChecks: 2 })) {
  const a = member('a', config);
  a.receive('b-addr', alive('b'), 0);
  a.drain();
  a.tick(1000);
  const [ping] = a.drain().packets.flatMap((packet) => packet.messages);
  assert.ok(ping?.type === 'ping' && ping.target === 'b');
  for (const helper of ['h1', 'h2']) a.receive(`${helper}-addr`, alive(helper), 1000);
  a.drain();
  a.tick(1500);
  return { a, seq: ping.seq, atTimeout: a.drain() };
}

describe('fallback ping', () => {
  test('at the probe timeout the core asks for ping-reqs and one stream ping due at the probe end', () => {
    const { seq, atTimeout } = probeTimesOut();
    assert.deepEqual(typesOf(atTimeout).sort(), ['pingReq->h1-addr', 'pingReq->h2-addr']);
    assert.deepEqual(atTimeout.streamPings, [
      {
        toAddress: 'b-addr',
        ping: { type: 'ping', seq, target: 'b', source: 'a', sourceAddress: 'a-addr' },
        timeoutMs: 500,
      },
    ]);
  });

  test('UDP to the target blocked, stream works: it stays alive and the rescue is counted', () => {
    const { a, atTimeout } = probeTimesOut();
    const b = member('b');
    const request = atTimeout.streamPings[0]!;
    const acked = b.answerStreamPing(request.ping, 1500);
    assert.equal(acked, true);
    assert.equal(b.stats.streamPingsAnswered, 1);
    a.streamPingResult(request.ping.seq, acked, 1503);
    a.tick(2000); // The probe period ends without any datagram ack.
    const output = a.drain();
    assert.equal(a.member('b')?.state, 'alive');
    assert.deepEqual(
      output.events.map((event) => event.type),
      [],
    );
    assert.deepEqual(output.reachedOnlyByStream, ['b']);
    assert.equal(a.healthScore, 0); // Neither the target's fault nor ours.
    assert.equal(a.stats.probeFailures, 0);
    assert.equal(a.stats.fallbackPingRescues, 1);
    assert.equal(a.stats.suspicionsStarted, 0);
  });

  test('UDP and stream both blocked: suspect at the probe end, then dead', () => {
    const { a, atTimeout } = probeTimesOut();
    a.streamPingResult(atTimeout.streamPings[0]!.ping.seq, false, 1900); // e.g. connection refused
    a.tick(2000);
    assert.deepEqual(
      a.drain().events.map((event) => `${event.type}:${event.member.name}`),
      ['suspect:b'],
    );
    const events: string[] = [];
    for (let nowMs = 2000; nowMs <= 60_000 && a.member('b')?.state !== 'dead'; ) {
      nowMs = Math.max(nowMs + 1, a.nextDeadlineMs());
      a.tick(nowMs);
      for (const event of a.drain().events) events.push(`${event.type}:${event.member.name}`);
    }
    assert.equal(a.member('b')?.state, 'dead');
    assert.ok(events.includes('dead:b'));
    assert.equal(a.stats.fallbackPingRescues, 0);
  });

  test('an ack arriving after the probe ended does not undo the suspicion', () => {
    const { a, seq } = probeTimesOut();
    a.tick(2000);
    assert.equal(a.member('b')?.state, 'suspect');
    a.streamPingResult(seq, true, 2010);
    a.tick(2010);
    assert.equal(a.member('b')?.state, 'suspect');
    assert.equal(a.stats.fallbackPingRescues, 0);
  });

  test('a stream ping for another name is not acked (the address was reused)', () => {
    const b = member('b');
    const ping: PingMessage = {
      type: 'ping',
      seq: 1,
      target: 'old-b',
      source: 'a',
      sourceAddress: 'a-addr',
    };
    assert.equal(b.answerStreamPing(ping, 10), false);
    assert.equal(b.stats.misaddressedPings, 1);
  });

  test('with fallbackPing off no stream ping is asked for', () => {
    const { atTimeout } = probeTimesOut(
      defaultLanConfig({ indirectChecks: 2, fallbackPing: false }),
    );
    assert.deepEqual(atTimeout.streamPings, []);
    assert.equal(typesOf(atTimeout).length, 2);
  });
});

describe('push-pull over a stream', () => {
  test('answerPushPull merges the request and returns the full state instead of a packet', () => {
    const seed = member('seed');
    seed.receive('x-addr', alive('x'), 0);
    seed.drain();
    const joiner = member('j');
    joiner.join(['seed-addr'], 0);
    const request = joiner.drain().packets[0]!.messages[0]!;
    assert.ok(request.type === 'pushPull' && request.join && request.reply);
    const reply = seed.answerPushPull(request, 5);
    assert.ok(reply !== null && !reply.reply);
    // As in memberlist, the state is taken before the request is merged.
    assert.deepEqual(reply.states.map((entry) => entry.name).sort(), ['seed', 'x']);
    const out = seed.drain();
    assert.equal(
      out.packets.some((packet) => packet.stream),
      false,
    );
    assert.deepEqual(
      out.events.map((event) => `${event.type}:${event.member.name}`),
      ['join:j'],
    );
    joiner.receive('seed-addr', reply, 10);
    assert.deepEqual(joiner.drain().syncedFrom, ['seed-addr']);
    assert.equal(joiner.member('x')?.state, 'alive');
    assert.equal(seed.member('j')?.state, 'alive');
    // A push without a reply wanted gets none.
    assert.equal(seed.answerPushPull({ ...request, reply: false }, 20), null);
  });

  test('the full state is capped at PUSH_PULL_BYTES_MAX and the members left out are counted', () => {
    const a = member('a');
    const meta = new Uint8Array(META_BYTES_MAX).fill(7);
    // About 545 bytes per entry: 8000 of them exceed 4 MiB but stay below MEMBERS_MAX.
    const count = 8000;
    for (let index = 0; index < count; index++) a.receive('x', alive(`n${index}`, meta), 0);
    a.drain();
    const reply = a.answerPushPull({ type: 'pushPull', join: false, reply: true, states: [] }, 1);
    assert.ok(reply !== null);
    assert.ok(msgpackSizeBytes(reply) <= PUSH_PULL_BYTES_MAX);
    assert.equal(reply.states[0]?.name, 'a'); // Self always goes first.
    assert.equal(a.stats.pushPullEntriesOmitted, count + 1 - reply.states.length);
    assert.ok(a.stats.pushPullEntriesOmitted > 0);
  });
});
