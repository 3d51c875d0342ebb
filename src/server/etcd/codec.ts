/**
 * Protobuf encoding for the etcd API: loads shoal's .proto files (proto/) with protobufjs and
 * converts between decoded protobuf messages and the plain values of `types.ts`. Decoding is
 * defensive: every field is read through a typed accessor that accepts only the shape protobufjs
 * produces, so a malformed message becomes an InvalidArgument error instead of a crash. 64-bit
 * integers never pass through lossy doubles: ids become bigint, revisions become checked numbers.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { invalidArgument } from './errors.js';
import type {
  CompactionRequest,
  Compare,
  CompareResult,
  DeleteRangeRequest,
  DeleteRangeResponse,
  HashKvResponse,
  KeyValue,
  LeaseGrantResponse,
  LeaseKeepAliveResponse,
  LeaseLeasesResponse,
  LeaseTimeToLiveResponse,
  Member,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseHeader,
  ResponseOp,
  SortOrder,
  SortTarget,
  StatusResponse,
  TxnRequest,
  TxnResponse,
} from './types.js';

const protoDir = join(dirname(fileURLToPath(import.meta.url)), 'proto');

/** Loads rpc.proto (and the files it imports) from shoal's proto folder. */
export function loadEtcdRoot(): protobuf.Root {
  const root = new protobuf.Root();
  // Imports are written as bare file names; resolve them inside the proto folder.
  root.resolvePath = (_origin, target) => join(protoDir, target.replace(/^.*\//, ''));
  root.loadSync('rpc.proto');
  root.resolveAll();
  return root;
}

/** A decoded protobuf message, read only through the accessors below. */
export type PbMessage = Record<string, unknown>;

/** A 64-bit value as protobufjs writes and reads it (long.js-compatible low/high words). */
interface LongLike {
  low: number;
  high: number;
  unsigned?: boolean;
}

function isLongLike(value: unknown): value is LongLike {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as LongLike).low === 'number' &&
    typeof (value as LongLike).high === 'number'
  );
}

function longToBigint(value: unknown, unsigned: boolean, field: string): bigint {
  if (value === undefined || value === null) return 0n;
  let raw: bigint;
  if (typeof value === 'number' && Number.isInteger(value)) raw = BigInt(value);
  else if (typeof value === 'bigint') raw = value;
  else if (isLongLike(value)) raw = (BigInt(value.high >>> 0) << 32n) | BigInt(value.low >>> 0);
  else throw invalidArgument(`${field} is not an integer`);
  return unsigned ? BigInt.asUintN(64, raw) : BigInt.asIntN(64, raw);
}

/** Reads a signed 64-bit field as bigint (lease ids). */
export function int64Bigint(message: PbMessage, field: string): bigint {
  return longToBigint(message[field], false, field);
}

/** Reads an unsigned 64-bit field as bigint (member ids). */
export function uint64Bigint(message: PbMessage, field: string): bigint {
  return longToBigint(message[field], true, field);
}

const safeMax = BigInt(Number.MAX_SAFE_INTEGER);
const safeMin = BigInt(Number.MIN_SAFE_INTEGER);

/**
 * Reads a signed 64-bit revision, version, count or limit as a number. Values beyond 2^53 cannot
 * be real revisions; clamping them keeps their meaning for every comparison a store makes (a
 * revision that large is still "in the future", a limit that large is still "no practical limit").
 */
export function int64Number(message: PbMessage, field: string): number {
  const value = longToBigint(message[field], false, field);
  if (value > safeMax) return Number.MAX_SAFE_INTEGER;
  if (value < safeMin) return Number.MIN_SAFE_INTEGER;
  return Number(value);
}

export function bytesField(message: PbMessage, field: string): Uint8Array {
  const value = message[field];
  if (value === undefined || value === null) return new Uint8Array(0);
  if (value instanceof Uint8Array) return value;
  // protobufjs leaves an unset bytes field at its prototype default, an empty plain array.
  if (Array.isArray(value) && value.length === 0) return new Uint8Array(0);
  throw invalidArgument(`${field} is not bytes`);
}

export function boolField(message: PbMessage, field: string): boolean {
  const value = message[field];
  if (value === undefined || value === null) return false;
  if (typeof value === 'boolean') return value;
  throw invalidArgument(`${field} is not a bool`);
}

export function enumField(message: PbMessage, field: string): number {
  const value = message[field];
  if (value === undefined || value === null) return 0;
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  throw invalidArgument(`${field} is not an enum value`);
}

export function messageField(message: PbMessage, field: string): PbMessage | undefined {
  const value = message[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'object') return value as PbMessage;
  throw invalidArgument(`${field} is not a message`);
}

export function repeatedMessages(message: PbMessage, field: string): PbMessage[] {
  const value = message[field];
  if (value === undefined || value === null) return [];
  if (Array.isArray(value)) return value as PbMessage[];
  throw invalidArgument(`${field} is not a list`);
}

// ------------------------------------------------------------------------------------------------
// Decoding requests
// ------------------------------------------------------------------------------------------------

const sortOrders: readonly SortOrder[] = ['none', 'ascend', 'descend'];
const sortTargets: readonly SortTarget[] = ['key', 'version', 'create', 'mod', 'value'];
const compareResults: readonly CompareResult[] = ['equal', 'greater', 'less', 'notEqual'];

/** Thrown for enum values etcd's proto does not define; etcd answers with the same message. */
function sortOption<T>(options: readonly T[], index: number): T {
  const option = options[index];
  if (option === undefined) throw invalidArgument('invalid sort option');
  return option;
}

export function decodeRangeRequest(m: PbMessage): RangeRequest {
  return {
    key: bytesField(m, 'key'),
    rangeEnd: bytesField(m, 'rangeEnd'),
    limit: int64Number(m, 'limit'),
    revision: int64Number(m, 'revision'),
    sortOrder: sortOption(sortOrders, enumField(m, 'sortOrder')),
    sortTarget: sortOption(sortTargets, enumField(m, 'sortTarget')),
    serializable: boolField(m, 'serializable'),
    keysOnly: boolField(m, 'keysOnly'),
    countOnly: boolField(m, 'countOnly'),
    minModRevision: int64Number(m, 'minModRevision'),
    maxModRevision: int64Number(m, 'maxModRevision'),
    minCreateRevision: int64Number(m, 'minCreateRevision'),
    maxCreateRevision: int64Number(m, 'maxCreateRevision'),
  };
}

export function decodePutRequest(m: PbMessage): PutRequest {
  return {
    key: bytesField(m, 'key'),
    value: bytesField(m, 'value'),
    lease: int64Bigint(m, 'lease'),
    prevKv: boolField(m, 'prevKv'),
    ignoreValue: boolField(m, 'ignoreValue'),
    ignoreLease: boolField(m, 'ignoreLease'),
  };
}

export function decodeDeleteRangeRequest(m: PbMessage): DeleteRangeRequest {
  return {
    key: bytesField(m, 'key'),
    rangeEnd: bytesField(m, 'rangeEnd'),
    prevKv: boolField(m, 'prevKv'),
  };
}

export function decodeCompactionRequest(m: PbMessage): CompactionRequest {
  return { revision: int64Number(m, 'revision'), physical: boolField(m, 'physical') };
}

/**
 * The operand is read from the field that matches the target, whichever oneof member was sent:
 * an unset operand is proto3's zero value, and etcd compares against that zero value too.
 */
export function decodeCompare(m: PbMessage): Compare {
  const result = compareResults[enumField(m, 'result')];
  if (result === undefined) throw invalidArgument('invalid compare result');
  const common = { result, key: bytesField(m, 'key'), rangeEnd: bytesField(m, 'rangeEnd') };
  switch (enumField(m, 'target')) {
    case 0:
      return { ...common, target: 'version', version: int64Number(m, 'version') };
    case 1:
      return { ...common, target: 'create', createRevision: int64Number(m, 'createRevision') };
    case 2:
      return { ...common, target: 'mod', modRevision: int64Number(m, 'modRevision') };
    case 3:
      return { ...common, target: 'value', value: bytesField(m, 'value') };
    case 4:
      return { ...common, target: 'lease', lease: int64Bigint(m, 'lease') };
    default:
      throw invalidArgument('invalid compare target');
  }
}

/** Nesting deeper than this is refused: it bounds recursion on attacker-controlled input. */
export const txnDepthMax = 32;

/** An op with no request set: etcd rejects it with "key not found". */
export class EmptyRequestOpError extends Error {}

export function decodeRequestOp(m: PbMessage, depth: number): RequestOp | null {
  const range = messageField(m, 'requestRange');
  if (range) return { type: 'range', request: decodeRangeRequest(range) };
  const put = messageField(m, 'requestPut');
  if (put) return { type: 'put', request: decodePutRequest(put) };
  const del = messageField(m, 'requestDeleteRange');
  if (del) return { type: 'deleteRange', request: decodeDeleteRangeRequest(del) };
  const txn = messageField(m, 'requestTxn');
  if (txn) return { type: 'txn', request: decodeTxnRequest(txn, depth + 1) };
  return null;
}

/** Decodes a Txn; ops without a request decode as null and are rejected by validation. */
export function decodeTxnRequest(m: PbMessage, depth = 0): TxnRequest & { hasEmptyOp: boolean } {
  if (depth > txnDepthMax) throw invalidArgument(`txn nested deeper than ${txnDepthMax} levels`);
  let hasEmptyOp = false;
  const ops = (field: string): RequestOp[] => {
    const out: RequestOp[] = [];
    for (const op of repeatedMessages(m, field)) {
      const decoded = decodeRequestOp(op, depth);
      if (decoded === null) hasEmptyOp = true;
      else {
        if (decoded.type === 'txn' && (decoded.request as { hasEmptyOp?: boolean }).hasEmptyOp)
          hasEmptyOp = true;
        out.push(decoded);
      }
    }
    return out;
  };
  const success = ops('success');
  const failure = ops('failure');
  return {
    compare: repeatedMessages(m, 'compare').map(decodeCompare),
    success,
    failure,
    hasEmptyOp,
  };
}

// ------------------------------------------------------------------------------------------------
// Encoding responses
// ------------------------------------------------------------------------------------------------

/** Writes a bigint as protobufjs's 64-bit low/high words (two's complement for negatives). */
export function toLong(value: bigint, unsigned: boolean): LongLike {
  const bits = BigInt.asUintN(64, value);
  return {
    low: Number(bits & 0xffffffffn) | 0,
    high: Number(bits >> 32n) | 0,
    unsigned,
  };
}

/** Asserts a number crossing to the wire as int64 is an integer (never a fraction or NaN). */
export function checkedInt(value: number, field: string): number {
  if (!Number.isSafeInteger(value)) {
    throw new Error(`backend returned ${field}=${value}, which is not a safe integer`);
  }
  return value;
}

export function encodeHeader(header: ResponseHeader): PbMessage {
  return {
    clusterId: toLong(header.clusterId, true),
    memberId: toLong(header.memberId, true),
    revision: checkedInt(header.revision, 'header.revision'),
    raftTerm: toLong(header.raftTerm, true),
  };
}

export function encodeKeyValue(kv: KeyValue): PbMessage {
  return {
    key: kv.key,
    createRevision: checkedInt(kv.createRevision, 'createRevision'),
    modRevision: checkedInt(kv.modRevision, 'modRevision'),
    version: checkedInt(kv.version, 'version'),
    value: kv.value,
    lease: toLong(kv.lease, false),
  };
}

export function encodeRangeResponse(response: RangeResponse): PbMessage {
  return {
    header: encodeHeader(response.header),
    kvs: response.kvs.map(encodeKeyValue),
    more: response.more,
    count: checkedInt(response.count, 'count'),
  };
}

export function encodePutResponse(response: PutResponse): PbMessage {
  const out: PbMessage = { header: encodeHeader(response.header) };
  if (response.prevKv) out.prevKv = encodeKeyValue(response.prevKv);
  return out;
}

export function encodeDeleteRangeResponse(response: DeleteRangeResponse): PbMessage {
  return {
    header: encodeHeader(response.header),
    deleted: checkedInt(response.deleted, 'deleted'),
    prevKvs: response.prevKvs.map(encodeKeyValue),
  };
}

/**
 * etcd fills only `revision` in the headers of the range, put and delete responses inside a txn,
 * and sets it to the outermost txn's revision; a nested txn's own header is present but empty.
 * Clients see that on the wire, so shoal encodes it the same way whatever the backend attached.
 */
function encodeResponseOp(op: ResponseOp, revision: number): PbMessage {
  const header = { revision: checkedInt(revision, 'header.revision') };
  switch (op.type) {
    case 'range':
      return { responseRange: { ...encodeRangeResponse(op.response), header } };
    case 'put':
      return { responsePut: { ...encodePutResponse(op.response), header } };
    case 'deleteRange':
      return { responseDeleteRange: { ...encodeDeleteRangeResponse(op.response), header } };
    case 'txn':
      return { responseTxn: { ...encodeTxnResponse(op.response, revision), header: {} } };
  }
}

export function encodeTxnResponse(response: TxnResponse, revision?: number): PbMessage {
  const txnRevision = revision ?? response.header.revision;
  return {
    header: encodeHeader(response.header),
    succeeded: response.succeeded,
    responses: response.responses.map((op) => encodeResponseOp(op, txnRevision)),
  };
}

export function encodeMember(member: Member): PbMessage {
  return {
    ID: toLong(member.id, true),
    name: member.name,
    peerURLs: member.peerUrls,
    clientURLs: member.clientUrls,
    isLearner: member.isLearner,
  };
}

export function encodeStatusResponse(response: StatusResponse): PbMessage {
  return {
    header: encodeHeader(response.header),
    version: response.version,
    dbSize: checkedInt(response.dbSize, 'dbSize'),
    leader: toLong(response.leader, true),
    raftIndex: toLong(response.raftIndex, true),
    raftTerm: toLong(response.raftTerm, true),
    raftAppliedIndex: toLong(response.raftAppliedIndex, true),
    errors: response.errors,
    dbSizeInUse: checkedInt(response.dbSizeInUse, 'dbSizeInUse'),
    isLearner: response.isLearner,
  };
}

export function encodeHashKvResponse(response: HashKvResponse): PbMessage {
  return {
    header: encodeHeader(response.header),
    hash: response.hash >>> 0,
    compactRevision: checkedInt(response.compactRevision, 'compactRevision'),
  };
}

export function encodeLeaseGrantResponse(response: LeaseGrantResponse): PbMessage {
  return {
    header: encodeHeader(response.header),
    ID: toLong(response.id, false),
    TTL: checkedInt(response.ttlSeconds, 'TTL'),
    error: response.error,
  };
}

export function encodeLeaseKeepAliveResponse(response: LeaseKeepAliveResponse): PbMessage {
  return {
    header: encodeHeader(response.header),
    ID: toLong(response.id, false),
    TTL: checkedInt(response.ttlSeconds, 'TTL'),
  };
}

export function encodeLeaseTimeToLiveResponse(response: LeaseTimeToLiveResponse): PbMessage {
  return {
    header: encodeHeader(response.header),
    ID: toLong(response.id, false),
    TTL: checkedInt(response.ttlSeconds, 'TTL'),
    grantedTTL: checkedInt(response.grantedTtlSeconds, 'grantedTTL'),
    keys: response.keys,
  };
}

export function encodeLeaseLeasesResponse(response: LeaseLeasesResponse): PbMessage {
  return {
    header: encodeHeader(response.header),
    leases: response.leases.map((id) => ({ ID: toLong(id, false) })),
  };
}
