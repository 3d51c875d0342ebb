/**
 * Scenario tests for the SWIM core, written as transcripts: deliver, tick, and check exactly what
 * the member sent and which events it reported.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createSeededRandom } from './random.js';
import { msgpackSizeBytes } from './size.js';
import { Swim } from './swim.js';
import {
  type AliveMessage,
  DATAGRAM_BYTES_MAX,
  defaultLanConfig,
  lifeguardOff,
  type Message,
  type Packet,
  type SwimConfig,
} from './types.js';

const empty = new Uint8Array(0);

function member(name: string, config: SwimConfig = defaultLanConfig(), seed = 1): Swim {
  return new Swim({
    name,
    address: `${name}-addr`,
    config,
    random: createSeededRandom(seed),
    nowMs: 0,
  });
}

function alive(name: string, incarnation = 0): AliveMessage {
  return { type: 'alive', name, address: `${name}-addr`, incarnation, meta: empty };
}

/** Teaches `swim` about members `names` and throws away what it sent meanwhile. */
function know(swim: Swim, names: string[], nowMs = 0): void {
  for (const name of names) swim.receive(`${name}-addr`, alive(name), nowMs);
  swim.drain();
}

function messagesOf(packets: Packet[], type: Message['type']): Message[] {
  return packets.flatMap((packet) => packet.messages.filter((message) => message.type === type));
}

describe('refutation via incarnation', () => {
  test('a member suspected by others refutes with a higher incarnation', () => {
    const a = member('a');
    know(a, ['b']);
    a.receive('b-addr', { type: 'suspect', name: 'a', incarnation: 0, from: 'b' }, 10);
    assert.equal(a.incarnation, 1);
    assert.equal(a.stats.refutations, 1);
    // The refutation rides on the next packet a sends (here its ack to b's ping).
    a.receive(
      'b-addr',
      { type: 'ping', seq: 9, target: 'a', source: 'b', sourceAddress: 'b-addr' },
      20,
    );
    const sent = a.drain().packets;
    assert.deepEqual(messagesOf(sent, 'ack'), [{ type: 'ack', seq: 9 }]);
    const aboutA = messagesOf(sent, 'alive').filter((m) => m.type === 'alive' && m.name === 'a');
    assert.deepEqual(aboutA, [alive('a', 1)]);
  });

  test('the suspecter accepts the refutation and reports the member alive again', () => {
    const b = member('b');
    know(b, ['a', 'c']);
    b.receive('c-addr', { type: 'suspect', name: 'a', incarnation: 0, from: 'c' }, 10);
    assert.equal(b.member('a')?.state, 'suspect');
    b.receive('a-addr', alive('a', 0), 20); // Same incarnation: not a refutation.
    assert.equal(b.member('a')?.state, 'suspect');
    b.receive('a-addr', alive('a', 1), 30);
    assert.equal(b.member('a')?.state, 'alive');
    assert.deepEqual(
      b.drain().events.map((event) => `${event.type}:${event.member.name}`),
      ['suspect:a', 'alive:a'],
    );
  });

  test('a stale suspicion (older incarnation) is ignored', () => {
    const b = member('b');
    know(b, ['a']);
    b.receive('a-addr', alive('a', 3), 5);
    b.receive('c-addr', { type: 'suspect', name: 'a', incarnation: 2, from: 'c' }, 10);
    assert.equal(b.member('a')?.state, 'alive');
  });
});

describe('dynamic suspicion timeout', () => {
  const names = Array.from({ length: 9 }, (_, index) => `n${index}`);
  // 10 members: min = 4 * log10(10) * 1000 = 4000 ms, max = 6 * min, k = suspicionMult - 2 = 2.
  const minMs = 4000;
  const maxMs = 24_000;

  function suspectAt(swim: Swim, from: string, nowMs: number): void {
    swim.receive(`${from}-addr`, { type: 'suspect', name: 'n0', incarnation: 0, from }, nowMs);
  }

  function deadAtMs(swim: Swim, startMs: number, endMs: number): number | null {
    for (let nowMs = startMs; nowMs <= endMs; nowMs += 250) {
      swim.tick(nowMs);
      if (swim.drain().events.some((event) => event.type === 'dead')) return nowMs;
    }
    return null;
  }

  test('without confirmations the suspicion lasts the maximum timeout', () => {
    const a = member('a');
    know(a, names);
    suspectAt(a, 'n1', 1000);
    assert.equal(deadAtMs(a, 1000, 1000 + maxMs - 250), null);
    assert.equal(deadAtMs(a, 1000 + maxMs, 1000 + maxMs), 1000 + maxMs);
  });

  test('each independent confirmation shrinks it, down to the minimum', () => {
    const a = member('a');
    know(a, names);
    suspectAt(a, 'n1', 1000);
    suspectAt(a, 'n2', 1000); // 1 of 2: max - (max - min) * log(2) / log(3)
    suspectAt(a, 'n2', 1000); // A repeat from the same member counts once.
    const oneMs = Math.floor(maxMs - ((maxMs - minMs) * Math.log(2)) / Math.log(3));
    assert.equal(deadAtMs(a, 1000, 1000 + oneMs - 250), null);
    suspectAt(a, 'n3', 1000 + oneMs - 250); // 2 of 2: the minimum, already passed.
    assert.equal(deadAtMs(a, 1000 + oneMs - 250, 1000 + oneMs), 1000 + oneMs - 250);
    assert.ok(minMs < oneMs && oneMs < maxMs);
  });

  test('with dynamic suspicion off the timeout is the fixed minimum', () => {
    const a = member('a', defaultLanConfig({ lifeguard: lifeguardOff }));
    know(a, names);
    suspectAt(a, 'n1', 1000);
    assert.equal(deadAtMs(a, 1000, 1000 + minMs), 1000 + minMs);
  });

  test('a new confirmation is re-gossiped so other members shrink their timers too', () => {
    const a = member('a');
    know(a, names);
    suspectAt(a, 'n1', 1000);
    a.drain();
    suspectAt(a, 'n2', 1100);
    assert.equal(a.broadcastTransmits('n0'), 0);
  });
});

describe('local health awareness', () => {
  /** a knows b (the probe target) and two helpers; returns a after its first probe began. */
  function probingMember(config = defaultLanConfig({ indirectChecks: 2 })) {
    const a = member('a', config);
    know(a, ['b']);
    a.tick(1000);
    const ping = messagesOf(a.drain().packets, 'ping')[0];
    assert.ok(ping?.type === 'ping' && ping.target === 'b');
    know(a, ['h1', 'h2'], 1000);
    return { a, seq: ping.seq };
  }

  test('a failed probe without nacks raises the score by the missing nacks', () => {
    const { a } = probingMember();
    a.tick(1500); // Probe timeout: ping-req through both helpers, asking for nacks.
    const requests = messagesOf(a.drain().packets, 'pingReq');
    assert.equal(requests.length, 2);
    assert.ok(requests.every((request) => request.type === 'pingReq' && request.nack));
    a.tick(2000); // The probe fails and the next one starts, now lasting interval * (score + 1).
    assert.equal(a.healthScore, 2);
    assert.equal(a.member('b')?.state, 'suspect');
    assert.equal(messagesOf(a.drain().packets, 'ping').length, 1);
    a.tick(4999);
    assert.equal(messagesOf(a.drain().packets, 'ping').length, 0);
    a.tick(5000);
    assert.equal(messagesOf(a.drain().packets, 'ping').length, 1);
  });

  test('nacks show the helpers are fine, so the probe failure is not held against us', () => {
    const { a, seq } = probingMember();
    a.tick(1500);
    a.drain();
    a.receive('h1-addr', { type: 'nack', seq }, 1900);
    a.receive('h2-addr', { type: 'nack', seq }, 1900);
    a.tick(2000);
    assert.equal(a.healthScore, 0);
    assert.equal(a.member('b')?.state, 'suspect');
  });

  test('successful probes lower the score, and it never exceeds max - 1', () => {
    const { a } = probingMember(defaultLanConfig({ indirectChecks: 0, awarenessMaxMultiplier: 3 }));
    let nowMs = 1000;
    while (nowMs < 7000) {
      nowMs = a.nextDeadlineMs();
      a.tick(nowMs);
      a.drain();
    }
    assert.equal(a.healthScore, 2); // Three failed probes, capped at max - 1.
    let ping: Message | undefined;
    while (ping === undefined) {
      nowMs = a.nextDeadlineMs();
      a.tick(nowMs);
      ping = messagesOf(a.drain().packets, 'ping')[0];
    }
    assert.ok(ping.type === 'ping');
    a.receive('x-addr', { type: 'ack', seq: ping.seq }, nowMs + 5);
    assert.equal(a.healthScore, 1);
  });

  test('refuting a suspicion about itself raises the score', () => {
    const a = member('a');
    know(a, ['b']);
    a.receive('b-addr', { type: 'suspect', name: 'a', incarnation: 0, from: 'b' }, 10);
    assert.equal(a.healthScore, 1);
  });
});

describe('metadata', () => {
  test('new metadata is gossiped with a new incarnation; stale versions are ignored', () => {
    const a = member('a');
    know(a, ['b']);
    a.updateMeta(Uint8Array.of(7), 10);
    assert.equal(a.incarnation, 1);
    a.receive(
      'b-addr',
      { type: 'ping', seq: 1, target: 'a', source: 'b', sourceAddress: 'b-addr' },
      20,
    );
    const update = messagesOf(a.drain().packets, 'alive').find(
      (m) => m.type === 'alive' && m.name === 'a',
    );
    assert.deepEqual(update, { ...alive('a', 1), meta: Uint8Array.of(7) });
    const b = member('b');
    know(b, ['a']);
    b.receive('a-addr', update!, 30);
    b.receive('c-addr', alive('a', 0), 40); // An old copy still circulating.
    assert.deepEqual(b.member('a')?.meta, Uint8Array.of(7));
    assert.deepEqual(
      b.drain().events.map((event) => event.type),
      ['update'],
    );
    assert.throws(() => a.updateMeta(new Uint8Array(513), 50), /meta exceeds/);
  });
});

describe('buddy system', () => {
  test('the ping to a suspected member carries the suspicion, and it refutes in its ack', () => {
    const a = member('a');
    know(a, ['b', 'c']);
    a.receive('c-addr', { type: 'suspect', name: 'b', incarnation: 0, from: 'c' }, 10);
    a.drain();
    let ping: Packet | undefined;
    while (ping === undefined) {
      const nowMs = Math.max(10, a.nextDeadlineMs());
      assert.ok(nowMs < 10_000, 'b was never probed');
      a.tick(nowMs);
      for (const packet of a.drain().packets) {
        const first = packet.messages.find((message) => message.type === 'ping');
        if (first?.type !== 'ping') continue;
        if (packet.toAddress === 'b-addr') ping = packet;
        else a.receive(packet.toAddress, { type: 'ack', seq: first.seq }, nowMs);
      }
    }
    assert.ok(ping);
    assert.deepEqual(ping.messages.slice(0, 2), [
      { type: 'suspect', name: 'b', incarnation: 0, from: 'a' },
      {
        type: 'ping',
        seq: (ping.messages[1] as { seq: number }).seq,
        target: 'b',
        source: 'a',
        sourceAddress: 'a-addr',
      },
    ]);
    const b = member('b');
    know(b, ['a']);
    for (const message of ping.messages) b.receive('a-addr', message, 2000);
    const reply = b.drain().packets;
    assert.equal(b.incarnation, 1);
    assert.equal(messagesOf(reply, 'ack').length, 1);
    assert.ok(
      messagesOf(reply, 'alive').some(
        (m) => m.type === 'alive' && m.name === 'b' && m.incarnation === 1,
      ),
    );
  });

  test('without the buddy system the ping is bare', () => {
    const a = member('a', defaultLanConfig({ lifeguard: lifeguardOff }));
    know(a, ['b']);
    a.receive('c-addr', { type: 'suspect', name: 'b', incarnation: 0, from: 'c' }, 10);
    a.drain();
    a.tick(1000);
    const sent = a.drain().packets.find((packet) => packet.toAddress === 'b-addr');
    assert.ok(sent);
    // The suspicion may still ride along as ordinary gossip, but not ahead of other broadcasts.
    assert.equal(sent.messages[0]?.type, 'ping');
    assert.equal(a.member('b')?.state, 'suspect');
  });
});

describe('graceful leave', () => {
  test('the leaver gossips its own death notice, others mark it left, and it stops probing', () => {
    const a = member('a');
    know(a, ['b', 'c']);
    a.leave(100);
    const notices = messagesOf(a.drain().packets, 'dead');
    assert.ok(notices.length > 0);
    assert.deepEqual(notices[0], { type: 'dead', name: 'a', incarnation: 1, from: 'a' });
    assert.ok(a.leaveTransmits >= 1);
    const b = member('b');
    know(b, ['a']);
    b.receive('a-addr', notices[0]!, 110);
    assert.equal(b.member('a')?.state, 'left');
    assert.deepEqual(
      b.drain().events.map((event) => event.type),
      ['left'],
    );
    a.tick(5000);
    assert.equal(messagesOf(a.drain().packets, 'ping').length, 0);
    // A leaving member does not refute the notice about itself.
    a.receive('b-addr', { type: 'dead', name: 'a', incarnation: 1, from: 'b' }, 5001);
    assert.equal(a.incarnation, 1);
  });
});

describe('push-pull', () => {
  test('join sends full state to the seed, which replies with its own and learns the joiner', () => {
    const seed = member('seed');
    know(seed, ['x']);
    const joiner = member('j');
    joiner.join(['seed-addr'], 0);
    const [request] = joiner.drain().packets;
    assert.ok(request?.stream && request.messages[0]?.type === 'pushPull');
    seed.receive('j-addr', request.messages[0], 10);
    const out = seed.drain();
    assert.deepEqual(
      out.events.map((e) => `${e.type}:${e.member.name}`),
      ['join:j'],
    );
    const reply = out.packets.find((packet) => packet.stream);
    assert.ok(reply && reply.toAddress === 'j-addr');
    joiner.receive('seed-addr', reply.messages[0]!, 20);
    const joined = joiner.drain();
    assert.deepEqual(joined.syncedFrom, ['seed-addr']);
    assert.deepEqual(
      joiner
        .members()
        .map((m) => m.name)
        .sort(),
      ['j', 'seed', 'x'],
    );
  });

  test('merge: newer alive wins, remote dead becomes suspect, left stays left, self refutes', () => {
    const a = member('a');
    know(a, ['x', 'y', 'z']);
    const entry = (name: string, state: 0 | 1 | 2 | 3, incarnation: number) => ({
      name,
      address: `${name}-addr`,
      incarnation,
      state,
      meta: empty,
    });
    a.receive(
      'p-addr',
      {
        type: 'pushPull',
        join: false,
        reply: false,
        states: [entry('x', 0, 3), entry('y', 2, 0), entry('z', 3, 1), entry('a', 1, 0)],
      },
      10,
    );
    assert.equal(a.member('x')?.incarnation, 3);
    assert.equal(a.member('y')?.state, 'suspect');
    assert.equal(a.member('z')?.state, 'left');
    assert.equal(a.incarnation, 1);
  });
});

describe('dissemination', () => {
  test('an update is piggybacked exactly retransmitMult * ceil(log10(n + 1)) times', () => {
    const a = member('a', defaultLanConfig({ retransmitMult: 2 }));
    const names = Array.from({ length: 20 }, (_, index) => `n${index}`);
    know(a, names);
    // 21 live members: limit = 2 * ceil(log10(22)) = 4.
    a.receive('n0-addr', { type: 'suspect', name: 'n5', incarnation: 0, from: 'n0' }, 10);
    let carried = 0;
    for (let seq = 1; seq <= 10; seq++) {
      a.receive(
        'n1-addr',
        { type: 'ping', seq, target: 'a', source: 'n1', sourceAddress: 'n1-addr' },
        10 + seq,
      );
      carried += messagesOf(a.drain().packets, 'suspect').length;
    }
    assert.equal(carried, 4);
    assert.equal(a.broadcastTransmits('n5'), undefined);
  });

  test('compound packets never exceed the datagram limit', () => {
    const a = member('a');
    const names = Array.from({ length: 200 }, (_, index) => `member-with-a-long-name-${index}`);
    for (const name of names) a.receive('x', alive(name), 0);
    let packets = 0;
    for (let nowMs = 0; nowMs < 20_000; nowMs += 100) {
      a.tick(nowMs);
      for (const packet of a.drain().packets) {
        if (packet.stream) continue;
        packets++;
        assert.ok(msgpackSizeBytes(packet.messages) <= DATAGRAM_BYTES_MAX);
      }
    }
    assert.ok(packets > 50);
  });

  test('round-robin probing visits every member once per pass', () => {
    const a = member('a', defaultLanConfig({ lifeguard: lifeguardOff }));
    const names = Array.from({ length: 7 }, (_, index) => `n${index}`);
    know(a, names);
    const targets: string[] = [];
    let nowMs = 0;
    while (targets.length < 14) {
      nowMs = Math.max(nowMs, a.nextDeadlineMs());
      a.tick(nowMs);
      for (const ping of messagesOf(a.drain().packets, 'ping')) {
        if (ping.type !== 'ping') continue;
        targets.push(ping.target);
        a.receive(`${ping.target}-addr`, { type: 'ack', seq: ping.seq }, nowMs);
      }
    }
    assert.deepEqual(targets.slice(0, 7).sort(), names);
    assert.deepEqual(targets.slice(7).sort(), names);
  });
});
