/**
 * Turns decoded native-protocol requests (untrusted msgpack values) into the etcd API's request
 * types, checking every field's type and filling etcd's defaults for absent ones. A field of the
 * wrong type is an INVALID_ARGUMENT RpcError naming the field path (`txn.success[2].request.key`),
 * so a client author sees exactly what to fix.
 */
import {
  COMPARE_RESULTS,
  PUT_BATCH_BYTES_MAX,
  PUT_BATCH_PUTS_MAX,
  SORT_ORDERS,
  SORT_TARGETS,
} from '../../client/protocol.js';
import { RpcError, Status, type StatusCode } from '../../rpc/index.js';
import type { EtcdError } from '../etcd/errors.js';
import type * as api from '../etcd/types.js';

/** Nested txns deeper than this are refused, so a hostile message cannot exhaust the stack. */
export const TXN_DEPTH_MAX = 8;

const EMPTY = new Uint8Array(0);

function invalid(path: string, expected: string): RpcError {
  return new RpcError('INVALID_ARGUMENT', `shoal: ${path} must be ${expected}`);
}

/**
 * The error for field `field` of the message at `path`. Field checks take the two apart and join
 * them only here: a request is checked field by field on every call, and building each field's
 * path up front cost a string per field per request.
 */
function invalidField(path: string, field: string, expected: string): RpcError {
  return invalid(`${path}.${field}`, expected);
}

function record(value: unknown, path: string): Record<string, unknown> {
  if (
    typeof value !== 'object' ||
    value === null ||
    Array.isArray(value) ||
    value instanceof Uint8Array
  )
    throw invalid(path, 'a map');
  return value as Record<string, unknown>;
}

function bytes(value: unknown, path: string, field: string, required: boolean): Uint8Array {
  if (value === undefined && !required) return EMPTY;
  if (!(value instanceof Uint8Array)) throw invalidField(path, field, 'bytes');
  return value;
}

function integer(value: unknown, path: string, field: string): number {
  if (value === undefined) return 0;
  if (typeof value === 'bigint' && value >= 0n && value <= BigInt(Number.MAX_SAFE_INTEGER))
    return Number(value);
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    throw invalidField(path, field, 'a non-negative integer');
  return value;
}

function flag(value: unknown, path: string, field: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw invalidField(path, field, 'a boolean');
  return value;
}

function id(value: unknown, path: string, field: string): bigint {
  if (value === undefined) return 0n;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  if (typeof value !== 'bigint' || value < 0n || value >= 1n << 64n)
    throw invalidField(path, field, 'a 64-bit unsigned integer (bigint)');
  return value;
}

function oneOf<T extends string>(
  value: unknown,
  allowed: readonly T[],
  path: string,
  field: string,
): T {
  if (!allowed.includes(value as T))
    throw invalidField(path, field, `one of ${allowed.join(', ')}`);
  return value as T;
}

export function toRange(request: unknown, path: string): api.RangeRequest {
  const r = record(request, path);
  return {
    key: bytes(r.key, path, 'key', true),
    rangeEnd: bytes(r.rangeEnd, path, 'rangeEnd', false),
    limit: integer(r.limit, path, 'limit'),
    revision: integer(r.revision, path, 'revision'),
    sortOrder:
      r.sortOrder === undefined ? 'none' : oneOf(r.sortOrder, SORT_ORDERS, path, 'sortOrder'),
    sortTarget:
      r.sortTarget === undefined ? 'key' : oneOf(r.sortTarget, SORT_TARGETS, path, 'sortTarget'),
    serializable: flag(r.serializable, path, 'serializable'),
    keysOnly: flag(r.keysOnly, path, 'keysOnly'),
    countOnly: flag(r.countOnly, path, 'countOnly'),
    minModRevision: integer(r.minModRevision, path, 'minModRevision'),
    maxModRevision: integer(r.maxModRevision, path, 'maxModRevision'),
    minCreateRevision: integer(r.minCreateRevision, path, 'minCreateRevision'),
    maxCreateRevision: integer(r.maxCreateRevision, path, 'maxCreateRevision'),
  };
}

export function toPut(request: unknown, path: string): api.PutRequest {
  const r = record(request, path);
  return {
    key: bytes(r.key, path, 'key', true),
    value: bytes(r.value, path, 'value', false),
    lease: id(r.lease, path, 'lease'),
    prevKv: flag(r.prevKv, path, 'prevKv'),
    ignoreValue: flag(r.ignoreValue, path, 'ignoreValue'),
    ignoreLease: flag(r.ignoreLease, path, 'ignoreLease'),
  };
}

/**
 * The puts of a putBatch call, still unchecked one by one: a put with a bad field fails alone
 * (the caller converts each with `toPut`), while a batch that is not a list of 1 to
 * PUT_BATCH_PUTS_MAX puts, or carries more than PUT_BATCH_BYTES_MAX key and value bytes, fails
 * as a whole.
 */
export function toPutBatch(request: unknown): unknown[] {
  const r = record(request, 'putBatch');
  if (!Array.isArray(r.puts) || r.puts.length === 0 || r.puts.length > PUT_BATCH_PUTS_MAX)
    throw invalid('putBatch.puts', `a list of 1 to ${PUT_BATCH_PUTS_MAX} puts`);
  let bytes = 0;
  for (const put of r.puts) {
    const { key, value } = (put ?? {}) as { key?: unknown; value?: unknown };
    if (key instanceof Uint8Array) bytes += key.length;
    if (value instanceof Uint8Array) bytes += value.length;
  }
  if (bytes > PUT_BATCH_BYTES_MAX)
    throw new RpcError(
      'INVALID_ARGUMENT',
      `shoal: putBatch.puts carry ${bytes} key and value bytes, more than ${PUT_BATCH_BYTES_MAX}`,
    );
  return r.puts;
}

export function toDeleteRange(request: unknown, path: string): api.DeleteRangeRequest {
  const r = record(request, path);
  return {
    key: bytes(r.key, path, 'key', true),
    rangeEnd: bytes(r.rangeEnd, path, 'rangeEnd', false),
    prevKv: flag(r.prevKv, path, 'prevKv'),
  };
}

function list(value: unknown, path: string): unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalid(path, 'an array');
  return value;
}

function toCompare(value: unknown, path: string): api.Compare {
  const c = record(value, path);
  const base = {
    result: oneOf(c.result, COMPARE_RESULTS, path, 'result'),
    key: bytes(c.key, path, 'key', true),
    rangeEnd: bytes(c.rangeEnd, path, 'rangeEnd', false),
  };
  switch (c.target) {
    case 'version':
      return { ...base, target: 'version', version: integer(c.version, path, 'version') };
    case 'create':
      return {
        ...base,
        target: 'create',
        createRevision: integer(c.createRevision, path, 'createRevision'),
      };
    case 'mod':
      return { ...base, target: 'mod', modRevision: integer(c.modRevision, path, 'modRevision') };
    case 'value':
      return { ...base, target: 'value', value: bytes(c.value, path, 'value', false) };
    case 'lease':
      return { ...base, target: 'lease', lease: id(c.lease, path, 'lease') };
    default:
      throw invalid(`${path}.target`, 'one of version, create, mod, value, lease');
  }
}

function toOp(value: unknown, path: string, depth: number): api.RequestOp {
  const op = record(value, path);
  const inner = `${path}.request`;
  switch (op.type) {
    case 'range':
      return { type: 'range', request: toRange(op.request, inner) };
    case 'put':
      return { type: 'put', request: toPut(op.request, inner) };
    case 'deleteRange':
      return { type: 'deleteRange', request: toDeleteRange(op.request, inner) };
    case 'txn':
      return { type: 'txn', request: toTxn(op.request, inner, depth + 1) };
    default:
      throw invalid(`${path}.type`, 'one of range, put, deleteRange, txn');
  }
}

export function toTxn(request: unknown, path: string, depth: number): api.TxnRequest {
  if (depth > TXN_DEPTH_MAX)
    throw new RpcError('INVALID_ARGUMENT', `shoal: txns nest at most ${TXN_DEPTH_MAX} deep`);
  const r = record(request, path);
  return {
    compare: list(r.compare, `${path}.compare`).map((c, i) =>
      toCompare(c, `${path}.compare[${i}]`),
    ),
    success: list(r.success, `${path}.success`).map((o, i) =>
      toOp(o, `${path}.success[${i}]`, depth),
    ),
    failure: list(r.failure, `${path}.failure`).map((o, i) =>
      toOp(o, `${path}.failure[${i}]`, depth),
    ),
  };
}

export interface NativeWatchRequest {
  key: Uint8Array;
  rangeEnd: Uint8Array;
  startRevision: number;
  prevKv: boolean;
}

export function toWatch(request: unknown): NativeWatchRequest {
  const r = record(request, 'watch');
  const key = bytes(r.key, 'watch', 'key', true);
  if (key.length === 0) throw new RpcError('INVALID_ARGUMENT', 'etcdserver: key is not provided');
  return {
    key,
    rangeEnd: bytes(r.rangeEnd, 'watch', 'rangeEnd', false),
    startRevision: integer(r.startRevision, 'watch', 'startRevision'),
    prevKv: flag(r.prevKv, 'watch', 'prevKv'),
  };
}

const statusNameByNumber = new Map<number, StatusCode>(
  Object.entries(Status).map(([name, value]) => [value, name as StatusCode]),
);

/** An etcd API error as the RpcError the native caller sees: the same status and message. */
export function rpcErrorOf(error: EtcdError): RpcError {
  return new RpcError(statusNameByNumber.get(error.code) ?? 'UNKNOWN', error.message);
}

/** The lease id of a lease request (`path` names the method in errors). */
export function toLeaseId(request: unknown, path: string): bigint {
  const r = record(request, path);
  if (r.id === undefined) throw invalid(`${path}.id`, 'a lease id (bigint)');
  return id(r.id, path, 'id');
}

export function toLeaseGrant(request: unknown): { ttlSeconds: number; id: bigint } {
  const r = record(request, 'leaseGrant');
  return {
    ttlSeconds: integer(r.ttlSeconds, 'leaseGrant', 'ttlSeconds'),
    id: id(r.id, 'leaseGrant', 'id'),
  };
}

export function toLeaseTimeToLive(request: unknown): { id: bigint; keys: boolean } {
  return {
    id: toLeaseId(request, 'leaseTimeToLive'),
    keys: flag(record(request, 'leaseTimeToLive').keys, 'leaseTimeToLive', 'keys'),
  };
}
