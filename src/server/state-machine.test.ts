import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { MvccStore } from '../kv/mvcc.js';
import { removeCheckpoint } from '../kv/snapshot.js';
import {
  type ConfChange,
  ConfChangeType,
  EMPTY_CONF_STATE,
  type Entry,
  EntryType,
  encodeConfChange,
} from '../raft/index.js';
import { encodeCommand, encodeConfChangeContext, type RequestId } from './command.js';
import { MemberRegistry } from './registry.js';
import {
  type ApplyOutcome,
  checkpointSnapshotHead,
  decodeSnapshotData,
  encodeSnapshotData,
  StateMachine,
} from './state-machine.js';

/** The whole snapshot data of a registry and a store checkpoint file, as a member's snapshot holds it. */
function checkpointSnapshotData(registry: ReturnType<MemberRegistry['state']>, file: string) {
  const image = readFileSync(file);
  return Buffer.concat([checkpointSnapshotHead(registry, image.length), image]);
}

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function open(selfId = 1) {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-sm-'));
  dirs.push(dir);
  const kv = MvccStore.open({ path: join(dir, 'db'), logger: pino({ level: 'silent' }) });
  const registry = MemberRegistry.create(join(dir, 'member', 'registry.json'), {
    index: 0,
    clusterId: 99,
    members: [{ id: 1, name: '', peerUrls: ['http://a:1'], clientUrls: [], isLearner: false }],
  });
  const outcomes: [RequestId, ApplyOutcome][] = [];
  const confChanges: ConfChange[] = [];
  const sm = new StateMachine(
    kv,
    registry,
    selfId,
    {
      applyConfChange: (cc) => {
        confChanges.push(cc);
        return EMPTY_CONF_STATE;
      },
      onApplied: (id, outcome) => outcomes.push([id, outcome]),
      onRegistryChanged: () => {},
      onSelfRemoved: () => {},
      onRemoved: () => {},
    },
    pino({ level: 'silent' }),
    0,
  );
  return { kv, registry, sm, outcomes, confChanges, dir };
}

const id = (member: number, sequence: number): RequestId => ({ member, incarnation: 5, sequence });
const put = (index: number, rid: RequestId, key: string): Entry => ({
  term: 1,
  index,
  type: EntryType.Normal,
  data: encodeCommand({ id: rid, kv: { put: { key: Buffer.from(key), value: Buffer.from('v') } } }),
});

describe('StateMachine', () => {
  it("applies a batch, answers only this member's requests, and skips replays", async () => {
    const { kv, sm, outcomes } = open(1);
    const noop: Entry = { term: 1, index: 1, type: EntryType.Normal, data: new Uint8Array() };
    await sm.apply([noop, put(2, id(1, 1), 'a'), put(3, id(2, 1), 'b'), put(4, id(1, 2), 'c')]);
    assert.equal(kv.appliedIndex, 4);
    assert.equal(kv.revision, 4);
    assert.deepEqual(
      outcomes.map(([rid, o]) => [rid.sequence, o.status]),
      [
        [1, 'ok'],
        [2, 'ok'],
      ],
    );
    outcomes.length = 0;
    await sm.apply([put(3, id(2, 1), 'b'), put(4, id(1, 2), 'c')]);
    assert.equal(kv.revision, 4, 'replayed entries change nothing');
    assert.deepEqual(
      outcomes.map(([, o]) => o.status),
      ['skipped'],
    );
    await kv.close();
  });

  it('applies an entry carrying a batch of puts as consecutive puts, answered to its proposer', async () => {
    const { kv, sm, outcomes } = open(1);
    const batch = (index: number, rid: RequestId, keys: string[]): Entry => ({
      term: 1,
      index,
      type: EntryType.Normal,
      data: encodeCommand({
        id: rid,
        kvBatch: keys.map((key) => ({ put: { key: Buffer.from(key), value: Buffer.from('v') } })),
      }),
    });
    await sm.apply([batch(1, id(1, 1), ['a', 'b', 'c']), batch(2, id(2, 1), ['d', 'e'])]);
    assert.equal(kv.appliedIndex, 2);
    assert.equal(kv.revision, 6, 'one revision per put');
    assert.equal(outcomes.length, 1, "only this member's batch is answered here");
    const [rid, outcome] = outcomes[0]!;
    assert.equal(rid.sequence, 1);
    assert.ok(outcome.status === 'batch');
    assert.deepEqual(
      outcome.results.map((r) =>
        r.status === 'ok' && 'put' in r.response ? r.response.put.header.revision : r.status,
      ),
      [2, 3, 4],
    );
    await kv.close();
  });

  it('records conf changes in raft and the registry, and publishes names', async () => {
    const { sm, registry, confChanges, dir } = open(1);
    const context = encodeConfChangeContext({
      id: id(1, 1),
      member: { id: 2, name: '', peerUrls: ['http://b:2'], isLearner: true },
      action: 'add',
    });
    const cc: ConfChange = {
      transition: 0,
      changes: [{ type: ConfChangeType.AddLearner, nodeId: 2 }],
      context,
    };
    const publish = encodeCommand({
      id: id(2, 1),
      registry: { publish: { id: 2, name: 'two', clientUrls: ['http://b:3'] } },
    });
    await sm.apply([
      { term: 1, index: 1, type: EntryType.ConfChange, data: encodeConfChange(cc) },
      { term: 1, index: 2, type: EntryType.Normal, data: publish },
    ]);
    assert.equal(confChanges.length, 1);
    assert.deepEqual(registry.get(2), {
      id: 2,
      name: 'two',
      peerUrls: ['http://b:2'],
      clientUrls: ['http://b:3'],
      isLearner: true,
    });
    assert.equal(MemberRegistry.load(join(dir, 'member', 'registry.json'))?.index, 2, 'saved');
  });

  it('round-trips snapshot data and installs it into another member', async () => {
    const a = open(1);
    await a.sm.apply([put(1, id(1, 1), 'x'), put(2, id(1, 2), 'y')]);
    const stream = a.kv.snapshot();
    const chunks: Uint8Array[] = [];
    for await (const chunk of stream.chunks) chunks.push(chunk);
    const data = encodeSnapshotData(a.registry.state(), chunks);
    assert.equal(decodeSnapshotData(data).chunks?.length, chunks.length);
    const b = open(2);
    await b.sm.install({
      metadata: { index: 2, term: 1, confState: { ...EMPTY_CONF_STATE, voters: [1, 2] } },
      data,
    });
    assert.equal(b.kv.appliedIndex, 2);
    assert.equal(b.sm.appliedIndex, 2);
    assert.deepEqual(b.sm.confState.voters, [1, 2]);
    assert.equal(b.kv.range({ key: Buffer.from('y') }).kvs.length, 1);
    assert.equal(b.registry.clusterId, 99);
  });

  it('snapshots the store as a checkpoint and installs it, replacing what the other member held', async () => {
    const a = open(1);
    await a.sm.apply([put(1, id(1, 1), 'x'), put(2, id(1, 2), 'y')]);
    const checkpoint = await a.kv.checkpoint();
    assert.equal(checkpoint.appliedIndex, 2);
    assert.equal(checkpoint.revision, 3);
    // Batches applied after the copy are not in it.
    await a.sm.apply([put(3, id(1, 3), 'z')]);
    const data = checkpointSnapshotData(a.registry.state(), checkpoint.file);
    await removeCheckpoint(dirname(checkpoint.file));
    assert.equal(existsSync(dirname(checkpoint.file)), false);
    const decoded = decodeSnapshotData(data);
    assert.ok(decoded.checkpoint !== undefined && decoded.chunks === undefined);
    assert.equal(decoded.registry.clusterId, 99);

    const b = open(2);
    await b.sm.apply([put(1, id(2, 1), 'old'), put(2, id(2, 2), 'older'), put(3, id(2, 3), 'x')]);
    await b.sm.install({
      metadata: { index: 2, term: 1, confState: { ...EMPTY_CONF_STATE, voters: [1, 2] } },
      data,
    });
    assert.equal(b.kv.appliedIndex, 2);
    assert.equal(b.kv.revision, 3);
    assert.equal(b.sm.appliedIndex, 2);
    assert.equal(b.sm.membershipIndex, 2);
    const keys = b.kv
      .range({ key: Buffer.from([0]), rangeEnd: Buffer.from([0]) })
      .kvs.map((kv) => Buffer.from(kv.key).toString());
    assert.deepEqual(keys, ['x', 'y']);
    assert.equal((await b.kv.hashKv(0)).hash, (await a.kv.hashKv(3)).hash, 'the same history');
    assert.equal(existsSync(join(b.dir, 'db-checkpoint-in')), false, 'scratch copy removed');
    await a.kv.close();
    await b.kv.close();
  });

  it('remembers the index of the last membership entry applied', async () => {
    const { sm } = open(1);
    assert.equal(sm.membershipIndex, 0);
    await sm.apply([put(1, id(1, 1), 'a')]);
    assert.equal(sm.membershipIndex, 0, 'a put is not a membership entry');
    const cc: ConfChange = {
      transition: 0,
      changes: [{ type: ConfChangeType.AddNode, nodeId: 3 }],
      context: new Uint8Array(),
    };
    await sm.apply([
      { term: 1, index: 2, type: EntryType.ConfChange, data: encodeConfChange(cc) },
      put(3, id(1, 2), 'b'),
    ]);
    assert.equal(sm.membershipIndex, 2);
    const publish = encodeCommand({
      id: id(1, 3),
      registry: { publish: { id: 1, name: 'one', clientUrls: ['http://a:2'] } },
    });
    await sm.apply([{ term: 1, index: 4, type: EntryType.Normal, data: publish }]);
    assert.equal(sm.membershipIndex, 4);
  });

  it('applies alarm commands into the registry, saves them, and carries them in snapshots', async () => {
    const a = open(1);
    const alarm = (index: number, action: 'activate' | 'deactivate', memberId: number): Entry => ({
      term: 1,
      index,
      type: EntryType.Normal,
      data: encodeCommand({
        id: id(1, index),
        registry: { alarm: { action, memberId, alarm: 1 } },
      }),
    });
    await a.sm.apply([alarm(1, 'activate', 7), alarm(2, 'activate', 7), alarm(3, 'activate', 8)]);
    assert.deepEqual(a.registry.alarms(), [
      { memberId: 7, alarm: 1 },
      { memberId: 8, alarm: 1 },
    ]);
    await a.sm.apply([alarm(4, 'deactivate', 8)]);
    const saved = MemberRegistry.load(join(a.dir, 'member', 'registry.json'))!;
    assert.deepEqual(saved.alarms(), [{ memberId: 7, alarm: 1 }], 'saved with the registry');
    const stream = a.kv.snapshot();
    const chunks: Uint8Array[] = [];
    for await (const chunk of stream.chunks) chunks.push(chunk);
    const b = open(2);
    await b.sm.install({
      metadata: { index: 4, term: 1, confState: { ...EMPTY_CONF_STATE, voters: [1, 2] } },
      data: encodeSnapshotData(a.registry.state(), chunks),
    });
    assert.deepEqual(
      b.registry.alarms(1),
      [{ memberId: 7, alarm: 1 }],
      'installed from a snapshot',
    );
    // A replayed entry at or below the registry's index changes nothing.
    await a.sm.apply([alarm(3, 'activate', 8)]);
    assert.equal(a.registry.alarms().length, 1);
  });
});
