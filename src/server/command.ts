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
/** Tag, three request id numbers (f64), flags, lease (i64), key length (u32). */
const PUT_FIXED_BYTES = 1 + 24 + 1 + 8 + 4;
const PUT_FIELDS = new Set(['key', 'value', 'lease', 'prevKv', 'ignoreValue', 'ignoreLease']);

export function encodeCommand(command: Command): Uint8Array {
  return encodePut(command) ?? packr.pack(command);
}

/**
 * A command holding one plain put in the binary layout: tag, member, incarnation and sequence
 * (f64 LE), flags, lease (i64 LE, 0 when absent), key length (u32 LE), key, then, when it has one,
 * the value's length (u32 LE) and the value. Undefined for any other command (msgpack then).
 */
function encodePut(command: Command): Uint8Array | undefined {
  const put = plainPut(command);
  if (put === undefined) return undefined;
  const { key, value, lease } = put;
  const flags =
    (put.prevKv === true ? PUT_FLAG_PREV_KV : 0) |
    (put.ignoreValue === true ? PUT_FLAG_IGNORE_VALUE : 0) |
    (put.ignoreLease === true ? PUT_FLAG_IGNORE_LEASE : 0) |
    (value !== undefined ? PUT_FLAG_HAS_VALUE : 0) |
    (lease !== undefined ? PUT_FLAG_HAS_LEASE : 0);
  const out = Buffer.allocUnsafe(PUT_FIXED_BYTES + key.length + (value ? 4 + value.length : 0));
  out[0] = PUT_TAG;
  out.writeDoubleLE(command.id.member, 1);
  out.writeDoubleLE(command.id.incarnation, 9);
  out.writeDoubleLE(command.id.sequence, 17);
  out[25] = flags;
  out.writeBigInt64LE(lease ?? 0n, 26);
  out.writeUInt32LE(key.length, 34);
  out.set(key, 38);
  if (value !== undefined) {
    out.writeUInt32LE(value.length, 38 + key.length);
    out.set(value, 42 + key.length);
  }
  return out;
}

/**
 * The put of a command that holds exactly one put with only known fields of the expected types,
 * else undefined. It runs for every proposal, so it walks the objects with `for...in` instead of
 * building key arrays.
 */
function plainPut(command: Command): PutRequest | undefined {
  const { kv } = command;
  if (kv === undefined || command.registry !== undefined) return undefined;
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

/** Decodes `encodePut`'s layout; the key and value are views of `data`. */
function decodePut(data: Uint8Array): Command {
  const bytes = Buffer.isBuffer(data)
    ? data
    : Buffer.from(data.buffer, data.byteOffset, data.length);
  if (bytes.length < PUT_FIXED_BYTES) throw malformed();
  const flags = bytes[25]!;
  if ((flags & ~PUT_FLAGS_KNOWN) !== 0) throw malformed();
  const keyBytes = bytes.readUInt32LE(34);
  let at = 38 + keyBytes;
  if (at > bytes.length) throw malformed();
  const put: PutRequest = { key: bytes.subarray(38, at) };
  if ((flags & PUT_FLAG_HAS_VALUE) !== 0) {
    if (at + 4 > bytes.length) throw malformed();
    const valueBytes = bytes.readUInt32LE(at);
    at += 4;
    if (at + valueBytes > bytes.length) throw malformed();
    put.value = bytes.subarray(at, at + valueBytes);
    at += valueBytes;
  }
  if (at !== bytes.length) throw malformed();
  // Most puts carry no lease: their lease bytes are checked to be zero without making a bigint.
  if ((flags & PUT_FLAG_HAS_LEASE) !== 0) put.lease = bytes.readBigInt64LE(26);
  else if (bytes.readUInt32LE(26) !== 0 || bytes.readUInt32LE(30) !== 0) throw malformed();
  if ((flags & PUT_FLAG_PREV_KV) !== 0) put.prevKv = true;
  if ((flags & PUT_FLAG_IGNORE_VALUE) !== 0) put.ignoreValue = true;
  if ((flags & PUT_FLAG_IGNORE_LEASE) !== 0) put.ignoreLease = true;
  const id = {
    member: bytes.readDoubleLE(1),
    incarnation: bytes.readDoubleLE(9),
    sequence: bytes.readDoubleLE(17),
  };
  return { id, kv: { put } };
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
  if (data[0] === PUT_TAG) return decodePut(data);
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
