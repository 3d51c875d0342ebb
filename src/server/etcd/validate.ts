/**
 * Request checks the etcd API makes before a request reaches the store, with etcd's own errors:
 * empty keys, contradictory put flags, oversized transactions, and transactions that would write
 * one key twice (a put repeated, or a put inside a range the same branch deletes).
 */
import { EtcdError, etcdErrors } from './errors.js';
import type {
  DeleteRangeRequest,
  PutRequest,
  RangeRequest,
  RequestOp,
  TxnRequest,
} from './types.js';

/** etcd's default --max-txn-ops: the most compares, or ops in one branch, a txn may carry. */
export const txnOpsMaxDefault = 128;

export function checkRangeRequest(request: RangeRequest): void {
  if (request.key.length === 0) throw etcdErrors.emptyKey();
}

export function checkPutRequest(request: PutRequest): void {
  if (request.key.length === 0) throw etcdErrors.emptyKey();
  if (request.ignoreValue && request.value.length !== 0) throw etcdErrors.valueProvided();
  if (request.ignoreLease && request.lease !== 0n) throw etcdErrors.leaseProvided();
}

export function checkDeleteRangeRequest(request: DeleteRangeRequest): void {
  if (request.key.length === 0) throw etcdErrors.emptyKey();
}

/** Validates a decoded txn; `hasEmptyOp` marks an op that carried no request at all. */
export function checkTxnRequest(
  request: TxnRequest & { hasEmptyOp?: boolean },
  txnOpsMax = txnOpsMaxDefault,
): void {
  if (
    request.compare.length > txnOpsMax ||
    request.success.length > txnOpsMax ||
    request.failure.length > txnOpsMax
  ) {
    throw etcdErrors.tooManyOps();
  }
  // etcd answers an op without a request with "key not found".
  if (request.hasEmptyOp) throw etcdErrors.keyNotFound();
  for (const op of [...request.success, ...request.failure]) checkRequestOp(op, txnOpsMax);
  writeSet(request.success);
  writeSet(request.failure);
}

function checkRequestOp(op: RequestOp, txnOpsMax: number): void {
  if (op.type === 'range') checkRangeRequest(op.request);
  else if (op.type === 'put') checkPutRequest(op.request);
  else if (op.type === 'deleteRange') checkDeleteRangeRequest(op.request);
  else checkTxnRequest(op.request, txnOpsMax);
}

/** A deleted range [start, end); end null means "through the last key". */
interface DeletedRange {
  start: Uint8Array;
  end: Uint8Array | null;
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

function deletedRangeOf(request: DeleteRangeRequest): DeletedRange {
  const { key, rangeEnd } = request;
  if (rangeEnd.length === 0) return { start: key, end: new Uint8Array([...key, 0]) };
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return { start: key, end: null };
  return { start: key, end: rangeEnd };
}

function deletes(ranges: DeletedRange[], key: Uint8Array): boolean {
  return ranges.some(
    (r) => compareBytes(key, r.start) >= 0 && (r.end === null || compareBytes(key, r.end) < 0),
  );
}

const keyId = (key: Uint8Array): string => Buffer.from(key).toString('latin1');

/**
 * Returns the keys a branch puts and the ranges it deletes, throwing `duplicateKey` when the branch
 * would write one key twice. A nested txn contributes both of its branches: only one of them runs,
 * so a key may appear in both, but neither may collide with its siblings in this branch.
 */
function writeSet(ops: RequestOp[]): { puts: Set<string>; dels: DeletedRange[] } {
  const dels: DeletedRange[] = [];
  for (const op of ops) if (op.type === 'deleteRange') dels.push(deletedRangeOf(op.request));
  const puts = new Set<string>();
  const claim = (id: string, key: Uint8Array): void => {
    if (puts.has(id) || deletes(dels, key)) throw etcdErrors.duplicateKey();
    puts.add(id);
  };
  for (const op of ops) {
    if (op.type !== 'txn') continue;
    const then = writeSet(op.request.success);
    const otherwise = writeSet(op.request.failure);
    for (const id of then.puts) claim(id, Buffer.from(id, 'latin1'));
    for (const id of otherwise.puts) {
      if (then.puts.has(id)) continue;
      claim(id, Buffer.from(id, 'latin1'));
    }
    dels.push(...then.dels, ...otherwise.dels);
  }
  for (const op of ops) if (op.type === 'put') claim(keyId(op.request.key), op.request.key);
  return { puts, dels };
}

/** True for errors the API defines; anything else is an internal failure. */
export function isEtcdError(error: unknown): error is EtcdError {
  return error instanceof EtcdError;
}
