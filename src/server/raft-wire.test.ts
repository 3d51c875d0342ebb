import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Message, Role } from '../raft/index.js';
import { exchangeEveryMessageType, TestNetwork } from '../raft/testing.js';
import { seededRandom } from '../rpc/backoff.js';
import {
  decodeRaftBatch,
  encodedMessageBytes,
  encodeRaftBatch,
  type RaftBatch,
  RaftWireError,
} from './raft-wire.js';

const header = { clusterId: 0x1234_5678_9abc, from: 7, fromAddress: '127.0.0.1:2380' };

function sample(): RaftBatch {
  const base: Message = {
    type: 3,
    to: 2,
    from: 1,
    term: 5,
    logTerm: 4,
    index: 41,
    entries: [
      { term: 5, index: 42, type: 0, data: new Uint8Array([1, 2, 3]) },
      { term: 5, index: 43, type: 1, data: new Uint8Array(0) },
    ],
    commit: 40,
    snapshot: null,
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(0),
  };
  const resp: Message = {
    ...base,
    type: 4,
    to: 1,
    from: 2,
    entries: [],
    reject: true,
    rejectHint: 39,
    context: new Uint8Array([9, 9]),
  };
  return { ...header, messages: [base, resp] };
}

/** Plain arrays instead of Buffer views, so deepEqual compares contents. */
function plain(batch: RaftBatch) {
  return {
    ...batch,
    messages: batch.messages.map((m) => ({
      ...m,
      context: [...m.context],
      entries: m.entries.map((e) => ({ ...e, data: [...e.data] })),
    })),
  };
}

describe('raft wire encoding', () => {
  it('round-trips a batch exactly, sized as encodedMessageBytes says', () => {
    const batch = sample();
    const bytes = encodeRaftBatch(batch);
    const fixed = 1 + 8 + 8 + 2 + header.fromAddress.length + 4;
    assert.equal(
      bytes.length,
      fixed + batch.messages.reduce((sum, m) => sum + encodedMessageBytes(m), 0),
    );
    assert.deepEqual(plain(decodeRaftBatch(bytes)), plain(batch));
  });

  it('carries every message a cluster exchanges: the cluster works through it', () => {
    const net = new TestNetwork([1, 2, 3], { preVote: true, checkQuorum: true });
    const types = new Set<number>();
    net.wire = (m: Message) => {
      types.add(m.type);
      if (m.snapshot !== null) return m; // snapshots are streamed, never batched
      const [decoded] = decodeRaftBatch(encodeRaftBatch({ ...header, messages: [m] })).messages;
      assert.deepEqual(
        plain({ ...header, messages: [decoded!] }),
        plain({ ...header, messages: [m] }),
      );
      return decoded!;
    };
    exchangeEveryMessageType(net);
    assert.equal(net.node(2).status().role, Role.Leader);
    assert.equal(net.node(3).status().commit, net.node(2).status().commit);
    for (const type of [2, 3, 4, 8, 9, 14, 15, 16, 17, 18])
      assert.ok(types.has(type), `type ${type}`);
  });

  it('refuses to batch a snapshot', () => {
    const batch = sample();
    const snap = {
      metadata: { index: 1, term: 1, confState: batch.messages[0]!.snapshot },
      data: new Uint8Array(1),
    };
    batch.messages[0] = { ...batch.messages[0]!, type: 7, snapshot: snap as never };
    assert.throws(() => encodeRaftBatch(batch), RaftWireError);
  });

  it('throws RaftWireError for every truncation and for trailing bytes', () => {
    const bytes = encodeRaftBatch(sample());
    for (let length = 0; length < bytes.length; length++) {
      assert.throws(
        () => decodeRaftBatch(bytes.subarray(0, length)),
        RaftWireError,
        `length ${length}`,
      );
    }
    assert.throws(() => decodeRaftBatch(Buffer.concat([bytes, Buffer.from([0])])), RaftWireError);
  });

  it('refuses bad versions, types, flags, entry types, negative and fractional numbers', () => {
    const good = encodeRaftBatch(sample());
    const messageStart = 1 + 8 + 8 + 2 + header.fromAddress.length + 4;
    const cases: [string, (b: Buffer) => void][] = [
      ['version', (b) => b.writeUInt8(2, 0)],
      ['message type', (b) => b.writeUInt8(19, messageStart)],
      ['flags', (b) => b.writeUInt8(2, messageStart + 1)],
      ['negative term', (b) => b.writeDoubleLE(-1, messageStart + 2 + 16)],
      ['fractional index', (b) => b.writeDoubleLE(1.5, messageStart + 2 + 32)],
      ['entry type', (b) => b.writeUInt8(2, messageStart + 2 + 56 + 4 + 4 + 16)],
      ['huge message count', (b) => b.writeUInt32LE(0xffff_ffff, messageStart - 4)],
    ];
    for (const [what, corrupt] of cases) {
      const bytes = Buffer.from(good);
      corrupt(bytes);
      assert.throws(() => decodeRaftBatch(bytes), RaftWireError, what);
    }
  });

  it('random corruption either decodes or throws RaftWireError, nothing else (seeded)', () => {
    const seed = 20261124;
    const random = seededRandom(seed);
    const good = encodeRaftBatch(sample());
    for (let round = 0; round < 5000; round++) {
      const bytes = Buffer.from(good);
      const flips = 1 + Math.floor(random() * 4);
      for (let i = 0; i < flips; i++) {
        bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
      }
      try {
        decodeRaftBatch(bytes);
      } catch (error) {
        assert.ok(error instanceof RaftWireError, `seed ${seed} round ${round}: ${error}`);
      }
    }
  });
});
