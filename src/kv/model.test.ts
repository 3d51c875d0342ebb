/**
 * Property test: the LMDB store against a deliberately simple in-memory model of etcd's MVCC
 * (a list of every change ever made, replayed to answer each read). Random sequences of puts,
 * deletes, transactions, compactions and ranges (with past revisions, sorting, limits and filters)
 * must give the same responses and errors, and afterwards the same state at every revision that is
 * still readable, including after a restart. Seeded, so a failure replays exactly.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { KvErrorMessage } from './errors.js';
import { StoreHarness } from './testing.js';
import type { KvRequest, RangeRequest, RequestOp, TxnRequest } from './types.js';

type Kv = { key: string; value: string; create: number; mod: number; version: number };
type Change = { main: number; key: string; kv: Kv | undefined };

const latin1 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('latin1');
const bytes = (text: string): Buffer => Buffer.from(text, 'latin1');

/** An etcd MVCC written for clarity, not speed: the state at R is the replay of changes <= R. */
class Model {
  revision = 1;
  compacted = -1;
  changes: Change[] = [];

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
    const txn: TxnRequest = 'txn' in request ? request.txn : { success: [toOp(request)] };
    const result = this.txn(txn);
    return 'txn' in request ? result : result.responses[0];
  }

  private txn(txn: TxnRequest) {
    // etcd checks both branches for duplicate keys before evaluating anything.
    checkDuplicates(txn.success ?? []);
    checkDuplicates(txn.failure ?? []);
    const before = this.stateAt(this.revision);
    const succeeded = (txn.compare ?? []).every((c) => {
      const kv = before.get(latin1(c.key));
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
    const ops = (succeeded ? txn.success : txn.failure) ?? [];
    for (const op of ops) {
      if (
        'requestPut' in op &&
        op.requestPut.ignoreValue &&
        !before.has(latin1(op.requestPut.key))
      ) {
        throw new Error(KvErrorMessage.keyNotFound);
      }
    }
    const state = new Map(before);
    const main = this.revision + 1;
    const pending: Change[] = [];
    const current = () => (pending.length > 0 ? main : this.revision);
    const responses = ops.map((op) => {
      if ('requestRange' in op) return this.range(op.requestRange, current(), () => state);
      if ('requestPut' in op) {
        const key = latin1(op.requestPut.key);
        const previous = state.get(key);
        const value = op.requestPut.ignoreValue ? previous!.value : latin1(op.requestPut.value!);
        const kv = {
          key,
          value,
          create: previous?.create ?? main,
          mod: main,
          version: (previous?.version ?? 0) + 1,
        };
        state.set(key, kv);
        pending.push({ main, key, kv });
        return { revision: main, prevKv: op.requestPut.prevKv ? previous : undefined };
      }
      if (!('requestDeleteRange' in op)) throw new Error('unexpected op');
      const start = latin1(op.requestDeleteRange.key);
      const end = op.requestDeleteRange.rangeEnd && latin1(op.requestDeleteRange.rangeEnd);
      const doomed = [...state.values()]
        .filter((kv) => Model.inRange(kv.key, start, end))
        .sort((a, b) => (a.key < b.key ? -1 : 1));
      for (const kv of doomed) {
        state.delete(kv.key);
        pending.push({ main, key: kv.key, kv: undefined });
      }
      return {
        revision: current(),
        deleted: doomed.length,
        prevKvs: op.requestDeleteRange.prevKv ? doomed : [],
      };
    });
    this.changes.push(...pending);
    if (pending.length > 0) this.revision = main;
    return { revision: this.revision, succeeded, responses };
  }
}

function toOp(request: KvRequest): RequestOp {
  if ('put' in request) return { requestPut: request.put };
  if ('deleteRange' in request) return { requestDeleteRange: request.deleteRange };
  throw new Error('unsupported request');
}

/** The single-level form of etcd's duplicate-key rule (the generator makes no nested txns). */
function checkDuplicates(ops: readonly RequestOp[]): void {
  const puts = new Set<string>();
  const deletes = ops.flatMap((op) => ('requestDeleteRange' in op ? [op.requestDeleteRange] : []));
  for (const op of ops) {
    if (!('requestPut' in op)) continue;
    const key = latin1(op.requestPut.key);
    const deleted = deletes.some((d) => {
      const end = d.rangeEnd === undefined ? undefined : latin1(d.rangeEnd);
      return end === '\0' ? false : Model.inRange(key, latin1(d.key), end);
    });
    if (puts.has(key) || deleted) throw new Error(KvErrorMessage.duplicateKey);
    puts.add(key);
  }
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
}

/** Converts a store response into the model's shape. */
function normalize(request: KvRequest, response: Record<string, unknown>): unknown {
  const kv = (
    value:
      | {
          key: Uint8Array;
          value: Uint8Array;
          createRevision: number;
          modRevision: number;
          version: number;
        }
      | undefined,
  ) =>
    value && {
      key: latin1(value.key),
      value: latin1(value.value),
      create: value.createRevision,
      mod: value.modRevision,
      version: value.version,
    };
  const one = (kind: string, loose: unknown): unknown => {
    const r = loose as LooseResponse;
    if (kind === 'range' || kind === 'responseRange')
      return { revision: r.header.revision, kvs: r.kvs.map(kv), count: r.count, more: r.more };
    if (kind === 'put' || kind === 'responsePut')
      return { revision: r.header.revision, prevKv: kv(r.prevKv) };
    if (kind === 'deleteRange' || kind === 'responseDeleteRange')
      return { revision: r.header.revision, deleted: r.deleted, prevKvs: r.prevKvs.map(kv) };
    if (kind === 'compaction') return { revision: r.header.revision };
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
  void request;
  return one(kind, value);
}

const KEYS = ['a', 'b', 'c', '\0', 'a\0', 'ab', 'b\xff', 'c\0\0'];
const key = fc.constantFrom(...KEYS).map(bytes);
const rangeEnd = fc.option(fc.constantFrom('', '\0', 'b', 'c', 'd', 'a\0').map(bytes), {
  nil: undefined,
});
const value = fc.constantFrom('x', 'y', 'zz', '').map(bytes);
const put = fc.record({ key, value, prevKv: fc.boolean() });
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
const op: fc.Arbitrary<RequestOp> = fc.oneof(
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
);
/** A batch boundary after an op means the next ops go into a new apply batch. */
const program = fc.array(fc.tuple(request, fc.boolean()), { minLength: 1, maxLength: 40 });

function fullState(harness: StoreHarness, model: Model): void {
  for (let revision = Math.max(1, model.compacted); revision <= model.revision; revision++) {
    const request = { key: bytes('\0'), rangeEnd: bytes('\0'), revision };
    const expected = model.range(request, model.revision, () => model.stateAt(model.revision));
    const actual = normalize({ range: request }, { range: harness.store.range(request) });
    assert.deepEqual(actual, expected, `state at revision ${revision}`);
  }
}

test('the LMDB store answers like the reference model of etcd MVCC', async () => {
  await fc.assert(
    fc.asyncProperty(program, async (steps) => {
      const harness = StoreHarness.open({ noSync: true });
      const model = new Model();
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
              assert.deepEqual(
                normalize(request, result.response as Record<string, unknown>),
                expected,
              );
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
