/**
 * etcd 3.4's transaction semantics, on top of a WriteRequest.
 *
 * As in etcd's applierV3backend.Txn, every compare of the transaction and of all nested
 * transactions on the chosen path is evaluated against the state before the transaction starts
 * (`compareToPath`), then the puts and ranges on that path are checked against that same state
 * (a missing lease, a missing key for ignore_value/ignore_lease, a compacted or future range
 * revision fail the whole transaction before anything is written), and only then are the
 * operations executed in order, each seeing the effects of the ones before it.
 */
import { errCompacted, errFutureRev, errKeyNotFound, errLeaseNotFound } from './errors.js';
import { boundsOf, getAt, header, type ReadContext, rangeKeys, rangeRequest } from './reader.js';
import {
  type Compare,
  CompareResult,
  CompareTarget,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type KeyValue,
  type PutRequest,
  type PutResponse,
  type RequestOp,
  type ResponseOp,
  type TxnRequest,
  type TxnResponse,
} from './types.js';
import type { WriteRequest } from './write.js';

const EMPTY = new Uint8Array(0);

/** Which branch each transaction on the executed path takes; `nested` follows op order. */
export interface TxnPath {
  succeeded: boolean;
  nested: TxnPath[];
}

function compareNumbers(a: number | bigint, b: number | bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** etcd's compareKV: an absent target value counts as zero (or the empty value). */
function compareKeyValue(condition: Compare, kv: KeyValue): boolean {
  let result: number;
  switch (condition.target) {
    case CompareTarget.VALUE:
      result = Buffer.compare(kv.value, condition.value ?? EMPTY);
      break;
    case CompareTarget.CREATE:
      result = compareNumbers(kv.createRevision, condition.createRevision ?? 0);
      break;
    case CompareTarget.MOD:
      result = compareNumbers(kv.modRevision, condition.modRevision ?? 0);
      break;
    case CompareTarget.VERSION:
      result = compareNumbers(kv.version, condition.version ?? 0);
      break;
    case CompareTarget.LEASE:
      result = compareNumbers(kv.lease, condition.lease ?? 0n);
      break;
    default:
      result = 0;
  }
  switch (condition.result) {
    case CompareResult.EQUAL:
      return result === 0;
    case CompareResult.NOT_EQUAL:
      return result !== 0;
    case CompareResult.GREATER:
      return result > 0;
    case CompareResult.LESS:
      return result < 0;
    default:
      return true;
  }
}

const ZERO_KV: KeyValue = {
  key: EMPTY,
  createRevision: 0,
  modRevision: 0,
  version: 0,
  value: EMPTY,
  lease: 0n,
};

/** etcd's applyCompare: every key of the range must match; a missing key compares as zeros. */
export function applyCompare(context: ReadContext, condition: Compare): boolean {
  const bounds = boundsOf(condition.key, condition.rangeEnd);
  const { kvs } = rangeKeys(context, bounds, 0, 0, false);
  if (kvs.length === 0) {
    // A value compare on a missing key always fails: "" and "absent" are the same on the wire.
    if (condition.target === CompareTarget.VALUE) return false;
    return compareKeyValue(condition, ZERO_KV);
  }
  return kvs.every((kv) => compareKeyValue(condition, kv));
}

export function compareToPath(context: ReadContext, txn: TxnRequest): TxnPath {
  const succeeded = (txn.compare ?? []).every((condition) => applyCompare(context, condition));
  const ops = (succeeded ? txn.success : txn.failure) ?? [];
  const nested: TxnPath[] = [];
  for (const op of ops) {
    if ('requestTxn' in op) nested.push(compareToPath(context, op.requestTxn));
  }
  return { succeeded, nested };
}

export type LeaseExists = (lease: bigint) => boolean;

/**
 * etcd's checkRequests(checkRequestPut) then checkRequests(checkRequestRange) over the executed
 * path, against the pre-transaction state: every put of the whole tree first, then every range.
 */
export function checkTxnPath(
  context: ReadContext,
  txn: TxnRequest,
  path: TxnPath,
  leaseExists: LeaseExists,
): void {
  forEachPathOp(txn, path, (op) => {
    if ('requestPut' in op) checkPut(context, op.requestPut, leaseExists);
  });
  forEachPathOp(txn, path, (op) => {
    if (!('requestRange' in op)) return;
    const revision = op.requestRange.revision ?? 0;
    if (revision === 0) return;
    if (revision > context.currentRevision) throw errFutureRev();
    if (revision < context.compactRevision) throw errCompacted();
  });
}

/** Visits the non-transaction operations of the executed path in etcd's (depth-first) order. */
function forEachPathOp(txn: TxnRequest, path: TxnPath, visit: (op: RequestOp) => void): void {
  const ops = (path.succeeded ? txn.success : txn.failure) ?? [];
  let nestedIndex = 0;
  for (const op of ops) {
    if ('requestTxn' in op) forEachPathOp(op.requestTxn, path.nested[nestedIndex++]!, visit);
    else visit(op);
  }
}

function checkPut(context: ReadContext, request: PutRequest, leaseExists: LeaseExists): void {
  if (request.ignoreValue || request.ignoreLease) {
    const key = boundsOf(request.key, undefined).key;
    if (getAt(context, key, context.currentRevision) === undefined) throw errKeyNotFound();
  }
  const lease = request.lease ?? 0n;
  if (lease !== 0n && !leaseExists(lease)) throw errLeaseNotFound();
}

/** etcd's applierV3backend.Put after the lease check: reads the previous kv only when needed. */
export function applyPut(write: WriteRequest, request: PutRequest): PutResponse {
  const needsPrevious = request.ignoreValue || request.ignoreLease || request.prevKv;
  const key = boundsOf(request.key, undefined).key;
  const previous = needsPrevious ? getAt(write.readContext(), key, write.revision) : undefined;
  if ((request.ignoreValue || request.ignoreLease) && previous === undefined) {
    throw errKeyNotFound();
  }
  const value = request.ignoreValue ? previous!.value : (request.value ?? EMPTY);
  const lease = request.ignoreLease ? previous!.lease : (request.lease ?? 0n);
  const revision = write.put(Buffer.from(key), value, lease);
  const response: PutResponse = { header: header(revision) };
  if (request.prevKv && previous !== undefined) response.prevKv = previous;
  return response;
}

export function applyDeleteRange(
  write: WriteRequest,
  request: DeleteRangeRequest,
): DeleteRangeResponse {
  const bounds = boundsOf(request.key, request.rangeEnd);
  let prevKvs: KeyValue[] = [];
  if (request.prevKv) prevKvs = rangeKeys(write.readContext(), bounds, 0, 0, false).kvs;
  const deleted = write.deleteRange(bounds);
  return { header: header(write.revision), deleted, prevKvs };
}

/**
 * Executes the operations of the path. A nested transaction's response keeps a zero header
 * revision, as etcd 3.4's does; the caller sets the outer header.
 */
export function applyTxnOps(write: WriteRequest, txn: TxnRequest, path: TxnPath): TxnResponse {
  const ops: RequestOp[] = (path.succeeded ? txn.success : txn.failure) ?? [];
  const responses: ResponseOp[] = [];
  let nestedIndex = 0;
  for (const op of ops) {
    if ('requestRange' in op) {
      responses.push({ responseRange: rangeRequest(write.readContext(), op.requestRange) });
    } else if ('requestPut' in op) {
      responses.push({ responsePut: applyPut(write, op.requestPut) });
    } else if ('requestDeleteRange' in op) {
      responses.push({ responseDeleteRange: applyDeleteRange(write, op.requestDeleteRange) });
    } else {
      const nested = applyTxnOps(write, op.requestTxn, path.nested[nestedIndex++]!);
      responses.push({ responseTxn: nested });
    }
  }
  return { header: header(0), succeeded: path.succeeded, responses };
}
