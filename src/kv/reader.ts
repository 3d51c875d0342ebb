/**
 * Read primitives of the MVCC store: etcd's range conventions, point and range reads at the current
 * or a past revision, and etcd's RangeRequest post-processing (filters, sort, limit, keys_only).
 *
 * The functions read through whatever LMDB transaction is active: inside the apply batch's write
 * transaction they see that batch's writes (etcd's write txn reads its own changes), outside it
 * they see the last committed state, or the snapshot given in `transaction`.
 */
import type { Transaction } from 'lmdb';
import { decodeKeyValue, encodeRevisionKey, type RevisionPointer } from './codec.js';
import { errCompacted, errFutureRev } from './errors.js';
import type { KeyIndex } from './key-index.js';
import type { KvDatabases } from './layout.js';
import {
  type KeyValue,
  type RangeRequest,
  type RangeResponse,
  SortOrder,
  SortTarget,
} from './types.js';

const EMPTY = new Uint8Array(0);

/** A key range after etcd's conventions are resolved. */
export interface RangeBounds {
  key: Buffer;
  /** Exclusive end; undefined with `single` false means "every key >= key". */
  end: Buffer | undefined;
  single: boolean;
}

export function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** etcd's mkGteRange plus the nil/empty distinction: "" = one key, "\0" = all keys >= key. */
export function boundsOf(key: Uint8Array, rangeEnd: Uint8Array | undefined): RangeBounds {
  if (rangeEnd === undefined || rangeEnd.length === 0) {
    return { key: toBuffer(key), end: undefined, single: true };
  }
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) {
    return { key: toBuffer(key), end: undefined, single: false };
  }
  return { key: toBuffer(key), end: toBuffer(rangeEnd), single: false };
}

/** True when the range holds no key at all (end at or below the start). */
export function isEmptyRange(bounds: RangeBounds): boolean {
  return bounds.end !== undefined && Buffer.compare(bounds.key, bounds.end) >= 0;
}

export interface ReadContext {
  dbs: KvDatabases;
  /** The in-memory key index (key-index.ts), equal to `revs` at the last write. */
  keys: KeyIndex;
  /** The revision of the state being read (the view's current revision). */
  currentRevision: number;
  compactRevision: number;
  transaction?: Transaction;
}

/** The newest change of `key` at or below `revision`, or undefined. */
export function latestAt(
  context: ReadContext,
  key: Buffer,
  revision: number,
): RevisionPointer | undefined {
  return context.keys.latestAt(key, revision);
}

function readRevision(context: ReadContext, pointer: RevisionPointer): KeyValue {
  const revisionKey = encodeRevisionKey(pointer.main, pointer.sub, false);
  const bytes = context.dbs.revs.get(revisionKey, { transaction: context.transaction } as never);
  if (bytes === undefined) throw new Error(`key index points at missing revision ${pointer.main}`);
  return decodeKeyValue(bytes);
}

/** The key's value as of `revision` (which must not be compacted), or undefined. */
export function getAt(context: ReadContext, key: Buffer, revision: number): KeyValue | undefined {
  if (revision === context.currentRevision) {
    const bytes = context.dbs.live.get(key, { transaction: context.transaction } as never);
    return bytes === undefined ? undefined : decodeKeyValue(bytes);
  }
  const pointer = latestAt(context, key, revision);
  if (pointer === undefined || pointer.tombstone) return undefined;
  return readRevision(context, pointer);
}

export interface RangeResult {
  kvs: KeyValue[];
  count: number;
  revision: number;
}

/**
 * etcd's rangeKeys: the keys of `bounds` as of `atRevision` (<= 0 means current), at most `limit`
 * of them (<= 0: all), and the number of keys in the range. Errors as etcd's mvcc.
 */
export function rangeKeys(
  context: ReadContext,
  bounds: RangeBounds,
  atRevision: number,
  limit: number,
  countOnly: boolean,
): RangeResult {
  const current = context.currentRevision;
  if (atRevision > current) throw errFutureRev();
  const revision = atRevision <= 0 ? current : atRevision;
  if (revision < context.compactRevision) throw errCompacted();
  if (isEmptyRange(bounds)) return { kvs: [], count: 0, revision: current };
  if (bounds.single) {
    const kv = getAt(context, bounds.key, revision);
    const kvs = kv === undefined || countOnly ? [] : [kv];
    return { kvs, count: kv === undefined ? 0 : 1, revision: current };
  }
  const max = limit > 0 ? limit : Number.POSITIVE_INFINITY;
  return revision === current
    ? rangeLive(context, bounds, max, countOnly)
    : rangeHistory(context, bounds, revision, max, countOnly);
}

function rangeLive(
  context: ReadContext,
  bounds: RangeBounds,
  max: number,
  countOnly: boolean,
): RangeResult {
  // lmdb-js adds fields to the options object it is given, so every call gets a fresh one.
  const options = () => rangeOptions(context, bounds);
  const count = context.dbs.live.getCount(options());
  const kvs: KeyValue[] = [];
  if (!countOnly) {
    const limited = Number.isFinite(max) ? { ...options(), limit: max } : options();
    for (const { value } of context.dbs.live.getRange(limited)) kvs.push(decodeKeyValue(value));
  }
  return { kvs, count, revision: context.currentRevision };
}

function rangeHistory(
  context: ReadContext,
  bounds: RangeBounds,
  revision: number,
  max: number,
  countOnly: boolean,
): RangeResult {
  const kvs: KeyValue[] = [];
  let count = 0;
  for (const [, pointer] of context.keys.latestInRange(bounds.key, bounds.end, revision)) {
    if (pointer.tombstone) continue;
    count += 1;
    if (!countOnly && kvs.length < max) kvs.push(readRevision(context, pointer));
  }
  return { kvs, count, revision: context.currentRevision };
}

interface LmdbRangeOptions {
  start: Buffer;
  end?: Buffer;
  transaction?: Transaction;
}

/** Range options without undefined fields (lmdb-js distinguishes absent from undefined). */
function rangeOptions(context: ReadContext, bounds: RangeBounds): LmdbRangeOptions {
  const options: LmdbRangeOptions = { start: bounds.key };
  if (bounds.end !== undefined) options.end = bounds.end;
  if (context.transaction !== undefined) options.transaction = context.transaction;
  return options;
}

type KvComparator = (a: KeyValue, b: KeyValue) => number;

const comparators: Record<number, KvComparator> = {
  [SortTarget.KEY]: (a, b) => Buffer.compare(a.key, b.key),
  [SortTarget.VERSION]: (a, b) => a.version - b.version,
  [SortTarget.CREATE]: (a, b) => a.createRevision - b.createRevision,
  [SortTarget.MOD]: (a, b) => a.modRevision - b.modRevision,
  [SortTarget.VALUE]: (a, b) => Buffer.compare(a.value, b.value),
};

function keepIf(kvs: KeyValue[], bound: number | undefined, keep: (kv: KeyValue) => boolean) {
  return bound ? kvs.filter(keep) : kvs;
}

/**
 * etcd's applierV3backend.Range. Notable etcd behaviours kept: `count` is the number of keys in the
 * range before the revision filters and the limit; sorting or filtering disables the early limit;
 * a non-KEY sort target with order NONE sorts ascending. Ties keep key order (a stable sort; Go's
 * sort.Sort agrees for fewer than 12 elements and is unspecified beyond).
 */
export function rangeRequest(context: ReadContext, request: RangeRequest): RangeResponse {
  const sortOrder = request.sortOrder ?? SortOrder.NONE;
  const sortTarget = request.sortTarget ?? SortTarget.KEY;
  const requestLimit = request.limit ?? 0;
  const filtered =
    !!request.minModRevision ||
    !!request.maxModRevision ||
    !!request.minCreateRevision ||
    !!request.maxCreateRevision;
  let fetchLimit = sortOrder !== SortOrder.NONE || filtered ? 0 : requestLimit;
  if (fetchLimit > 0) fetchLimit += 1; // one extra to learn whether there is more
  const bounds = boundsOf(request.key, request.rangeEnd);
  const result = rangeKeys(
    context,
    bounds,
    request.revision ?? 0,
    fetchLimit,
    request.countOnly ?? false,
  );
  let kvs = result.kvs;
  kvs = keepIf(kvs, request.maxModRevision, (kv) => kv.modRevision <= request.maxModRevision!);
  kvs = keepIf(kvs, request.minModRevision, (kv) => kv.modRevision >= request.minModRevision!);
  kvs = keepIf(
    kvs,
    request.maxCreateRevision,
    (kv) => kv.createRevision <= request.maxCreateRevision!,
  );
  kvs = keepIf(
    kvs,
    request.minCreateRevision,
    (kv) => kv.createRevision >= request.minCreateRevision!,
  );
  let order: number = sortOrder;
  if (sortTarget !== SortTarget.KEY && order === SortOrder.NONE) order = SortOrder.ASCEND;
  const compare = comparators[sortTarget];
  if (compare && order === SortOrder.ASCEND) kvs.sort(compare);
  else if (compare && order === SortOrder.DESCEND) kvs.sort((a, b) => compare(b, a));
  let more = false;
  if (requestLimit > 0 && kvs.length > requestLimit) {
    kvs = kvs.slice(0, requestLimit);
    more = true;
  }
  if (request.keysOnly) kvs = kvs.map((kv) => ({ ...kv, value: EMPTY }));
  return { header: header(result.revision), kvs, more, count: result.count };
}

/** A header as the store fills it; the server sets cluster id, member id and raft term. */
export function header(revision: number) {
  return { clusterId: 0n, memberId: 0n, revision, raftTerm: 0 };
}
