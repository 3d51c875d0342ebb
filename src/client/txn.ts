/**
 * A small typed builder for etcd transactions:
 *
 *   await client.txn()
 *     .if(compare('config/version').value('=', '3'), compare('lock').version('=', 0))
 *     .then(op.put('config/version', '4'), op.put('lock', 'me'))
 *     .else(op.get('config/version'))
 *     .commit();
 *
 * `compare(key)` picks what to compare (value, version, createRevision, modRevision, lease) and
 * the operator ('=', '!=', '>', '<'); `op` builds the operations of each branch. The builder only
 * assembles a `TxnRequest`; `commit()` sends it through the client that made the builder.
 */
import type {
  Compare,
  CompareResult,
  DeleteRangeRequest,
  PutRequest,
  RangeRequest,
  RequestOp,
  SortOrder,
  SortTarget,
  TxnRequest,
  TxnResponse,
} from './protocol.js';

/** Keys and values: bytes, or strings (sent as UTF-8). */
export type Bytes = Uint8Array | string;

export function toBytes(value: Bytes): Uint8Array {
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
}

/** The end of the range holding every key that starts with `prefix` (etcd's prefix end). */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = Uint8Array.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  // Every byte is 0xff (or the prefix is empty): the range runs to the end of the key space.
  return new Uint8Array([0]);
}

export type CompareOperator = '=' | '!=' | '>' | '<';

const RESULT_OF: Readonly<Record<CompareOperator, CompareResult>> = {
  '=': 'equal',
  '!=': 'notEqual',
  '>': 'greater',
  '<': 'less',
};

function resultOf(operator: CompareOperator): CompareResult {
  const result = RESULT_OF[operator];
  if (result === undefined) throw new TypeError(`unknown compare operator ${String(operator)}`);
  return result;
}

export interface KeyOptions {
  /** Every key that starts with `key`. */
  prefix?: boolean;
  /** The end (exclusive) of the key range; overrides `prefix`. */
  rangeEnd?: Bytes;
}

function rangeEndOf(key: Uint8Array, options: KeyOptions | undefined): Uint8Array | undefined {
  if (options?.rangeEnd !== undefined) return toBytes(options.rangeEnd);
  return options?.prefix ? prefixEnd(key) : undefined;
}

/** Starts a compare on `key` (or on every key of a range: each must satisfy it). */
export function compare(key: Bytes, options?: KeyOptions): CompareBuilder {
  return new CompareBuilder(toBytes(key), options);
}

export class CompareBuilder {
  private readonly key: Uint8Array;
  private readonly rangeEnd: Uint8Array | undefined;

  constructor(key: Uint8Array, options: KeyOptions | undefined) {
    this.key = key;
    this.rangeEnd = rangeEndOf(key, options);
  }

  private base(operator: CompareOperator): {
    result: CompareResult;
    key: Uint8Array;
    rangeEnd?: Uint8Array;
  } {
    const base: { result: CompareResult; key: Uint8Array; rangeEnd?: Uint8Array } = {
      result: resultOf(operator),
      key: this.key,
    };
    if (this.rangeEnd !== undefined) base.rangeEnd = this.rangeEnd;
    return base;
  }

  value(operator: CompareOperator, value: Bytes): Compare {
    return { ...this.base(operator), target: 'value', value: toBytes(value) };
  }
  /** Version 0 means the key does not exist. */
  version(operator: CompareOperator, version: number): Compare {
    return { ...this.base(operator), target: 'version', version };
  }
  createRevision(operator: CompareOperator, revision: number): Compare {
    return { ...this.base(operator), target: 'create', createRevision: revision };
  }
  modRevision(operator: CompareOperator, revision: number): Compare {
    return { ...this.base(operator), target: 'mod', modRevision: revision };
  }
  lease(operator: CompareOperator, lease: bigint): Compare {
    return { ...this.base(operator), target: 'lease', lease };
  }
}

export interface GetOptions extends KeyOptions {
  limit?: number;
  revision?: number;
  serializable?: boolean;
  keysOnly?: boolean;
  countOnly?: boolean;
  sortOrder?: SortOrder;
  sortTarget?: SortTarget;
}

export interface PutOptions {
  lease?: bigint;
  prevKv?: boolean;
  ignoreValue?: boolean;
  ignoreLease?: boolean;
}

export interface DeleteOptions extends KeyOptions {
  prevKv?: boolean;
}

export function rangeRequest(key: Bytes, options?: GetOptions): RangeRequest {
  const bytes = toBytes(key);
  const request: RangeRequest = { key: bytes };
  const rangeEnd = rangeEndOf(bytes, options);
  if (rangeEnd !== undefined) request.rangeEnd = rangeEnd;
  if (options === undefined) return request;
  if (options.limit !== undefined) request.limit = options.limit;
  if (options.revision !== undefined) request.revision = options.revision;
  if (options.serializable) request.serializable = true;
  if (options.keysOnly) request.keysOnly = true;
  if (options.countOnly) request.countOnly = true;
  if (options.sortOrder !== undefined) request.sortOrder = options.sortOrder;
  if (options.sortTarget !== undefined) request.sortTarget = options.sortTarget;
  return request;
}

export function putRequest(key: Bytes, value: Bytes, options?: PutOptions): PutRequest {
  const request: PutRequest = { key: toBytes(key), value: toBytes(value) };
  if (options === undefined) return request;
  if (options.lease !== undefined) request.lease = options.lease;
  if (options.prevKv) request.prevKv = true;
  if (options.ignoreValue) request.ignoreValue = true;
  if (options.ignoreLease) request.ignoreLease = true;
  return request;
}

export function deleteRequest(key: Bytes, options?: DeleteOptions): DeleteRangeRequest {
  const bytes = toBytes(key);
  const request: DeleteRangeRequest = { key: bytes };
  const rangeEnd = rangeEndOf(bytes, options);
  if (rangeEnd !== undefined) request.rangeEnd = rangeEnd;
  if (options?.prevKv) request.prevKv = true;
  return request;
}

/** Builders for the operations of a transaction branch. */
export const op = {
  get: (key: Bytes, options?: GetOptions): RequestOp => ({
    type: 'range',
    request: rangeRequest(key, options),
  }),
  put: (key: Bytes, value: Bytes, options?: PutOptions): RequestOp => ({
    type: 'put',
    request: putRequest(key, value, options),
  }),
  delete: (key: Bytes, options?: DeleteOptions): RequestOp => ({
    type: 'deleteRange',
    request: deleteRequest(key, options),
  }),
  /** A nested transaction (etcd 3.3+). */
  txn: (request: TxnRequest): RequestOp => ({ type: 'txn', request }),
};

function checkOps(ops: readonly unknown[], what: string): void {
  for (const item of ops) {
    // A function here almost always means the builder was awaited like a promise.
    if (typeof item !== 'object' || item === null)
      throw new TypeError(
        `${what}: expected operations built with op.*; call commit() to run the txn`,
      );
  }
}

export class TxnBuilder {
  private readonly request: Required<TxnRequest> = { compare: [], success: [], failure: [] };

  constructor(private readonly send: (request: TxnRequest) => Promise<TxnResponse>) {}

  /** Conditions that must all hold for the `then` branch to run. */
  if(...compares: Compare[]): this {
    checkOps(compares, 'txn.if');
    this.request.compare.push(...compares);
    return this;
  }

  /** Operations run when every compare holds. (Not a promise: finish with `commit()`.) */
  // biome-ignore lint/suspicious/noThenProperty: etcd's vocabulary; checkOps refuses promise use.
  then(...ops: RequestOp[]): this {
    checkOps(ops, 'txn.then');
    this.request.success.push(...ops);
    return this;
  }

  /** Operations run when any compare fails. */
  else(...ops: RequestOp[]): this {
    checkOps(ops, 'txn.else');
    this.request.failure.push(...ops);
    return this;
  }

  /** The request built so far, e.g. for `op.txn` nesting. */
  build(): TxnRequest {
    return this.request;
  }

  commit(): Promise<TxnResponse> {
    return this.send(this.request);
  }
}
