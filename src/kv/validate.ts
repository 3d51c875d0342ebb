/**
 * Request validation with etcd 3.4's rules (the checks its v3rpc layer runs before proposing).
 *
 * The server calls `validateRequest` before proposing so bad requests never reach the log, and the
 * store calls it again when applying, so a request that slipped through (an old log, another
 * proposer) still gets the same error on every member instead of a partial or divergent apply.
 */
import {
  errDuplicateKey,
  errEmptyKey,
  errInvalidSortOption,
  errKeyNotFound,
  errKeyTooLong,
  errLeaseProvided,
  errTooManyOps,
  errValueProvided,
  type KvError,
} from './errors.js';
import type {
  DeleteRangeRequest,
  KvRequest,
  PutRequest,
  RangeRequest,
  RequestOp,
  TxnRequest,
} from './types.js';

/** etcd's default `--max-txn-ops`. */
export const TXN_OPS_MAX_DEFAULT = 128;
/** LMDB's largest key; longer etcd keys are refused (see errKeyTooLong). */
export const KEY_BYTES_MAX = 1978;

function checkKeyLength(key: Uint8Array, rangeEnd: Uint8Array | undefined): void {
  if (key.length > KEY_BYTES_MAX || (rangeEnd && rangeEnd.length > KEY_BYTES_MAX)) {
    throw errKeyTooLong(KEY_BYTES_MAX);
  }
}

export function checkRangeRequest(request: RangeRequest): void {
  if (request.key.length === 0) throw errEmptyKey();
  checkKeyLength(request.key, request.rangeEnd);
  const order = request.sortOrder ?? 0;
  const target = request.sortTarget ?? 0;
  if (!Number.isInteger(order) || order < 0 || order > 2) throw errInvalidSortOption();
  if (!Number.isInteger(target) || target < 0 || target > 4) throw errInvalidSortOption();
}

export function checkPutRequest(request: PutRequest): void {
  if (request.key.length === 0) throw errEmptyKey();
  checkKeyLength(request.key, undefined);
  if (request.ignoreValue && (request.value?.length ?? 0) !== 0) throw errValueProvided();
  if (request.ignoreLease && (request.lease ?? 0n) !== 0n) throw errLeaseProvided();
}

export function checkDeleteRequest(request: DeleteRangeRequest): void {
  if (request.key.length === 0) throw errEmptyKey();
  checkKeyLength(request.key, request.rangeEnd);
}

function checkRequestOp(op: RequestOp, txnOpsMax: number): void {
  if ('requestRange' in op) checkRangeRequest(op.requestRange);
  else if ('requestPut' in op) checkPutRequest(op.requestPut);
  else if ('requestDeleteRange' in op) checkDeleteRequest(op.requestDeleteRange);
  else if ('requestTxn' in op) checkTxnRequest(op.requestTxn, txnOpsMax);
  // etcd answers an empty operation with "key not found".
  else throw errKeyNotFound();
}

/** etcd's checkTxnRequest: operation counts, empty compare keys, then every operation. */
export function checkTxnRequest(request: TxnRequest, txnOpsMax: number): void {
  const compare = request.compare ?? [];
  const success = request.success ?? [];
  const failure = request.failure ?? [];
  const opCount = Math.max(compare.length, success.length, failure.length);
  if (opCount > txnOpsMax) throw errTooManyOps();
  for (const condition of compare) {
    if (condition.key.length === 0) throw errEmptyKey();
    checkKeyLength(condition.key, condition.rangeEnd);
  }
  for (const op of success) checkRequestOp(op, txnOpsMax - opCount);
  for (const op of failure) checkRequestOp(op, txnOpsMax - opCount);
}

/** A deleted interval [start, end) of raw keys; `end` undefined means the single key `start`. */
interface Interval {
  start: Buffer;
  end: Buffer | undefined;
}

function intervalContains(interval: Interval, key: Buffer): boolean {
  if (interval.end === undefined) return interval.start.equals(key);
  // etcd builds these intervals from the raw range_end, where "\0" sorts below every key, so a
  // DeleteRange to "\0" (all keys from start) never intersects a put here; kept as etcd does.
  return Buffer.compare(interval.start, key) <= 0 && Buffer.compare(key, interval.end) < 0;
}

interface PutsAndDeletes {
  puts: Set<string>;
  deletes: Interval[];
}

function keyId(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.length).toString('latin1');
}

/**
 * etcd's checkIntervals: within one branch of a transaction (including nested transactions) a key
 * may be put at most once and may not be both deleted and put. Puts in the `success` and `failure`
 * branches of one nested transaction may share keys, since only one branch runs.
 */
function checkIntervals(ops: readonly RequestOp[]): PutsAndDeletes {
  const deletes: Interval[] = [];
  for (const op of ops) {
    if (!('requestDeleteRange' in op)) continue;
    const request = op.requestDeleteRange;
    const hasEnd = request.rangeEnd !== undefined && request.rangeEnd.length > 0;
    deletes.push({
      start: Buffer.from(request.key),
      end: hasEnd ? Buffer.from(request.rangeEnd!) : undefined,
    });
  }
  const deletesInclude = (key: string): boolean =>
    deletes.some((interval) => intervalContains(interval, Buffer.from(key, 'latin1')));
  const puts = new Set<string>();
  for (const op of ops) {
    if (!('requestTxn' in op)) continue;
    const then = checkIntervals(op.requestTxn.success ?? []);
    const otherwise = checkIntervals(op.requestTxn.failure ?? []);
    for (const key of then.puts) {
      if (puts.has(key) || deletesInclude(key)) throw errDuplicateKey();
      puts.add(key);
    }
    for (const key of otherwise.puts) {
      if (puts.has(key) && !then.puts.has(key)) throw errDuplicateKey();
      if (deletesInclude(key)) throw errDuplicateKey();
      puts.add(key);
    }
    deletes.push(...then.deletes, ...otherwise.deletes);
  }
  for (const op of ops) {
    if (!('requestPut' in op)) continue;
    const key = keyId(op.requestPut.key);
    if (puts.has(key) || deletesInclude(key)) throw errDuplicateKey();
    puts.add(key);
  }
  return { puts, deletes };
}

/** Validates a request as etcd's gRPC layer would; returns the error, or undefined when valid. */
export function validateRequest(
  request: KvRequest,
  txnOpsMax: number = TXN_OPS_MAX_DEFAULT,
): KvError | undefined {
  try {
    if ('range' in request) checkRangeRequest(request.range);
    else if ('put' in request) checkPutRequest(request.put);
    else if ('deleteRange' in request) checkDeleteRequest(request.deleteRange);
    else if ('txn' in request) {
      checkTxnRequest(request.txn, txnOpsMax);
      checkIntervals(request.txn.success ?? []);
      checkIntervals(request.txn.failure ?? []);
    }
    return undefined;
  } catch (error) {
    if (error instanceof Error && error.name === 'KvError') return error as KvError;
    throw error;
  }
}
