/**
 * Messages are plain data: every message a cluster exchanges (elections, appends, snapshots,
 * reads, transfers) survives a msgpack round trip, and the cluster behaves the same over it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Packr } from 'msgpackr';
import { exchangeEveryMessageType, TestNetwork } from './testing.js';
import { type Message, Role } from './types.js';

const packr = new Packr({ useRecords: false });

test('a cluster works with every message sent through msgpack', () => {
  const net = new TestNetwork([1, 2, 3], { preVote: true, checkQuorum: true });
  const types = new Set<number>();
  net.wire = (m: Message) => {
    types.add(m.type);
    const decoded = packr.unpack(packr.pack(m)) as Message;
    assert.deepEqual(decoded.entries.length, m.entries.length);
    return decoded;
  };
  exchangeEveryMessageType(net);
  assert.equal(net.node(2).status().role, Role.Leader);
  assert.equal(net.node(4).status().commit, net.node(2).status().commit);
  assert.deepEqual(net.members.get(3)!.readStates.length, 1);
  // Votes, pre-votes, appends, heartbeats, snapshot, read and transfer messages all went through.
  for (const type of [3, 4, 7, 8, 9, 14, 15, 16, 17, 18])
    assert.ok(types.has(type), `type ${type}`);
});
