/**
 * The byte encoding of key-value commands inside raft entries, and its strict decoder.
 *
 * A command is a KvRequest packed with msgpack: keys and values as binary, revisions as integers,
 * lease ids as 64-bit integers (decoded back to bigint). Raft entries come from the WAL and from
 * peers, so `decodeKvRequest` checks the whole shape (field types, safe integers, enum ranges,
 * nesting depth, operation counts) and throws a KvCommandError instead of handing the store
 * something it would misread. Unknown fields are rejected, so a newer member's command that an
 * older member cannot apply fails loudly rather than being half-applied.
 */
import { Packr } from 'msgpackr';
import type { KvRequest, RequestOp } from './types.js';

/** Bounds a decoded command can have (etcd's txn limits are checked later, with etcd's errors). */
export const COMMAND_TXN_DEPTH_MAX = 16;
export const COMMAND_OPS_MAX = 10_000;

const packr = new Packr({ useRecords: false, int64AsType: 'bigint' } as ConstructorParameters<
  typeof Packr
>[0]);

export class KvCommandError extends Error {
  override name = 'KvCommandError';
}

export function encodeKvRequest(request: KvRequest): Uint8Array {
  return packr.pack(request);
}

export function decodeKvRequest(bytes: Uint8Array): KvRequest {
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (error) {
    throw new KvCommandError(`undecodable kv command: ${(error as Error).message}`);
  }
  return parseKvRequest(value);
}

type Checker = (value: unknown, path: string) => void;

function fail(path: string, expected: string): never {
  throw new KvCommandError(`kv command field ${path} must be ${expected}`);
}

const bytes: Checker = (value, path) => {
  if (!(value instanceof Uint8Array)) fail(path, 'bytes');
};
const integer: Checker = (value, path) => {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) fail(path, 'a safe integer');
};
const int64: Checker = (value, path) => {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return;
  if (typeof value !== 'bigint' || BigInt.asIntN(64, value) !== value) fail(path, 'an int64');
};
const boolean: Checker = (value, path) => {
  if (typeof value !== 'boolean') fail(path, 'a boolean');
};
const enumOf =
  (max: number): Checker =>
  (value, path) => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
      fail(path, `an enum value 0..${max}`);
    }
  };

/** Checks an object's fields; `required` fields must be present, the rest may be absent. */
function fields(
  value: unknown,
  path: string,
  checkers: Record<string, Checker>,
  required: readonly string[],
): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(path, 'a map');
  const record = value as Record<string, unknown>;
  for (const [name, field] of Object.entries(record)) {
    const checker = checkers[name];
    if (checker === undefined)
      throw new KvCommandError(`kv command has unknown field ${path}.${name}`);
    // Absent and undefined must mean the same to the store, which tests fields with `in`.
    if (field === undefined) delete record[name];
    else checker(field, `${path}.${name}`);
  }
  for (const name of required) {
    if (record[name] === undefined) throw new KvCommandError(`kv command lacks ${path}.${name}`);
  }
  return record;
}

const rangeFields: Record<string, Checker> = {
  key: bytes,
  rangeEnd: bytes,
  limit: integer,
  revision: integer,
  sortOrder: enumOf(2),
  sortTarget: enumOf(4),
  serializable: boolean,
  keysOnly: boolean,
  countOnly: boolean,
  minModRevision: integer,
  maxModRevision: integer,
  minCreateRevision: integer,
  maxCreateRevision: integer,
};
const putFields: Record<string, Checker> = {
  key: bytes,
  value: bytes,
  lease: int64,
  prevKv: boolean,
  ignoreValue: boolean,
  ignoreLease: boolean,
};
const deleteFields: Record<string, Checker> = { key: bytes, rangeEnd: bytes, prevKv: boolean };
const compareFields: Record<string, Checker> = {
  result: enumOf(3),
  target: enumOf(4),
  key: bytes,
  rangeEnd: bytes,
  version: integer,
  createRevision: integer,
  modRevision: integer,
  value: bytes,
  lease: int64,
};

const range: Checker = (value, path) => fields(value, path, rangeFields, ['key']);
const put: Checker = (value, path) => fields(value, path, putFields, ['key']);
const deleteRange: Checker = (value, path) => fields(value, path, deleteFields, ['key']);

/** Checkpoints one command may carry (the leader batches at most this many per proposal). */
export const COMMAND_LEASE_CHECKPOINTS_MAX = 1000;

const checkpointList: Checker = (value, path) => {
  if (!Array.isArray(value)) fail(path, 'a list');
  if (value.length > COMMAND_LEASE_CHECKPOINTS_MAX) {
    throw new KvCommandError(`kv command has over ${COMMAND_LEASE_CHECKPOINTS_MAX} checkpoints`);
  }
  for (const [i, element] of value.entries()) {
    fields(element, `${path}[${i}]`, { ID: int64, remainingTtl: integer }, ['ID', 'remainingTtl']);
  }
};

function txnChecker(depth: number, budget: { ops: number }): Checker {
  if (depth > COMMAND_TXN_DEPTH_MAX) {
    throw new KvCommandError(`kv command nests transactions deeper than ${COMMAND_TXN_DEPTH_MAX}`);
  }
  const list =
    (item: Checker): Checker =>
    (value, path) => {
      if (!Array.isArray(value)) fail(path, 'a list');
      budget.ops -= value.length;
      if (budget.ops < 0) throw new KvCommandError(`kv command has over ${COMMAND_OPS_MAX} ops`);
      for (const [i, element] of value.entries()) item(element, `${path}[${i}]`);
    };
  const op: Checker = (value, path) => {
    const record = fields(
      value,
      path,
      {
        requestRange: range,
        requestPut: put,
        requestDeleteRange: deleteRange,
        requestTxn: (nested, nestedPath) => txnChecker(depth + 1, budget)(nested, nestedPath),
      },
      [],
    );
    if (Object.values(record).filter((field) => field !== undefined).length !== 1) {
      fail(path, 'an operation with exactly one request');
    }
  };
  const compare: Checker = (value, path) =>
    fields(value, path, compareFields, ['result', 'target', 'key']);
  return (value, path) =>
    fields(value, path, { compare: list(compare), success: list(op), failure: list(op) }, []);
}

/** Validates a decoded command's shape and returns it typed. */
export function parseKvRequest(value: unknown): KvRequest {
  const budget = { ops: COMMAND_OPS_MAX };
  const record = fields(
    value,
    'request',
    {
      range,
      put,
      deleteRange,
      txn: txnChecker(1, budget),
      compaction: (v, p) => fields(v, p, { revision: integer, physical: boolean }, ['revision']),
      leaseGrant: (v, p) => fields(v, p, { TTL: integer, ID: int64 }, ['TTL', 'ID']),
      leaseRevoke: (v, p) => fields(v, p, { ID: int64 }, ['ID']),
      leaseCheckpoint: (v, p) => fields(v, p, { checkpoints: checkpointList }, ['checkpoints']),
    },
    [],
  );
  if (Object.values(record).filter((field) => field !== undefined).length !== 1) {
    fail('request', 'a map with exactly one request');
  }
  normalizeLeases(record);
  return record as KvRequest;
}

/** Small lease ids may arrive as numbers (other encoders); the store's types want bigint. */
function normalizeLeases(record: Record<string, unknown>): void {
  const toBigint = (holder: Record<string, unknown>, name: string) => {
    if (typeof holder[name] === 'number') holder[name] = BigInt(holder[name] as number);
  };
  const visitOps = (ops: unknown) => {
    for (const op of (ops as RequestOp[] | undefined) ?? []) {
      if ('requestPut' in op)
        toBigint(op.requestPut as unknown as Record<string, unknown>, 'lease');
      if ('requestTxn' in op) visitTxn(op.requestTxn as unknown as Record<string, unknown>);
    }
  };
  const visitTxn = (txn: Record<string, unknown>) => {
    for (const compare of (txn.compare as Record<string, unknown>[] | undefined) ?? []) {
      toBigint(compare, 'lease');
    }
    visitOps(txn.success);
    visitOps(txn.failure);
  };
  if (record.put) toBigint(record.put as Record<string, unknown>, 'lease');
  if (record.txn) visitTxn(record.txn as Record<string, unknown>);
  if (record.leaseGrant) toBigint(record.leaseGrant as Record<string, unknown>, 'ID');
  if (record.leaseRevoke) toBigint(record.leaseRevoke as Record<string, unknown>, 'ID');
  const checkpoint = record.leaseCheckpoint as
    | { checkpoints: Record<string, unknown>[] }
    | undefined;
  for (const c of checkpoint?.checkpoints ?? []) toBigint(c, 'ID');
}
