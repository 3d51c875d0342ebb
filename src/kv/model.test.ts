/**
 * Property test: the LMDB store against a deliberately simple in-memory model of etcd's MVCC
 * (a list of every change ever made, replayed to answer each read). Random sequences of puts,
 * deletes, transactions, compactions and ranges (with past revisions, sorting, limits and filters)
 * and lease grants and revokes must give the same responses and errors, the same watch events
 * (live feed and history replay), and afterwards the same state at every revision that is still
 * readable and the same lease attachments, including after a restart. Seeded, so a failure replays exactly.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { KvErrorMessage } from './errors.js';
import type { RevisionEvents } from './mvcc.js';
import { StoreHarness } from './testing.js';
import type { KvRequest, PutRequest, RangeRequest, RequestOp, TxnRequest } from './types.js';

type Kv = {
  key: string;
  value: string;
  create: number;
  mod: number;
  version: number;
  lease: string;
};
type Change = { main: number; key: string; kv: Kv | undefined };

const latin1 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('latin1');
const bytes = (text: string): Buffer => Buffer.from(text, 'latin1');

/** An etcd MVCC written for clarity, not speed: the state at R is the replay of changes <= R. */
class Model {
  revision = 1;
  compacted = -1;
  changes: Change[] = [];
  /** lease id -> attached keys. */
  leases = new Map<bigint, Set<string>>();

  stateAt(revision: number): Map<string, Kv> {
    const state = new Map<string, Kv>();
    for (const change of this.changes) {
      if (change.main > revision) break;
      if (change.kv) state.set(change.key, change.kv);
      else state.delete(change.key);
    }
    return state;
  }

  static inRange(key: string, start: string, end: string | undefined): boolean {
    if (end === undefined || end === '') return key === start;
    if (end === '\0') return key >= start;
    return key >= start && key < end;
  }

  range(request: RangeRequest, current: number, state: () => Map<string, Kv>) {
    let revision = request.revision ?? 0;
    if (revision > current) throw new Error(KvErrorMessage.futureRev);
    if (revision <= 0) revision = current;
    if (revision < this.compacted) throw new Error(KvErrorMessage.compacted);
    const source = revision === current ? state() : this.stateAt(revision);
    const start = latin1(request.key);
    const end = request.rangeEnd === undefined ? undefined : latin1(request.rangeEnd);
    let kvs = [...source.values()]
      .filter((kv) => Model.inRange(kv.key, start, end))
      .sort((a, b) => (a.key < b.key ? -1 : 1));
    const count = kvs.length;
    if (request.countOnly) kvs = [];
    if (request.minModRevision) kvs = kvs.filter((kv) => kv.mod >= request.minModRevision!);
    if (request.maxCreateRevision)
      kvs = kvs.filter((kv) => kv.create <= request.maxCreateRevision!);
    const target = request.sortTarget ?? 0;
    const field = (kv: Kv): string | number =>
      [kv.key, kv.version, kv.create, kv.mod, kv.value][target]!;
    let order = request.sortOrder ?? 0;
    if (target !== 0 && order === 0) order = 1;
    const cmp = (a: Kv, b: Kv) => (field(a) < field(b) ? -1 : field(a) > field(b) ? 1 : 0);
    if (order === 1) kvs.sort(cmp);
    if (order === 2) kvs.sort((a, b) => cmp(b, a));
    const limit = request.limit ?? 0;
    const more = limit > 0 && kvs.length > limit;
    if (more) kvs = kvs.slice(0, limit);
    if (request.keysOnly) kvs = kvs.map((kv) => ({ ...kv, value: '' }));
    return { revision: current, kvs, count, more };
  }

  /** Applies one request; returns a comparable response or throws an Error with etcd's message. */
  apply(request: KvRequest): unknown {
    if ('range' in request)
      return this.range(request.range, this.revision, () => this.stateAt(this.revision));
    if ('compaction' in request) {
      const revision = request.compaction.revision;
      if (revision <= this.compacted) throw new Error(KvErrorMessage.compacted);
      if (revision > this.revision) throw new Error(KvErrorMessage.futureRev);
      this.compacted = revision;
      return { revision: this.revision };
    }
    if ('leaseGrant' in request) {
      const { ID, TTL } = request.leaseGrant;
      if (this.leases.has(ID)) throw new Error(KvErrorMessage.leaseExist);
      this.leases.set(ID, new Set());
      return { revision: this.revision, ID: String(ID), TTL };
    }
    if ('leaseRevoke' in request) return this.revoke(request.leaseRevoke.ID);
    // A top-level put checks its lease before anything else.
    const lease = 'put' in request ? (request.put.lease ?? 0n) : 0n;
    if (lease !== 0n && !this.leases.has(lease)) throw new Error(KvErrorMessage.leaseNotFound);
    const txn: TxnRequest = 'txn' in request ? request.txn : { success: [toOp(request)] };
    const result = this.txn(txn);
    return 'txn' in request ? result : result.responses[0];
  }

  private revoke(id: bigint) {
    const keys = this.leases.get(id);
    if (keys === undefined) throw new Error(KvErrorMessage.leaseNotFound);
    const main = this.revision + 1;
    for (const key of [...keys].sort()) this.changes.push({ main, key, kv: undefined });
    if (keys.size > 0) this.revision = main;
    this.leases.delete(id);
    return { revision: this.revision };
  }

  private detach(kv: Kv | undefined): void {
    if (kv && kv.lease !== '0') this.leases.get(BigInt(kv.lease))?.delete(kv.key);
  }

  private compares(state: Map<string, Kv>, txn: TxnRequest): boolean {
    return (txn.compare ?? []).every((c) => {
      const kv = state.get(latin1(c.key));
      if (kv === undefined && c.target === 3) return false;
      const actual =
        c.target === 3 ? kv!.value : c.target === 0 ? (kv?.version ?? 0) : (kv?.mod ?? 0);
      const expected =
        c.target === 3 ? latin1(c.value!) : c.target === 0 ? c.version! : c.modRevision!;
      return c.result === 0
        ? actual === expected
        : c.result === 1
          ? actual > expected
          : actual < expected;
    });
  }

  /** The chosen branch of a txn and, recursively, of its nested txns, on the pre-txn state. */
  private path(state: Map<string, Kv>, txn: TxnRequest): Path {
    const succeeded = this.compares(state, txn);
    const ops = (succeeded ? txn.success : txn.failure) ?? [];
    return {
      succeeded,
      ops,
      nested: ops.flatMap((op) => ('requestTxn' in op ? [this.path(state, op.requestTxn)] : [])),
    };
  }

  private checkPuts(state: Map<string, Kv>, path: Path): void {
    let nested = 0;
    for (const op of path.ops) {
      if ('requestTxn' in op) this.checkPuts(state, path.nested[nested++]!);
      if (!('requestPut' in op)) continue;
      if (op.requestPut.ignoreValue && !state.has(latin1(op.requestPut.key))) {
        throw new Error(KvErrorMessage.keyNotFound);
      }
      const lease = op.requestPut.lease ?? 0n;
      if (lease !== 0n && !this.leases.has(lease)) throw new Error(KvErrorMessage.leaseNotFound);
    }
  }

  private txn(txn: TxnRequest) {
    // etcd checks both branches for duplicate keys before evaluating anything.
    checkDuplicates(txn.success ?? []);
    checkDuplicates(txn.failure ?? []);
    const before = this.stateAt(this.revision);
    const path = this.path(before, txn);
    this.checkPuts(before, path);
    const run: Run = { state: new Map(before), main: this.revision + 1, pending: [] };
    const response = this.execute(run, path);
    this.changes.push(...run.pending);
    if (run.pending.length > 0) this.revision = run.main;
    return { ...response, revision: this.revision };
  }

  private execute(
    run: Run,
    path: Path,
  ): { revision: number; succeeded: boolean; responses: unknown[] } {
    const current = () => (run.pending.length > 0 ? run.main : this.revision);
    let nested = 0;
    const responses = path.ops.map((op): unknown => {
      if ('requestTxn' in op) return this.execute(run, path.nested[nested++]!);
      if ('requestRange' in op) return this.range(op.requestRange, current(), () => run.state);
      if ('requestPut' in op) return this.put(run, op.requestPut);
      const start = latin1(op.requestDeleteRange.key);
      const end = op.requestDeleteRange.rangeEnd && latin1(op.requestDeleteRange.rangeEnd);
      const doomed = [...run.state.values()]
        .filter((kv) => Model.inRange(kv.key, start, end))
        .sort((a, b) => (a.key < b.key ? -1 : 1));
      for (const kv of doomed) {
        run.state.delete(kv.key);
        this.detach(kv);
        run.pending.push({ main: run.main, key: kv.key, kv: undefined });
      }
      return {
        revision: current(),
        deleted: doomed.length,
        prevKvs: op.requestDeleteRange.prevKv ? doomed : [],
      };
    });
    // etcd leaves a nested transaction's header empty; the caller overwrites the outer one.
    return { revision: 0, succeeded: path.succeeded, responses };
  }

  private put(run: Run, request: PutRequest) {
    const key = latin1(request.key);
    const previous = run.state.get(key);
    const kv = {
      key,
      value: request.ignoreValue ? previous!.value : latin1(request.value!),
      create: previous?.create ?? run.main,
      mod: run.main,
      version: (previous?.version ?? 0) + 1,
      lease: String(request.lease ?? 0n),
    };
    this.detach(previous);
    if (kv.lease !== '0') this.leases.get(BigInt(kv.lease))!.add(key);
    run.state.set(key, kv);
    run.pending.push({ main: run.main, key, kv });
    return { revision: run.main, prevKv: request.prevKv ? previous : undefined };
  }
}

type Path = { succeeded: boolean; ops: RequestOp[]; nested: Path[] };
type Run = { state: Map<string, Kv>; main: number; pending: Change[] };

function toOp(request: KvRequest): RequestOp {
  if ('put' in request) return { requestPut: request.put };
  if ('deleteRange' in request) return { requestDeleteRange: request.deleteRange };
  throw new Error('unsupported request');
}

/** etcd's duplicate-key rule (checkIntervals), written out for the model. */
function checkDuplicates(ops: readonly RequestOp[]): void {
  collectPuts(ops);
}

function collectPuts(ops: readonly RequestOp[]): {
  puts: Set<string>;
  deletes: [string, string | undefined][];
} {
  const deletes: [string, string | undefined][] = ops.flatMap((op) =>
    'requestDeleteRange' in op
      ? [
          [
            latin1(op.requestDeleteRange.key),
            op.requestDeleteRange.rangeEnd && latin1(op.requestDeleteRange.rangeEnd),
          ] as [string, string | undefined],
        ]
      : [],
  );
  // A range ending in "\0" is an inverted interval in etcd's check and intersects nothing.
  const deleted = (key: string) =>
    deletes.some(([start, end]) => end !== '\0' && Model.inRange(key, start, end));
  const puts = new Set<string>();
  const add = (key: string) => {
    if (puts.has(key) || deleted(key)) throw new Error(KvErrorMessage.duplicateKey);
    puts.add(key);
  };
  for (const op of ops) {
    if (!('requestTxn' in op)) continue;
    const then = collectPuts(op.requestTxn.success ?? []);
    const otherwise = collectPuts(op.requestTxn.failure ?? []);
    for (const key of then.puts) add(key);
    for (const key of otherwise.puts) {
      if (deleted(key) || (puts.has(key) && !then.puts.has(key)))
        throw new Error(KvErrorMessage.duplicateKey);
      puts.add(key);
    }
    deletes.push(...then.deletes, ...otherwise.deletes);
  }
  for (const op of ops) if ('requestPut' in op) add(latin1(op.requestPut.key));
  return { puts, deletes };
}

type StoreKv = import('./types.js').KeyValue;
/** Every field any response kind has; `normalize` reads only those of the kind at hand. */
interface LooseResponse {
  header: { revision: number };
  kvs: StoreKv[];
  count: number;
  more: boolean;
  prevKv?: StoreKv;
  deleted: number;
  prevKvs: StoreKv[];
  succeeded: boolean;
  responses: Record<string, unknown>[];
  ID: bigint;
  TTL: number;
}

/** Converts a store response into the model's shape. */
function normalizeKv(value: StoreKv | undefined): Kv | undefined {
  return (
    value && {
      key: latin1(value.key),
      value: latin1(value.value),
      create: value.createRevision,
      mod: value.modRevision,
      version: value.version,
      lease: String(value.lease),
    }
  );
}

function normalize(response: Record<string, unknown>): unknown {
  const kv = normalizeKv;
  const one = (kind: string, loose: unknown): unknown => {
    const r = loose as LooseResponse;
    if (kind === 'range' || kind === 'responseRange')
      return { revision: r.header.revision, kvs: r.kvs.map(kv), count: r.count, more: r.more };
    if (kind === 'put' || kind === 'responsePut')
      return { revision: r.header.revision, prevKv: kv(r.prevKv) };
    if (kind === 'deleteRange' || kind === 'responseDeleteRange')
      return { revision: r.header.revision, deleted: r.deleted, prevKvs: r.prevKvs.map(kv) };
    if (kind === 'compaction' || kind === 'leaseRevoke') return { revision: r.header.revision };
    if (kind === 'leaseGrant') return { revision: r.header.revision, ID: String(r.ID), TTL: r.TTL };
    return {
      revision: r.header.revision,
      succeeded: r.succeeded,
      responses: r.responses.map((op) => {
        const [name, value] = Object.entries(op)[0]!;
        return one(name, value);
      }),
    };
  };
  const [kind, value] = Object.entries(response)[0]!;
  return one(kind, value);
}

const KEYS = ['a', 'b', 'c', '\0', 'a\0', 'ab', 'b\xff', 'c\0\0'];
const key = fc.constantFrom(...KEYS).map(bytes);
const rangeEnd = fc.option(fc.constantFrom('', '\0', 'b', 'c', 'd', 'a\0').map(bytes), {
  nil: undefined,
});
const value = fc.constantFrom('x', 'y', 'zz', '').map(bytes);
const leaseId = fc.constantFrom(1n, 2n, 3n);
const put = fc.record({
  key,
  value,
  prevKv: fc.boolean(),
  lease: fc.oneof({ weight: 3, arbitrary: fc.constant(0n) }, { weight: 1, arbitrary: leaseId }),
});
const ignoreValuePut = fc.record({ key, ignoreValue: fc.constant(true) });
const deleteRange = fc.record({ key, rangeEnd, prevKv: fc.boolean() });
const rangeRequest = fc.record(
  {
    key,
    rangeEnd,
    revision: fc.integer({ min: -1, max: 40 }),
    limit: fc.integer({ min: 0, max: 4 }),
    sortOrder: fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2>,
    sortTarget: fc.constantFrom(0, 1, 2, 3, 4) as fc.Arbitrary<0 | 1 | 2 | 3 | 4>,
    countOnly: fc.boolean(),
    keysOnly: fc.boolean(),
    minModRevision: fc.integer({ min: 0, max: 20 }),
    maxCreateRevision: fc.integer({ min: 0, max: 20 }),
  },
  { requiredKeys: ['key'] },
);
const simpleOp: fc.Arbitrary<RequestOp> = fc.oneof(
  put.map((p) => ({ requestPut: p })),
  deleteRange.map((d) => ({ requestDeleteRange: d })),
  rangeRequest.map((r) => ({ requestRange: { ...r, revision: 0 } })),
);
const compare = fc.oneof(
  fc.record({
    key,
    target: fc.constant(0 as const),
    result: fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2>,
    version: fc.integer({ min: 0, max: 3 }),
  }),
  fc.record({
    key,
    target: fc.constant(2 as const),
    result: fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2>,
    modRevision: fc.integer({ min: 0, max: 20 }),
  }),
  fc.record({
    key,
    target: fc.constant(3 as const),
    result: fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2>,
    value,
  }),
);
/** Operations, including transactions nested up to two levels deep. */
const nestedTxn = (inner: fc.Arbitrary<RequestOp>) =>
  fc.record({
    compare: fc.array(compare, { maxLength: 2 }),
    success: fc.array(inner, { maxLength: 3 }),
    failure: fc.array(inner, { maxLength: 3 }),
  });
const innerOp: fc.Arbitrary<RequestOp> = fc.oneof(
  { weight: 4, arbitrary: simpleOp },
  { weight: 1, arbitrary: nestedTxn(simpleOp).map((t) => ({ requestTxn: t })) },
);
const op: fc.Arbitrary<RequestOp> = fc.oneof(
  { weight: 4, arbitrary: simpleOp },
  { weight: 1, arbitrary: nestedTxn(innerOp).map((t) => ({ requestTxn: t })) },
);
const request: fc.Arbitrary<KvRequest> = fc.oneof(
  { weight: 5, arbitrary: put.map((p) => ({ put: p })) },
  { weight: 1, arbitrary: ignoreValuePut.map((p) => ({ put: p })) },
  { weight: 2, arbitrary: deleteRange.map((d) => ({ deleteRange: d })) },
  { weight: 4, arbitrary: rangeRequest.map((r) => ({ range: r })) },
  {
    weight: 2,
    arbitrary: fc
      .record({
        compare: fc.array(compare, { maxLength: 2 }),
        success: fc.array(op, { maxLength: 3 }),
        failure: fc.array(op, { maxLength: 3 }),
      })
      .map((t) => ({ txn: t })),
  },
  {
    weight: 1,
    arbitrary: fc.integer({ min: -1, max: 30 }).map((revision) => ({ compaction: { revision } })),
  },
  { weight: 1, arbitrary: leaseId.map((ID) => ({ leaseGrant: { ID, TTL: 60 } })) },
  { weight: 1, arbitrary: leaseId.map((ID) => ({ leaseRevoke: { ID } })) },
);
/** A batch boundary after an op means the next ops go into a new apply batch. */
const program = fc.array(fc.tuple(request, fc.boolean()), { minLength: 1, maxLength: 40 });

type ModelEvent = { revision: number; type: number; kv: Kv; prevKv: Kv | undefined };

/** The model's events from `from` on, as etcd's watch reports them (prevKv when not compacted). */
function modelEvents(model: Model, from: number): ModelEvent[] {
  return model.changes
    .filter((change) => change.main >= from)
    .map((change) => {
      const previous =
        change.main - 1 >= model.compacted
          ? model.stateAt(change.main - 1).get(change.key)
          : undefined;
      const tombstone = {
        key: change.key,
        value: '',
        create: 0,
        mod: change.main,
        version: 0,
        lease: '0',
      };
      return {
        revision: change.main,
        type: change.kv ? 0 : 1,
        kv: change.kv ?? tombstone,
        prevKv: previous,
      };
    });
}

function storeEvents(revisions: readonly RevisionEvents[]): ModelEvent[] {
  return revisions.flatMap((r) =>
    r.events.map((e) => ({
      revision: r.revision,
      type: e.type,
      kv: normalizeKv(e.kv)!,
      prevKv: normalizeKv(e.prevKv),
    })),
  );
}

function fullState(harness: StoreHarness, model: Model): void {
  for (let revision = Math.max(1, model.compacted); revision <= model.revision; revision++) {
    const request = { key: bytes('\0'), rangeEnd: bytes('\0'), revision };
    const expected = model.range(request, model.revision, () => model.stateAt(model.revision));
    const actual = normalize({ range: harness.store.range(request) });
    assert.deepEqual(actual, expected, `state at revision ${revision}`);
  }
  // Replay from the compacted revision C itself shows only what compaction keeps at C (etcd
  // drops tombstones and superseded values there), then everything after C.
  const from = Math.max(model.compacted, 1);
  const history = harness.store.readHistory(from, { prevKv: true, eventsMax: 1e6 });
  const atCompaction = model.stateAt(model.compacted);
  const expected = modelEvents(model, from).filter(
    (event) =>
      event.revision > model.compacted ||
      (event.type === 0 &&
        atCompaction.get(event.kv.key) === model.changes.find((c) => c.kv === event.kv)?.kv),
  );
  assert.deepEqual(storeEvents(history.revisions), expected);
  for (const [id, keys] of model.leases) {
    assert.deepEqual(harness.store.lease(id)?.keys.map(latin1), [...keys].sort(), `lease ${id}`);
  }
  assert.deepEqual(harness.store.leaseIds().sort(), [...model.leases.keys()].sort());
}

test('the LMDB store answers like the reference model of etcd MVCC', async () => {
  await fc.assert(
    fc.asyncProperty(program, async (steps) => {
      // Tiny compaction steps leave deleted history around, which must stay invisible.
      const harness = StoreHarness.open({ noSync: true, applyCompactionStepEntriesMax: 2 });
      const model = new Model();
      const feed: RevisionEvents[] = [];
      harness.store.subscribe((revisions) => feed.push(...revisions));
      try {
        let batch: KvRequest[] = [];
        const flush = () => {
          const entries = batch.map((request) => ({ index: harness.nextIndex++, request }));
          const results = harness.store.applyBatch(entries);
          results.forEach((result, i) => {
            const request = batch[i]!;
            let expected: unknown;
            let expectedError: string | undefined;
            try {
              expected = model.apply(request);
            } catch (error) {
              expectedError = (error as Error).message;
            }
            if (result.status === 'error') assert.equal(result.error.message, expectedError);
            else if (result.status === 'ok') {
              assert.equal(expectedError, undefined, 'the store accepted what etcd rejects');
              assert.deepEqual(normalize(result.response as Record<string, unknown>), expected);
            } else assert.fail(`unexpected status ${result.status}`);
          });
          batch = [];
        };
        for (const [request, endBatch] of steps) {
          batch.push(request);
          if (endBatch) flush();
        }
        flush();
        fullState(harness, model);
        // The live feed saw every change, with prevKv taken before any compaction.
        const compacted = model.compacted;
        model.compacted = -1;
        assert.deepEqual(storeEvents(feed), modelEvents(model, 0));
        model.compacted = compacted;
        const hash = (await harness.store.hashKv()).hash;
        while (harness.store.compactStep(3));
        assert.equal(
          (await harness.store.hashKv()).hash,
          hash,
          'physical compaction changed HashKV',
        );
        fullState(harness, model);
        await harness.reopen();
        fullState(harness, model);
      } finally {
        await harness.close();
      }
    }),
    {
      seed: Number(process.env.KV_MODEL_SEED ?? 20261124),
      numRuns: Number(process.env.KV_MODEL_RUNS ?? 120),
    },
  );
});
