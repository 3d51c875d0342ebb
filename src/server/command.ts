/**
 * The bytes a member puts into raft entries. A normal entry carries one `Command` (msgpack): the id
 * of the request that proposed it, so the proposing member can hand the apply result back to its
 * caller, and exactly one operation — a key-value request for the MVCC store or a change to the
 * replicated member registry. A conf change entry's `context` carries a `ConfChangeContext` naming
 * the member being added, promoted or removed. An empty entry is the no-op a new leader appends.
 *
 * A plain put, by far the most common command, has a fixed binary layout instead (`PUT_TAG`, see
 * `encodePut`): msgpack's maps cost every member about 5 % of its busy time decoding them at 256
 * clients. Its first byte is one msgpack never uses, so entries written in either form decode.
 *
 * A `kvBatch` command carries several key-value requests in one entry: the puts of one native
 * putBatch call. They are applied in order as separate requests, each with its own revision and
 * result, as if they had been consecutive entries; the entry is applied whole or not at all. One
 * entry instead of one per put saves each member a log entry, a WAL record and an apply result per
 * put, and the leader a proposal and its waiter. A batch of plain puts has a binary layout too
 * (`encodePutBatch`).
 *
 * Every member applies the same entries, so results are identical everywhere; only the proposer,
 * recognised by `RequestId.member` and `RequestId.incarnation` (random per process start, so
 * entries proposed before a restart never match a new waiter), resolves a waiting request.
 */
import { Packr, Unpackr } from 'msgpackr';
import type { KvRequest, PutRequest } from '../kv/types.js';

const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false, int64AsType: 'bigint' });

export interface RequestId {
  member: number;
  incarnation: number;
  sequence: number;
}

/** Publishes a member's name and client URLs (etcd publishes its attributes the same way). */
export interface PublishCommand {
  publish: { id: number; name: string; clientUrls: string[] };
}

/** MemberUpdate: new peer URLs for a member (not a raft membership change). */
export interface UpdatePeerUrlsCommand {
  updatePeerUrls: { id: number; peerUrls: string[] };
}

/**
 * etcd's AlarmRequest ACTIVATE / DEACTIVATE: raises or clears an alarm (1 = NOSPACE) held for a
 * member. Alarms are replicated state, so every member refuses the same writes and lists the same
 * alarms.
 */
export interface AlarmCommand {
  alarm: { action: 'activate' | 'deactivate'; memberId: number; alarm: number };
}

export type RegistryCommand = PublishCommand | UpdatePeerUrlsCommand | AlarmCommand;

export interface Command {
  id: RequestId;
  kv?: KvRequest;
  /** Requests applied in order, each as its own request (see the module comment). */
  kvBatch?: KvRequest[];
  registry?: RegistryCommand;
}

/** What a conf change entry's context holds. */
export interface ConfChangeContext {
  id: RequestId;
  member: { id: number; name: string; peerUrls: string[]; isLearner: boolean };
  /** 'promote' for a learner becoming a voter (raft AddNode on an existing learner). */
  action: 'add' | 'remove' | 'promote';
}

/** First byte of a put in the binary layout: 0xc1 is the one byte msgpack never uses. */
const PUT_TAG = 0xc1;
const PUT_FLAG_PREV_KV = 1;
const PUT_FLAG_IGNORE_VALUE = 2;
const PUT_FLAG_IGNORE_LEASE = 4;
const PUT_FLAG_HAS_VALUE = 8;
const PUT_FLAG_HAS_LEASE = 16;
const PUT_FLAGS_KNOWN = 31;
/**
 * In a put's flags position, marks a batch: no put has this bit, so a member that does not know
 * batches refuses the entry as malformed rather than misreading it.
 */
const BATCH_MARK = 0x80;
/** Tag and the three request id numbers (f64). */
const HEAD_BYTES = 1 + 24;
/** A put's flags, lease (i64) and key length (u32). */
const PUT_BODY_FIXED_BYTES = 1 + 8 + 4;
/** Head, batch mark, put count (u32). */
const BATCH_FIXED_BYTES = HEAD_BYTES + 1 + 4;
const PUT_FIELDS = new Set(['key', 'value', 'lease', 'prevKv', 'ignoreValue', 'ignoreLease']);

export function encodeCommand(command: Command): Uint8Array {
  return encodePut(command) ?? encodePutBatch(command) ?? packr.pack(command);
}

/**
 * A command holding one plain put in the binary layout: tag, member, incarnation and sequence
 * (f64 LE), then the put's body (`writePutBody`). Undefined for any other command (msgpack then).
 */
function encodePut(command: Command): Uint8Array | undefined {
  if (command.kv === undefined || command.registry !== undefined) return undefined;
  if (command.kvBatch !== undefined) return undefined;
  const put = plainPut(command.kv);
  if (put === undefined) return undefined;
  const out = Buffer.allocUnsafe(HEAD_BYTES + putBodyBytes(put));
  writeHead(out, command.id);
  writePutBody(out, HEAD_BYTES, put);
  return out;
}

/**
 * A command holding a batch of plain puts in the binary layout: the head as for one put, the
 * batch mark, the number of puts (u32 LE), then each put's body. Undefined for anything else.
 */
function encodePutBatch(command: Command): Uint8Array | undefined {
  const { kvBatch } = command;
  if (kvBatch === undefined || command.kv !== undefined || command.registry !== undefined) {
    return undefined;
  }
  const puts: PutRequest[] = [];
  let bytes = BATCH_FIXED_BYTES;
  for (const request of kvBatch) {
    const put = plainPut(request);
    if (put === undefined) return undefined;
    puts.push(put);
    bytes += putBodyBytes(put);
  }
  const out = Buffer.allocUnsafe(bytes);
  writeHead(out, command.id);
  out[HEAD_BYTES] = BATCH_MARK;
  out.writeUInt32LE(puts.length, HEAD_BYTES + 1);
  let at = BATCH_FIXED_BYTES;
  for (const put of puts) at = writePutBody(out, at, put);
  return out;
}

function writeHead(out: Buffer, id: RequestId): void {
  out[0] = PUT_TAG;
  out.writeDoubleLE(id.member, 1);
  out.writeDoubleLE(id.incarnation, 9);
  out.writeDoubleLE(id.sequence, 17);
}

function putBodyBytes(put: PutRequest): number {
  return PUT_BODY_FIXED_BYTES + put.key.length + (put.value ? 4 + put.value.length : 0);
}

/**
 * A put's body at `at`: flags, lease (i64 LE, 0 when absent), key length (u32 LE), key, then,
 * when it has one, the value's length (u32 LE) and the value. Returns the offset after it.
 */
function writePutBody(out: Buffer, at: number, put: PutRequest): number {
  const { key, value, lease } = put;
  out[at] =
    (put.prevKv === true ? PUT_FLAG_PREV_KV : 0) |
    (put.ignoreValue === true ? PUT_FLAG_IGNORE_VALUE : 0) |
    (put.ignoreLease === true ? PUT_FLAG_IGNORE_LEASE : 0) |
    (value !== undefined ? PUT_FLAG_HAS_VALUE : 0) |
    (lease !== undefined ? PUT_FLAG_HAS_LEASE : 0);
  out.writeBigInt64LE(lease ?? 0n, at + 1);
  out.writeUInt32LE(key.length, at + 9);
  out.set(key, at + 13);
  at += 13 + key.length;
  if (value === undefined) return at;
  out.writeUInt32LE(value.length, at);
  out.set(value, at + 4);
  return at + 4 + value.length;
}

/**
 * The put of a request that is exactly one put with only known fields of the expected types,
 * else undefined. It runs for every proposal, so it walks the objects with `for...in` instead of
 * building key arrays.
 */
function plainPut(kv: KvRequest): PutRequest | undefined {
  for (const name in kv) if (name !== 'put') return undefined;
  const put = 'put' in kv ? kv.put : undefined;
  if (put === undefined) return undefined;
  for (const field in put) if (!PUT_FIELDS.has(field)) return undefined;
  const { key, value, lease } = put;
  if (!(key instanceof Uint8Array) || (value !== undefined && !(value instanceof Uint8Array))) {
    return undefined;
  }
  if (lease !== undefined && (typeof lease !== 'bigint' || BigInt.asIntN(64, lease) !== lease)) {
    return undefined;
  }
  if (!optionalBoolean(put.prevKv) || !optionalBoolean(put.ignoreValue)) return undefined;
  if (!optionalBoolean(put.ignoreLease)) return undefined;
  return put;
}

function optionalBoolean(value: unknown): boolean {
  return value === undefined || typeof value === 'boolean';
}

function malformed(): Error {
  return new Error('raft entry holds a malformed put');
}

/** Decodes the binary layouts (one put, or a batch of puts); keys and values are views of `data`. */
function decodeBinary(data: Uint8Array): Command {
  const bytes = Buffer.isBuffer(data)
    ? data
    : Buffer.from(data.buffer, data.byteOffset, data.length);
  if (bytes.length < HEAD_BYTES + 1) throw malformed();
  const id = {
    member: bytes.readDoubleLE(1),
    incarnation: bytes.readDoubleLE(9),
    sequence: bytes.readDoubleLE(17),
  };
  if (bytes[HEAD_BYTES] !== BATCH_MARK) {
    const cursor = { at: HEAD_BYTES };
    const put = readPutBody(bytes, cursor);
    if (cursor.at !== bytes.length) throw malformed();
    return { id, kv: { put } };
  }
  if (bytes.length < BATCH_FIXED_BYTES) throw malformed();
  const count = bytes.readUInt32LE(HEAD_BYTES + 1);
  // Each put takes at least its fixed bytes: a count the entry cannot hold is refused up front.
  if (count === 0 || count > (bytes.length - BATCH_FIXED_BYTES) / PUT_BODY_FIXED_BYTES) {
    throw malformed();
  }
  const kvBatch = new Array<KvRequest>(count);
  const cursor = { at: BATCH_FIXED_BYTES };
  for (let i = 0; i < count; i++) kvBatch[i] = { put: readPutBody(bytes, cursor) };
  if (cursor.at !== bytes.length) throw malformed();
  return { id, kvBatch };
}

/** Reads `writePutBody`'s layout at `cursor.at` and moves the cursor past it. */
function readPutBody(bytes: Buffer, cursor: { at: number }): PutRequest {
  const { at } = cursor;
  if (at + PUT_BODY_FIXED_BYTES > bytes.length) throw malformed();
  const flags = bytes[at]!;
  if ((flags & ~PUT_FLAGS_KNOWN) !== 0) throw malformed();
  const leaseAt = at + 1;
  const keyBytes = bytes.readUInt32LE(at + 9);
  const keyAt = at + PUT_BODY_FIXED_BYTES;
  let end = keyAt + keyBytes;
  if (end > bytes.length) throw malformed();
  const put: PutRequest = { key: bytes.subarray(keyAt, end) };
  if ((flags & PUT_FLAG_HAS_VALUE) !== 0) {
    if (end + 4 > bytes.length) throw malformed();
    const valueBytes = bytes.readUInt32LE(end);
    end += 4;
    if (end + valueBytes > bytes.length) throw malformed();
    put.value = bytes.subarray(end, end + valueBytes);
    end += valueBytes;
  }
  // Most puts carry no lease: their lease bytes are checked to be zero without making a bigint.
  if ((flags & PUT_FLAG_HAS_LEASE) !== 0) put.lease = bytes.readBigInt64LE(leaseAt);
  else if (bytes.readUInt32LE(leaseAt) !== 0 || bytes.readUInt32LE(leaseAt + 4) !== 0) {
    throw malformed();
  }
  if ((flags & PUT_FLAG_PREV_KV) !== 0) put.prevKv = true;
  if ((flags & PUT_FLAG_IGNORE_VALUE) !== 0) put.ignoreValue = true;
  if ((flags & PUT_FLAG_IGNORE_LEASE) !== 0) put.ignoreLease = true;
  cursor.at = end;
  return put;
}

export function encodeConfChangeContext(context: ConfChangeContext): Uint8Array {
  return packr.pack(context);
}

function isRequestId(value: unknown): value is RequestId {
  const v = value as RequestId;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.member === 'number' &&
    typeof v.incarnation === 'number' &&
    typeof v.sequence === 'number'
  );
}

/**
 * Decodes a committed entry's command. Entries are written only by members of this cluster, so a
 * malformed one means a bug or corruption: the caller treats the error as fatal.
 */
export function decodeCommand(data: Uint8Array): Command {
  if (data[0] === PUT_TAG) return decodeBinary(data);
  const value = unpackr.unpack(data) as Command;
  if (typeof value !== 'object' || value === null || !isRequestId(value.id)) {
    throw new Error('raft entry does not hold a shoal command');
  }
  return value;
}

export function decodeConfChangeContext(data: Uint8Array): ConfChangeContext | null {
  if (data.length === 0) return null;
  const value = unpackr.unpack(data) as ConfChangeContext;
  if (typeof value !== 'object' || value === null || !isRequestId(value.id)) return null;
  return value;
}
