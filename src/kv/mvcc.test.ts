/**
 * Unit tests of the MVCC store against etcd 3.4's documented and observed semantics: revisions and
 * versions, range conventions, sorting, limits and filters, historical reads, put flags,
 * transactions, compaction, errors with etcd's exact messages, and persistence across restarts.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { open } from 'lmdb';
import { KvErrorMessage } from './errors.js';
import { StoreHarness } from './testing.js';
import {
  CompareResult,
  CompareTarget,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type KeyValue,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  SortOrder,
  SortTarget,
  type TxnRequest,
  type TxnResponse,
} from './types.js';

const b = (text: string): Buffer => Buffer.from(text);
const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString();
const ALL = new Uint8Array([0]);

let h: StoreHarness;
beforeEach(() => {
  h = StoreHarness.open();
});
afterEach(async () => {
  await h.close();
});

function put(key: string, value: string, extra: Partial<PutRequest> = {}): PutResponse {
  return (h.ok({ put: { key: b(key), value: b(value), ...extra } }) as { put: PutResponse }).put;
}
function del(key: string, extra: Partial<DeleteRangeRequest> = {}): DeleteRangeResponse {
  const response = h.ok({ deleteRange: { key: b(key), ...extra } });
  return (response as { deleteRange: DeleteRangeResponse }).deleteRange;
}
function txn(request: TxnRequest): TxnResponse {
  return (h.ok({ txn: request }) as { txn: TxnResponse }).txn;
}
function range(key: string, extra: Partial<RangeRequest> = {}): RangeResponse {
  return h.store.range({ key: b(key), ...extra });
}
function keys(response: RangeResponse): string[] {
  return response.kvs.map((kv) => text(kv.key));
}
function summary(kv: KeyValue | undefined) {
  if (kv === undefined) return undefined;
  const { createRevision, modRevision, version } = kv;
  return { key: text(kv.key), value: text(kv.value), createRevision, modRevision, version };
}
function rangeError(request: RangeRequest): string {
  assert.throws(() => h.store.range(request));
  try {
    h.store.range(request);
  } catch (error) {
    return (error as Error).message;
  }
  return '';
}

describe('revisions and versions', () => {
  test('a new store is at revision 1 and the first write creates revision 2', () => {
    assert.equal(range('a').header.revision, 1);
    assert.equal(put('a', '1').header.revision, 2);
    assert.deepEqual(summary(range('a').kvs[0]), {
      key: 'a',
      value: '1',
      createRevision: 2,
      modRevision: 2,
      version: 1,
    });
  });

  test('updates bump mod revision and version; delete resets the version', () => {
    put('a', '1');
    put('b', 'x');
    put('a', '2');
    assert.deepEqual(summary(range('a').kvs[0]), {
      key: 'a',
      value: '2',
      createRevision: 2,
      modRevision: 4,
      version: 2,
    });
    const deleted = del('a');
    assert.equal(deleted.deleted, 1);
    assert.equal(deleted.header.revision, 5);
    assert.equal(range('a').kvs.length, 0);
    put('a', '3');
    assert.deepEqual(summary(range('a').kvs[0]), {
      key: 'a',
      value: '3',
      createRevision: 6,
      modRevision: 6,
      version: 1,
    });
  });

  test('a delete that matches nothing does not create a revision', () => {
    put('a', '1');
    const response = del('zzz');
    assert.equal(response.deleted, 0);
    assert.equal(response.header.revision, 2);
    assert.equal(put('b', '1').header.revision, 3);
  });
});

describe('range conventions', () => {
  beforeEach(() => {
    for (const key of ['a', 'b', 'b\0', 'ba', 'c', 'd']) put(key, `v-${key}`);
  });

  test('empty range_end reads one key; [key, range_end) reads a half-open interval', () => {
    assert.deepEqual(keys(range('b')), ['b']);
    assert.deepEqual(keys(range('b', { rangeEnd: b('c') })), ['b', 'b\0', 'ba']);
    assert.deepEqual(keys(range('c', { rangeEnd: b('b') })), []);
  });

  test('range_end "\\0" means every key >= key; key "\\0" with it means all keys', () => {
    assert.deepEqual(keys(range('c', { rangeEnd: ALL })), ['c', 'd']);
    assert.deepEqual(keys(range('\0', { rangeEnd: ALL })), ['a', 'b', 'b\0', 'ba', 'c', 'd']);
  });

  test('limit sets more; count is the whole range', () => {
    const limited = range('a', { rangeEnd: ALL, limit: 2 });
    assert.deepEqual(keys(limited), ['a', 'b']);
    assert.equal(limited.more, true);
    assert.equal(limited.count, 6);
    const exact = range('a', { rangeEnd: b('b'), limit: 1 });
    assert.equal(exact.more, false);
  });

  test('count_only returns no kvs; keys_only drops values', () => {
    const counted = range('a', { rangeEnd: ALL, countOnly: true });
    assert.equal(counted.count, 6);
    assert.equal(counted.kvs.length, 0);
    const keysOnly = range('a', { rangeEnd: b('b'), keysOnly: true });
    assert.equal(keysOnly.kvs[0]!.value.length, 0);
    assert.equal(keysOnly.kvs[0]!.version, 1);
  });

  test('an empty key is rejected with etcd message', () => {
    assert.equal(rangeError({ key: new Uint8Array(0) }), KvErrorMessage.emptyKey);
  });
});

describe('sort and filters', () => {
  beforeEach(() => {
    put('a', 'z'); // rev 2
    put('b', 'y'); // rev 3
    put('c', 'x'); // rev 4
    put('a', 'w'); // rev 5: a has version 2
    put('b', 'v'); // rev 6
    put('b', 'u'); // rev 7: b has version 3
  });
  const all = { rangeEnd: ALL };

  test('sort by every target, ascending and descending', () => {
    const sorted = (sortTarget: SortTarget, sortOrder: SortOrder) =>
      keys(range('a', { ...all, sortTarget, sortOrder }));
    assert.deepEqual(sorted(SortTarget.KEY, SortOrder.DESCEND), ['c', 'b', 'a']);
    assert.deepEqual(sorted(SortTarget.VERSION, SortOrder.ASCEND), ['c', 'a', 'b']);
    assert.deepEqual(sorted(SortTarget.VERSION, SortOrder.DESCEND), ['b', 'a', 'c']);
    assert.deepEqual(sorted(SortTarget.CREATE, SortOrder.DESCEND), ['c', 'b', 'a']);
    assert.deepEqual(sorted(SortTarget.MOD, SortOrder.ASCEND), ['c', 'a', 'b']);
    assert.deepEqual(sorted(SortTarget.VALUE, SortOrder.ASCEND), ['b', 'a', 'c']);
    assert.deepEqual(sorted(SortTarget.VALUE, SortOrder.DESCEND), ['c', 'a', 'b']);
  });

  test('order NONE sorts ascending for a non-key target, as etcd does', () => {
    const response = range('a', { ...all, sortTarget: SortTarget.MOD, sortOrder: SortOrder.NONE });
    assert.deepEqual(keys(response), ['c', 'a', 'b']);
  });

  test('sort happens before limit', () => {
    const response = range('a', {
      ...all,
      sortTarget: SortTarget.VALUE,
      sortOrder: SortOrder.ASCEND,
      limit: 1,
    });
    assert.deepEqual(keys(response), ['b']);
    assert.equal(response.more, true);
  });

  test('min/max mod and create revision filters; count ignores them', () => {
    const byMod = range('a', { ...all, minModRevision: 5 });
    assert.deepEqual(keys(byMod), ['a', 'b']);
    assert.equal(byMod.count, 3);
    assert.deepEqual(keys(range('a', { ...all, maxModRevision: 5 })), ['a', 'c']);
    assert.deepEqual(keys(range('a', { ...all, minCreateRevision: 3 })), ['b', 'c']);
    assert.deepEqual(keys(range('a', { ...all, maxCreateRevision: 3 })), ['a', 'b']);
  });

  test('invalid sort options are rejected', () => {
    const request = { key: b('a'), sortOrder: 7 as SortOrder };
    assert.equal(rangeError(request), KvErrorMessage.invalidSortOption);
  });
});

describe('historical reads', () => {
  test('reads at a past revision see the state of that revision', () => {
    put('a', '1'); // 2
    put('a', '2'); // 3
    del('a'); // 4
    put('b', '1'); // 5
    assert.deepEqual(summary(range('a', { revision: 2 }).kvs[0])?.value, '1');
    assert.deepEqual(summary(range('a', { revision: 3 }).kvs[0])?.value, '2');
    assert.equal(range('a', { revision: 4 }).kvs.length, 0);
    assert.deepEqual(keys(range('a', { rangeEnd: ALL, revision: 3 })), ['a']);
    assert.deepEqual(keys(range('a', { rangeEnd: ALL, revision: 5 })), ['b']);
    const past = range('a', { rangeEnd: ALL, revision: 3, countOnly: true });
    assert.equal(past.count, 1);
    assert.equal(past.header.revision, 5, 'the header carries the current revision');
  });

  test('a future revision is an OUT_OF_RANGE error with etcd message', () => {
    put('a', '1');
    assert.equal(rangeError({ key: b('a'), revision: 3 }), KvErrorMessage.futureRev);
    try {
      h.store.range({ key: b('a'), revision: 3 });
    } catch (error) {
      assert.equal((error as { code: string }).code, 'OUT_OF_RANGE');
    }
  });
});

describe('keys', () => {
  test('keys are arbitrary bytes, ordered bytewise', () => {
    const raw = [
      Buffer.from([0]),
      Buffer.from([0, 0]),
      Buffer.from([0, 1]),
      Buffer.from([1]),
      Buffer.from([0xff, 0]),
    ];
    for (const key of [...raw].reverse()) h.ok({ put: { key, value: key } });
    const all = h.store.range({ key: Buffer.from([0]), rangeEnd: ALL });
    assert.deepEqual(
      all.kvs.map((kv) => Buffer.from(kv.key).toString('hex')),
      ['00', '0000', '0001', '01', 'ff00'],
    );
    assert.equal(h.store.range({ key: Buffer.from([0, 0]) }).count, 1);
  });

  test('keys longer than LMDB allows are refused with a clear error', () => {
    const error = h.fail({ put: { key: Buffer.alloc(1979, 1), value: b('v') } });
    assert.equal(error.code, 'INVALID_ARGUMENT');
    assert.match(error.message, /longer than 1978 bytes/);
    h.ok({ put: { key: Buffer.alloc(1978, 1), value: b('v') } });
  });
});

describe('put flags and errors', () => {
  test('prev_kv returns the previous value', () => {
    assert.equal(put('a', '1', { prevKv: true }).prevKv, undefined);
    assert.equal(summary(put('a', '2', { prevKv: true }).prevKv)?.value, '1');
  });

  test('ignore_value keeps the value; ignore_lease keeps the lease', () => {
    h.ok({ leaseGrant: { ID: 7n, TTL: 60 } });
    put('a', 'keep', { lease: 7n });
    h.ok({ put: { key: b('a'), ignoreValue: true, lease: 7n } });
    assert.equal(text(range('a').kvs[0]!.value), 'keep');
    put('a', 'new', { ignoreLease: true });
    const kv = range('a').kvs[0]!;
    assert.equal(text(kv.value), 'new');
    assert.equal(kv.lease, 7n);
    assert.equal(kv.version, 3);
  });

  test('etcd errors for put', () => {
    const cases: [PutRequest, string, string][] = [
      [{ key: new Uint8Array(0), value: b('x') }, 'INVALID_ARGUMENT', KvErrorMessage.emptyKey],
      [{ key: b('missing'), ignoreValue: true }, 'INVALID_ARGUMENT', KvErrorMessage.keyNotFound],
      [{ key: b('missing'), ignoreLease: true }, 'INVALID_ARGUMENT', KvErrorMessage.keyNotFound],
      [
        { key: b('a'), value: b('x'), ignoreValue: true },
        'INVALID_ARGUMENT',
        'etcdserver: value is provided',
      ],
      [
        { key: b('a'), lease: 1n, ignoreLease: true },
        'INVALID_ARGUMENT',
        'etcdserver: lease is provided',
      ],
      [{ key: b('a'), lease: 99n }, 'NOT_FOUND', KvErrorMessage.leaseNotFound],
    ];
    for (const [request, code, message] of cases) {
      const error = h.fail({ put: request });
      assert.equal(error.code, code);
      assert.equal(error.grpcCode, code === 'NOT_FOUND' ? 5 : 3);
      assert.equal(error.message, message);
    }
    assert.equal(h.store.revision, 1, 'failed requests change nothing');
  });

  test('the lease check comes before the key check, as in etcd', () => {
    const error = h.fail({ put: { key: b('missing'), ignoreValue: true, lease: 5n } });
    assert.equal(error.message, KvErrorMessage.leaseNotFound);
  });
});

describe('delete range', () => {
  test('deletes a range, counts it and returns prev_kvs', () => {
    for (const key of ['a', 'b', 'c']) put(key, key);
    const response = del('a', { rangeEnd: b('c'), prevKv: true });
    assert.equal(response.deleted, 2);
    assert.deepEqual(
      response.prevKvs.map((kv) => text(kv.key)),
      ['a', 'b'],
    );
    assert.deepEqual(keys(range('a', { rangeEnd: ALL })), ['c']);
    assert.equal(response.header.revision, 5);
  });
});

function cmp(key: string, target: CompareTarget, result: CompareResult, operand: object) {
  return { key: b(key), target, result, ...operand };
}

describe('transactions', () => {
  test('compares on every target and result', () => {
    h.ok({ leaseGrant: { ID: 3n, TTL: 60 } });
    put('k', 'v5', { lease: 3n }); // rev 2, version 1
    put('k', 'v6', { lease: 3n }); // rev 3, version 2
    const check = (condition: ReturnType<typeof cmp>) => txn({ compare: [condition] }).succeeded;
    const { VERSION, CREATE, MOD, VALUE, LEASE } = CompareTarget;
    const { EQUAL, GREATER, LESS, NOT_EQUAL } = CompareResult;
    assert.equal(check(cmp('k', VERSION, EQUAL, { version: 2 })), true);
    assert.equal(check(cmp('k', VERSION, GREATER, { version: 2 })), false);
    assert.equal(check(cmp('k', CREATE, EQUAL, { createRevision: 2 })), true);
    assert.equal(check(cmp('k', MOD, LESS, { modRevision: 4 })), true);
    assert.equal(check(cmp('k', MOD, NOT_EQUAL, { modRevision: 3 })), false);
    assert.equal(check(cmp('k', VALUE, EQUAL, { value: b('v6') })), true);
    assert.equal(check(cmp('k', VALUE, GREATER, { value: b('v5') })), true);
    assert.equal(check(cmp('k', LEASE, EQUAL, { lease: 3n })), true);
    // A missing key compares as zeros, except that a value compare always fails.
    assert.equal(check(cmp('none', VERSION, EQUAL, { version: 0 })), true);
    assert.equal(check(cmp('none', CREATE, EQUAL, {})), true);
    assert.equal(check(cmp('none', VALUE, EQUAL, { value: new Uint8Array(0) })), false);
    assert.equal(check(cmp('none', VALUE, NOT_EQUAL, { value: b('x') })), false);
  });

  test('a compare over a range needs every key to match', () => {
    put('p/1', 'a');
    put('p/2', 'a');
    put('p/3', 'b');
    const all = (end: string) =>
      txn({
        compare: [
          {
            ...cmp('p/', CompareTarget.VALUE, CompareResult.EQUAL, { value: b('a') }),
            rangeEnd: b(end),
          },
        ],
      }).succeeded;
    assert.equal(all('p/3'), true);
    assert.equal(all('p0'), false);
  });

  test('one revision per transaction with sub-revisions; ops see earlier ops', () => {
    const seen: { revision: number; keys: string[] }[] = [];
    h.store.subscribe((revisions) => {
      for (const r of revisions)
        seen.push({ revision: r.revision, keys: r.events.map((e) => text(e.kv.key)) });
    });
    put('old', 'x'); // rev 2
    const response = txn({
      success: [
        { requestRange: { key: b('a') } },
        { requestPut: { key: b('a'), value: b('1') } },
        { requestPut: { key: b('b'), value: b('2') } },
        { requestRange: { key: b('a'), rangeEnd: ALL } },
        { requestDeleteRange: { key: b('old') } },
      ],
    });
    assert.equal(response.succeeded, true);
    assert.equal(response.header.revision, 3);
    const [before, put1, , after, deleted] = response.responses;
    assert.deepEqual(before, {
      responseRange: {
        header: { clusterId: 0n, memberId: 0n, revision: 2, raftTerm: 0 },
        kvs: [],
        more: false,
        count: 0,
      },
    });
    assert.equal((put1 as { responsePut: PutResponse }).responsePut.header.revision, 3);
    assert.deepEqual(keys((after as { responseRange: RangeResponse }).responseRange), [
      'a',
      'b',
      'old',
    ]);
    assert.equal(
      (deleted as { responseDeleteRange: DeleteRangeResponse }).responseDeleteRange.deleted,
      1,
    );
    assert.deepEqual(seen, [
      { revision: 2, keys: ['old'] },
      { revision: 3, keys: ['a', 'b', 'old'] },
    ]);
    assert.equal(range('a').kvs[0]!.modRevision, 3);
    assert.equal(range('b').kvs[0]!.modRevision, 3);
  });

  test('a read-only or failed-branch-empty transaction creates no revision', () => {
    put('a', '1');
    const response = txn({
      compare: [cmp('a', CompareTarget.VERSION, CompareResult.EQUAL, { version: 9 })],
      success: [{ requestPut: { key: b('a'), value: b('2') } }],
      failure: [{ requestRange: { key: b('a') } }],
    });
    assert.equal(response.succeeded, false);
    assert.equal(response.header.revision, 2);
    assert.equal(h.store.revision, 2);
  });

  test('nested transactions: compares see the state before the outer transaction', () => {
    put('flag', 'off'); // rev 2
    const response = txn({
      success: [
        { requestPut: { key: b('flag'), value: b('on') } },
        {
          requestTxn: {
            compare: [cmp('flag', CompareTarget.VALUE, CompareResult.EQUAL, { value: b('off') })],
            success: [{ requestPut: { key: b('inner'), value: b('then') } }],
            failure: [{ requestPut: { key: b('inner'), value: b('else') } }],
          },
        },
      ],
    });
    const nested = (response.responses[1] as { responseTxn: TxnResponse }).responseTxn;
    assert.equal(nested.succeeded, true, 'the nested compare saw flag=off');
    assert.equal(nested.header.revision, 0, 'etcd leaves nested headers empty');
    assert.equal(text(range('inner').kvs[0]!.value), 'then');
    assert.equal(response.header.revision, 3);
  });

  test('duplicate keys are rejected as etcd does, nested then/else may share a key', () => {
    const dup = (request: TxnRequest) => h.fail({ txn: request }).message;
    const p = (key: string) => ({ requestPut: { key: b(key), value: b('v') } });
    assert.equal(dup({ success: [p('a'), p('a')] }), KvErrorMessage.duplicateKey);
    assert.equal(
      dup({ success: [{ requestDeleteRange: { key: b('a'), rangeEnd: b('c') } }, p('b')] }),
      KvErrorMessage.duplicateKey,
    );
    assert.equal(
      dup({ success: [p('a'), { requestTxn: { success: [p('a')] } }] }),
      KvErrorMessage.duplicateKey,
    );
    const shared = txn({ success: [{ requestTxn: { success: [p('a')], failure: [p('a')] } }] });
    assert.equal(shared.succeeded, true);
    // Different branches of the outer transaction are independent.
    assert.equal(txn({ success: [p('x')], failure: [p('x')] }).succeeded, true);
  });

  test('delete to "\\0" and a put of the same key in one txn: the put wins at that revision', () => {
    put('c', 'old'); // rev 2; etcd's duplicate check never intersects a range ending in "\0"
    txn({
      success: [
        { requestDeleteRange: { key: b('a'), rangeEnd: ALL } },
        { requestPut: { key: b('c'), value: b('new') } },
      ],
    });
    put('d', 'x'); // rev 4, so revision 3 is read from history
    const atThree = range('c', { revision: 3 }).kvs[0];
    assert.deepEqual(summary(atThree), {
      key: 'c',
      value: 'new',
      createRevision: 3,
      modRevision: 3,
      version: 1,
    });
  });

  test('too many operations and empty compare keys are rejected', () => {
    const ops = Array.from({ length: 129 }, (_, i) => ({
      requestPut: { key: b(`k${i}`), value: b('v') },
    }));
    assert.equal(h.fail({ txn: { success: ops } }).message, KvErrorMessage.tooManyOps);
    const error = h.fail({
      txn: { compare: [cmp('', CompareTarget.VERSION, CompareResult.EQUAL, {})] },
    });
    assert.equal(error.message, KvErrorMessage.emptyKey);
  });

  test('a failing operation fails the whole transaction before anything is written', () => {
    put('a', '1');
    const error = h.fail({
      txn: {
        success: [
          { requestPut: { key: b('b'), value: b('x') } },
          { requestPut: { key: b('c'), value: b('x'), lease: 42n } },
        ],
      },
    });
    assert.equal(error.message, KvErrorMessage.leaseNotFound);
    const missing = h.fail({
      txn: { success: [{ requestPut: { key: b('nope'), ignoreValue: true } }] },
    });
    assert.equal(missing.message, KvErrorMessage.keyNotFound);
    const future = h.fail({ txn: { success: [{ requestRange: { key: b('a'), revision: 50 } }] } });
    assert.equal(future.message, KvErrorMessage.futureRev);
    assert.equal(h.store.revision, 2);
    assert.equal(range('b').kvs.length, 0);
  });
});

describe('compaction', () => {
  test('errors: at or below the compacted revision, or in the future', () => {
    put('a', '1');
    put('a', '2'); // rev 3
    assert.equal(h.fail({ compaction: { revision: 4 } }).message, KvErrorMessage.futureRev);
    assert.equal(
      (h.ok({ compaction: { revision: 2 } }) as { compaction: { header: { revision: number } } })
        .compaction.header.revision,
      3,
    );
    const again = h.fail({ compaction: { revision: 2 } });
    assert.equal(again.code, 'OUT_OF_RANGE');
    assert.equal(again.message, KvErrorMessage.compacted);
  });

  test("a non-integer revision is the request's error, not a crash of the batch", () => {
    assert.equal(h.fail({ compaction: { revision: 1.5 } }).code, 'INVALID_ARGUMENT');
    assert.equal(h.fail({ leaseGrant: { ID: 1n, TTL: Number.NaN } }).code, 'INVALID_ARGUMENT');
    assert.equal(put('a', '1').header.revision, 2);
  });

  test('reads below the compacted revision fail; at it they still work', () => {
    put('a', '1'); // 2
    put('a', '2'); // 3
    put('b', '1'); // 4
    del('b'); // 5
    put('a', '3'); // 6
    h.ok({ compaction: { revision: 4 } });
    assert.equal(rangeError({ key: b('a'), revision: 3 }), KvErrorMessage.compacted);
    assert.equal(text(range('a', { revision: 4 }).kvs[0]!.value), '2');
    assert.deepEqual(keys(range('a', { rangeEnd: ALL, revision: 4 })), ['a', 'b']);
    assert.equal(range('b', { revision: 5 }).kvs.length, 0);
    assert.equal(text(range('a').kvs[0]!.value), '3');
  });

  test("physical compaction keeps only each live key's value at the compacted revision", () => {
    put('a', '1'); // 2
    put('a', '2'); // 3
    put('gone', 'x'); // 4
    del('gone'); // 5
    put('b', '1'); // 6
    put('a', '3'); // 7
    h.ok({ compaction: { revision: 6 } });
    const history = h.store.readHistory(6);
    const remaining = history.revisions.map((r) => [
      r.revision,
      r.events.map((e) => text(e.kv.key)),
    ]);
    assert.deepEqual(remaining, [
      [6, ['b']],
      [7, ['a']],
    ]);
    // 'a' at revision 3 survives because it is a's value at revision 6.
    assert.equal(text(range('a', { revision: 6 }).kvs[0]!.value), '2');
    assert.equal(range('gone', { revision: 6 }).count, 0);
    assert.throws(() => h.store.readHistory(5), { message: KvErrorMessage.compacted });
  });
});

describe('physical compaction in steps', () => {
  test('responses do not depend on physical progress, which survives a restart', async () => {
    await h.close();
    h = StoreHarness.open({ applyCompactionStepEntriesMax: 0 });
    for (let i = 0; i < 30; i++) put(`k${i % 3}`, `${i}`); // revisions 2..31
    del('k0', { rangeEnd: ALL }); // revision 32: no key is alive any more
    put('late', 'x'); // 33
    const before = h.store.status().historyEntries;
    h.ok({ compaction: { revision: 31 } });
    const observe = async () => ({
      // At 32 no key is alive, etcd's special case where HashKV counts every kept entry.
      hashes: await Promise.all([0, 32, 33].map(async (r) => (await h.store.hashKv(r)).hash)),
      history: h.store.readHistory(31).revisions.map((r) => r.revision),
      atCompaction: h.store.range({ key: ALL, rangeEnd: ALL, revision: 31 }).count,
      now: keys(range('\0', { rangeEnd: ALL })),
    });
    const logical = await observe();
    assert.deepEqual(logical.history, [31, 32, 33]);
    assert.equal(logical.atCompaction, 3);
    assert.equal(h.store.status().compactionPending, true);
    assert.equal(h.store.status().historyEntries, before, 'nothing deleted yet');
    assert.equal(h.store.compactStep(10), true);
    await h.reopen();
    assert.equal(h.store.status().compactionPending, true, 'progress survives a restart');
    assert.deepEqual(await observe(), logical);
    while (h.store.compactStep(10));
    assert.equal(h.store.status().compactionPending, false);
    // Kept: each key's value at 31 (revisions 29-31), the three tombstones at 32, and 33.
    assert.equal(h.store.status().historyEntries, 7);
    assert.deepEqual(await observe(), logical);
  });

  test('history from the compacted revision hides a deletion at it before and after', async () => {
    await h.close();
    h = StoreHarness.open({ applyCompactionStepEntriesMax: 0 });
    put('a', '1'); // 2
    del('a'); // 3
    put('b', '1'); // 4
    h.ok({ compaction: { revision: 3 } });
    const replay = () => h.store.readHistory(3).revisions.map((r) => r.revision);
    assert.deepEqual(replay(), [4]);
    while (h.store.compactStep());
    assert.deepEqual(replay(), [4]);
  });
});

describe('leases', () => {
  test('checkpoints record remaining TTL durably, without a revision; 0 clears them', async () => {
    h.ok({ leaseGrant: { ID: 5n, TTL: 60 } });
    const revision = h.store.lease(5n) && range('nothing').header.revision;
    h.ok({
      leaseCheckpoint: {
        checkpoints: [
          { ID: 5n, remainingTtl: 42 },
          { ID: 9n, remainingTtl: 7 },
        ],
      },
    });
    assert.equal(range('nothing').header.revision, revision, 'no revision for a checkpoint');
    await h.reopen();
    assert.equal(h.store.lease(5n)?.remainingTtlSeconds, 42);
    assert.equal(h.store.lease(5n)?.ttlSeconds, 60);
    assert.equal(h.store.lease(9n), undefined, 'a checkpoint does not create a lease');
    h.ok({ leaseCheckpoint: { checkpoints: [{ ID: 5n, remainingTtl: 0 }] } });
    assert.equal(h.store.lease(5n)?.remainingTtlSeconds, undefined);
  });

  test('grant errors and minimum TTL', () => {
    const granted = h.ok({ leaseGrant: { ID: 1n, TTL: 1 } }) as {
      leaseGrant: { TTL: number; ID: bigint };
    };
    assert.equal(granted.leaseGrant.TTL, 2, 'raised to the minimum TTL');
    assert.equal(h.fail({ leaseGrant: { ID: 1n, TTL: 60 } }).message, KvErrorMessage.leaseExist);
    assert.equal(
      h.fail({ leaseGrant: { ID: 2n, TTL: 9_000_000_001 } }).message,
      KvErrorMessage.leaseTtlTooLarge,
    );
    assert.equal(h.fail({ leaseGrant: { ID: 0n, TTL: 60 } }).message, KvErrorMessage.leaseNotFound);
    const big = 0x7fff_ffff_ffff_fff0n;
    h.ok({ leaseGrant: { ID: big, TTL: 60 } });
    put('x', 'y', { lease: big });
    assert.equal(range('x').kvs[0]!.lease, big, 'lease ids above 2^53 survive');
  });

  test('revoke deletes every attached key in one revision, in key order', () => {
    h.ok({ leaseGrant: { ID: 5n, TTL: 60 } });
    put('k3', 'v', { lease: 5n });
    put('k1', 'v', { lease: 5n });
    put('k2', 'v', { lease: 5n });
    put('free', 'v');
    put('k2', 'v2'); // detached from the lease by a put without one
    const seen: { revision: number; keys: string[]; types: number[] }[] = [];
    h.store.subscribe((revisions) => {
      for (const r of revisions) {
        seen.push({
          revision: r.revision,
          keys: r.events.map((e) => text(e.kv.key)),
          types: r.events.map((e) => e.type),
        });
      }
    });
    assert.deepEqual(h.store.lease(5n)!.keys.map(text), ['k1', 'k3']);
    const revoked = h.ok({ leaseRevoke: { ID: 5n } }) as {
      leaseRevoke: { header: { revision: number } };
    };
    assert.equal(revoked.leaseRevoke.header.revision, 7);
    assert.deepEqual(seen, [{ revision: 7, keys: ['k1', 'k3'], types: [1, 1] }]);
    assert.deepEqual(keys(range('a', { rangeEnd: ALL })), ['free', 'k2']);
    assert.equal(h.store.lease(5n), undefined);
    assert.equal(h.fail({ leaseRevoke: { ID: 5n } }).message, KvErrorMessage.leaseNotFound);
  });

  test('deleting a key detaches it from its lease', () => {
    h.ok({ leaseGrant: { ID: 9n, TTL: 60 } });
    put('a', '1', { lease: 9n });
    del('a');
    assert.deepEqual(h.store.lease(9n)!.keys, []);
    assert.deepEqual(h.store.leaseIds(), [9n]);
  });
});

describe('apply batches, restarts and idempotence', () => {
  test('state, revision and applied index survive a restart', async () => {
    put('a', '1');
    put('b', '2');
    h.ok({ compaction: { revision: 2 } });
    h.ok({ leaseGrant: { ID: 4n, TTL: 30 } });
    await h.reopen();
    assert.equal(h.store.revision, 3);
    assert.equal(h.store.compactedRevision, 2);
    assert.equal(h.store.appliedIndex, 4);
    assert.deepEqual(keys(range('a', { rangeEnd: ALL })), ['a', 'b']);
    assert.equal(h.store.lease(4n)!.ttlSeconds, 30);
    assert.equal(put('c', '3').header.revision, 4);
  });

  test('entries at or below the applied index are skipped, even after a restart', async () => {
    const batch = [
      { index: 1, request: { put: { key: b('a'), value: b('1') } } },
      { index: 2, request: { put: { key: b('a'), value: b('2') } } },
    ];
    h.store.applyBatch(batch);
    await h.reopen();
    const again = h.store.applyBatch([
      ...batch,
      { index: 3, request: { put: { key: b('c'), value: b('3') } } },
    ]);
    assert.deepEqual(
      again.map((r) => r.status),
      ['skipped', 'skipped', 'ok'],
    );
    assert.equal(range('a').kvs[0]!.version, 2);
    assert.equal(h.store.revision, 4);
  });

  test('entries without a request only advance the applied index', () => {
    const results = h.store.applyBatch([
      { index: 1 },
      { index: 2, request: { put: { key: b('a'), value: b('1') } } },
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['noop', 'ok'],
    );
    assert.equal(h.store.appliedIndex, 2);
  });

  test('failed requests inside a batch do not disturb the others', () => {
    const results = h.store.applyBatch([
      { index: 1, request: { put: { key: b('a'), value: b('1') } } },
      { index: 2, request: { put: { key: b(''), value: b('1') } } },
      { index: 3, request: { put: { key: b('b'), value: b('1') } } },
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['ok', 'error', 'ok'],
    );
    assert.equal(h.store.revision, 3);
  });

  test('one entry carrying a batch applies its requests in order, one revision each', () => {
    const seen: number[] = [];
    h.store.subscribe((revisions) => seen.push(...revisions.map((r) => r.revision)));
    const [result] = h.store.applyBatch([
      {
        index: 1,
        batch: [
          { put: { key: b('a'), value: b('1') } },
          { put: { key: b('a'), value: b('2'), prevKv: true } },
          // Refused alone: the lease does not exist; the puts around it still apply.
          { put: { key: b('l'), value: b('x'), lease: 99n } },
          { put: { key: b('b'), value: b('3') } },
        ],
      },
    ]);
    assert.ok(result !== undefined && result.status === 'batch');
    assert.deepEqual(
      result.results.map((r) => r.status),
      ['ok', 'ok', 'error', 'ok'],
    );
    const revisions = result.results.map((r) =>
      r.status === 'ok' && 'put' in r.response ? r.response.put.header.revision : undefined,
    );
    assert.deepEqual(revisions, [2, 3, undefined, 4]);
    const second = result.results[1]!;
    assert.ok(second.status === 'ok' && 'put' in second.response);
    assert.equal(text(second.response.put.prevKv!.value), '1', 'sees the put before it');
    assert.equal(h.store.appliedIndex, 1);
    assert.equal(h.store.revision, 4);
    assert.deepEqual(seen, [2, 3, 4], 'watchers see one revision per put');
    assert.equal(range('a').kvs[0]!.version, 2);
  });

  test('a batch entry already applied is skipped whole, even after a restart', async () => {
    const entry = {
      index: 1,
      batch: [{ put: { key: b('a'), value: b('1') } }, { put: { key: b('b'), value: b('2') } }],
    };
    h.store.applyBatch([entry]);
    await h.reopen();
    const [again] = h.store.applyBatch([entry]);
    assert.equal(again!.status, 'skipped');
    assert.equal(h.store.revision, 3);
    assert.equal(range('a').kvs[0]!.version, 1);
  });
});

describe('the in-memory key index', () => {
  test('an aborted batch leaves nothing in the index: past reads never see its writes', () => {
    put('x', '1'); // revision 2
    // The put of "a" writes, then the next entry's bad raft index aborts the whole transaction.
    assert.throws(
      () =>
        h.store.applyBatch([
          { index: 2, request: { put: { key: b('a'), value: b('lost') } } },
          { index: 2.5, request: { put: { key: b('y'), value: b('1') } } },
        ]),
      /raft index/,
    );
    assert.equal(h.store.revision, 2);
    h.nextIndex = 2;
    put('b', '1'); // revision 3, the revision the aborted put of "a" had
    put('c', '1'); // 4
    assert.deepEqual(keys(range('a', { rangeEnd: ALL, revision: 3 })), ['b', 'x']);
    assert.equal(range('a', { revision: 3 }).count, 0);
    assert.equal(put('a', '2').header.revision, 5);
    assert.deepEqual(summary(range('a', { revision: 5 }).kvs[0]), {
      key: 'a',
      value: '2',
      createRevision: 5,
      modRevision: 5,
      version: 1,
    });
  });

  test('a store made with the index table on disk drops it at open and keeps its history', async () => {
    put('a', '1'); // 2
    put('a', '2'); // 3
    await h.store.close();
    const path = join(h.directory, 'kv.mdb');
    const names = async (create: boolean) => {
      const env = open({ path, maxDbs: 8 });
      if (create) {
        const table = env.openDB({ name: 'index', keyEncoding: 'binary', dupSort: true });
        table.putSync(b('a'), b('old row'));
      }
      const found = [...env.getKeys()].map(String);
      await env.close();
      return found;
    };
    assert.ok((await names(true)).includes('index'));
    await h.reopen();
    assert.equal(text(range('a', { revision: 2 }).kvs[0]!.value), '1');
    await h.store.close();
    assert.ok(!(await names(false)).includes('index'));
    await h.reopen();
  });

  test('a HashKV in flight keeps its answer while a later compaction runs', async () => {
    await h.close();
    h = StoreHarness.open({ applyCompactionStepEntriesMax: 0 });
    // More kept entries below the first compaction than one hash step reads (5,000), so the hash
    // yields while it is still deciding which of them count.
    const keyCount = 6_000;
    const batch = (value: string) =>
      h.store.applyBatch(
        Array.from({ length: keyCount }, (_, i) => ({
          index: h.nextIndex++,
          request: { put: { key: b(`k${i}`), value: b(value) } },
        })),
      );
    batch('old');
    const firstCompaction = h.store.revision;
    h.ok({ compaction: { revision: firstCompaction } });
    while (h.store.compactStep());
    batch('new');
    const expected = (await h.store.hashKv()).hash;
    const inFlight = h.store.hashKv();
    assert.equal(h.store.hashing, true);
    let hashesDone = false;
    void h.store.hashesDone().then(() => {
      hashesDone = true;
    });
    // A second compaction would drop every "old" entry from the index while the hash's view still
    // holds them; its steps wait until the hash is done.
    h.ok({ compaction: { revision: h.store.revision } });
    for (let step = 0; step < 20; step++) assert.equal(h.store.compactStep(), true);
    assert.equal(h.store.status().historyEntries, 2 * keyCount, 'waits for the hash');
    assert.equal(hashesDone, false);
    assert.equal((await inFlight).hash, expected);
    assert.equal(hashesDone, true, 'hashesDone settles when the last hash ends');
    assert.equal(h.store.hashing, false);
    while (h.store.compactStep());
    assert.equal(h.store.status().compactionPending, false);
    assert.equal(h.store.status().historyEntries, keyCount);
  });
});

describe('watch feed and history', () => {
  test('subscribers get each committed revision in order, with prevKv', () => {
    const seen: string[] = [];
    h.store.subscribe((revisions) => {
      for (const r of revisions) {
        for (const e of r.events)
          seen.push(
            `${r.revision}:${e.type}:${text(e.kv.key)}:${e.prevKv ? text(e.prevKv.value) : '-'}`,
          );
      }
    });
    h.store.applyBatch([
      { index: 1, request: { put: { key: b('a'), value: b('1') } } },
      { index: 2, request: { put: { key: b('a'), value: b('2') } } },
      { index: 3, request: { deleteRange: { key: b('a') } } },
    ]);
    assert.deepEqual(seen, ['2:0:a:-', '3:0:a:1', '4:1:a:2']);
  });

  test('readHistory pages by events and attaches prevKv on request', () => {
    for (let i = 0; i < 5; i++) put('k', `${i}`);
    const first = h.store.readHistory(3, { eventsMax: 2, prevKv: true });
    assert.deepEqual(
      first.revisions.map((r) => r.revision),
      [3, 4],
    );
    assert.equal(text(first.revisions[0]!.events[0]!.prevKv!.value), '0');
    const rest = h.store.readHistory(first.nextRevision);
    assert.deepEqual(
      rest.revisions.map((r) => r.revision),
      [5, 6],
    );
    assert.equal(rest.nextRevision, 7);
  });
});

describe('quota and status', () => {
  test('writes fail with NOSPACE above the quota; reads do not', async () => {
    await h.close();
    h = StoreHarness.open({ quotaBytes: 64 * 1024 });
    const request = { put: { key: b('a'), value: b('x') } };
    assert.equal(h.store.quotaCheck(request), undefined);
    for (let i = 0; i < 200; i++) put(`key-${i}`, 'v'.repeat(1000));
    const error = h.store.quotaCheck(request);
    assert.equal(error?.code, 'RESOURCE_EXHAUSTED');
    assert.equal(error?.message, KvErrorMessage.noSpace);
    assert.equal(h.store.quotaCheck({ range: { key: b('a') } }), undefined);
    const status = h.store.status();
    assert.ok(status.dbSizeBytes >= 200_000);
    assert.ok(status.dbSizeInUseBytes > 0 && status.dbSizeInUseBytes <= status.dbSizeBytes);
  });

  test('deleting and compacting makes room again: freed pages are reused, not counted', async () => {
    await h.close();
    h = StoreHarness.open({ quotaBytes: 256 * 1024 });
    const big = (i: number) => ({ put: { key: b(`fill/${i}`), value: Buffer.alloc(16 * 1024) } });
    let puts = 0;
    while (h.store.quotaCheck(big(puts)) === undefined)
      put(`fill/${puts++}`, 'x'.repeat(16 * 1024));
    assert.ok(puts >= 4, `filled with ${puts} puts`);
    del('fill/', { rangeEnd: b('fill0') });
    h.ok({ compaction: { revision: h.store.revision } });
    while (h.store.compactStep());
    // The file keeps its size (LMDB never shrinks it), but its pages are free for new writes.
    const status = h.store.status();
    assert.ok(status.dbSizeBytes + 17 * 1024 >= 256 * 1024, `file of ${status.dbSizeBytes} bytes`);
    assert.equal(h.store.quotaCheck(big(0)), undefined);
  });
});
