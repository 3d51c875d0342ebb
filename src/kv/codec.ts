/**
 * Byte encodings of the MVCC store: etcd's revision keys and etcd's protobuf `mvccpb.KeyValue`.
 *
 * The store keeps its history in exactly the bytes etcd 3.4 keeps in its bolt `key` bucket: the
 * key is the revision (8-byte big-endian main revision, `_`, 8-byte big-endian sub revision, and a
 * trailing `t` for a deletion tombstone) and the value is the protobuf encoding of the KeyValue
 * (proto3: zero fields omitted, fields in number order). That makes HashKV bit-for-bit comparable
 * with etcd's for the same history, and it is a compact, fast format in its own right.
 */
import type { KeyValue } from './types.js';

/** Length of a revision key without the tombstone mark. */
export const REVISION_KEY_BYTES = 17;
const TOMBSTONE_MARK = 0x74; // 't'
const SEPARATOR = 0x5f; // '_'

export interface RevisionPointer {
  main: number;
  sub: number;
  tombstone: boolean;
}

/** Whether `latest` (a key's newest revision at some point) is `pointer` and a live value. */
export function isLiveRevision(
  latest: RevisionPointer | undefined,
  pointer: RevisionPointer,
): boolean {
  return (
    latest !== undefined &&
    !latest.tombstone &&
    latest.main === pointer.main &&
    latest.sub === pointer.sub
  );
}

export function encodeRevisionKey(main: number, sub: number, tombstone: boolean): Buffer {
  const bytes = Buffer.allocUnsafe(tombstone ? REVISION_KEY_BYTES + 1 : REVISION_KEY_BYTES);
  writeUint64BE(bytes, main, 0);
  bytes[8] = SEPARATOR;
  writeUint64BE(bytes, sub, 9);
  if (tombstone) bytes[REVISION_KEY_BYTES] = TOMBSTONE_MARK;
  return bytes;
}

const TWO_TO_32 = 2 ** 32;

/**
 * Writes a non-negative safe integer as 8 big-endian bytes in two 32-bit halves: every put
 * encodes a revision key, and going through BigInt cost two allocations each.
 */
function writeUint64BE(bytes: Buffer, value: number, offset: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`revision ${value} is not a non-negative safe integer`);
  }
  bytes.writeUInt32BE(Math.floor(value / TWO_TO_32), offset);
  bytes.writeUInt32BE(value >>> 0, offset + 4);
}

function readUint32BE(bytes: Uint8Array, offset: number): number {
  return (
    ((bytes[offset]! << 24) |
      (bytes[offset + 1]! << 16) |
      (bytes[offset + 2]! << 8) |
      bytes[offset + 3]!) >>>
    0
  );
}

export function decodeRevisionKey(bytes: Uint8Array): RevisionPointer {
  if (bytes.length !== REVISION_KEY_BYTES && bytes.length !== REVISION_KEY_BYTES + 1) {
    throw new Error(`corrupt revision key of ${bytes.length} bytes`);
  }
  // Byte reads rather than a Buffer view: this runs for every history entry a scan visits.
  return {
    main: readUint32BE(bytes, 0) * TWO_TO_32 + readUint32BE(bytes, 4),
    sub: readUint32BE(bytes, 9) * TWO_TO_32 + readUint32BE(bytes, 13),
    tombstone: bytes.length === REVISION_KEY_BYTES + 1,
  };
}

/** The smallest revision key of main revision `main` (sub 0); a range bound. */
export function revisionLowerBound(main: number): Buffer {
  return encodeRevisionKey(main, 0, false);
}

// Protobuf tags (field number << 3 | wire type) of mvccpb.KeyValue.
const TAG_KEY = 0x0a;
const TAG_CREATE = 0x10;
const TAG_MOD = 0x18;
const TAG_VERSION = 0x20;
const TAG_VALUE = 0x2a;
const TAG_LEASE = 0x30;
const VARINT_BYTES_MAX = 10;

function varintLength(value: number): number {
  let length = 1;
  let rest = value;
  while (rest >= 0x80) {
    rest = Math.floor(rest / 128);
    length += 1;
  }
  return length;
}

function writeVarint(out: Buffer, offset: number, value: number): number {
  let rest = value;
  let position = offset;
  while (rest >= 0x80) {
    out[position++] = (rest % 128) | 0x80;
    rest = Math.floor(rest / 128);
  }
  out[position++] = rest;
  return position;
}

/** Lease ids are int64: a negative one is encoded as its 64-bit two's complement (10 bytes). */
function leaseVarint(lease: bigint): Buffer {
  let rest = BigInt.asUintN(64, lease);
  const bytes: number[] = [];
  while (rest >= 0x80n) {
    bytes.push(Number(rest & 0x7fn) | 0x80);
    rest >>= 7n;
  }
  bytes.push(Number(rest));
  return Buffer.from(bytes);
}

/**
 * Only the key of an encoded KeyValue (a view into `bytes`). The key is the first field in
 * etcd's encoding, so this reads a tag and a length; anything else takes the full decoder.
 */
export function decodeKeyOfKeyValue(bytes: Uint8Array): Uint8Array {
  if (bytes[0] === TAG_KEY) {
    let length = 0;
    let scale = 1;
    for (let offset = 1; offset < bytes.length && offset <= VARINT_BYTES_MAX; offset++) {
      const byte = bytes[offset]!;
      length += (byte & 0x7f) * scale;
      scale *= 128;
      if (byte < 0x80) {
        if (offset + 1 + length > bytes.length) break;
        return bytes.subarray(offset + 1, offset + 1 + length);
      }
    }
  }
  return decodeKeyValue(bytes).key;
}

/** Encodes a KeyValue exactly as etcd's generated gogo-protobuf code does. */
export function encodeKeyValue(kv: KeyValue): Buffer {
  const leaseBytes = kv.lease === 0n ? undefined : leaseVarint(kv.lease);
  let size = 0;
  if (kv.key.length > 0) size += 1 + varintLength(kv.key.length) + kv.key.length;
  if (kv.createRevision !== 0) size += 1 + varintLength(kv.createRevision);
  if (kv.modRevision !== 0) size += 1 + varintLength(kv.modRevision);
  if (kv.version !== 0) size += 1 + varintLength(kv.version);
  if (kv.value.length > 0) size += 1 + varintLength(kv.value.length) + kv.value.length;
  if (leaseBytes) size += 1 + leaseBytes.length;
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  if (kv.key.length > 0) {
    out[offset++] = TAG_KEY;
    offset = writeVarint(out, offset, kv.key.length);
    out.set(kv.key, offset);
    offset += kv.key.length;
  }
  if (kv.createRevision !== 0) {
    out[offset++] = TAG_CREATE;
    offset = writeVarint(out, offset, kv.createRevision);
  }
  if (kv.modRevision !== 0) {
    out[offset++] = TAG_MOD;
    offset = writeVarint(out, offset, kv.modRevision);
  }
  if (kv.version !== 0) {
    out[offset++] = TAG_VERSION;
    offset = writeVarint(out, offset, kv.version);
  }
  if (kv.value.length > 0) {
    out[offset++] = TAG_VALUE;
    offset = writeVarint(out, offset, kv.value.length);
    out.set(kv.value, offset);
    offset += kv.value.length;
  }
  if (leaseBytes) {
    out[offset++] = TAG_LEASE;
    out.set(leaseBytes, offset);
    offset += leaseBytes.length;
  }
  if (offset !== size) throw new Error(`KeyValue encoding size mismatch: ${offset} != ${size}`);
  return out;
}

const EMPTY = new Uint8Array(0);

/** Decodes etcd's KeyValue bytes; keys and values are views into `bytes` (callers own a copy). */
export function decodeKeyValue(bytes: Uint8Array): KeyValue {
  const kv: KeyValue = {
    key: EMPTY,
    createRevision: 0,
    modRevision: 0,
    version: 0,
    value: EMPTY,
    lease: 0n,
  };
  let offset = 0;
  while (offset < bytes.length) {
    const tag = bytes[offset++]!;
    if (tag === TAG_LEASE) {
      let result = 0n;
      let shift = 0n;
      for (let i = 0; i < VARINT_BYTES_MAX; i++) {
        const byte = bytes[offset++]!;
        result |= BigInt(byte & 0x7f) << shift;
        shift += 7n;
        if (byte < 0x80) break;
      }
      kv.lease = BigInt.asIntN(64, result);
      continue;
    }
    let number = 0;
    let scale = 1;
    for (let i = 0; i < VARINT_BYTES_MAX; i++) {
      if (offset >= bytes.length) throw new Error('corrupt KeyValue: truncated varint');
      const byte = bytes[offset++]!;
      number += (byte & 0x7f) * scale;
      scale *= 128;
      if (byte < 0x80) break;
    }
    if (tag === TAG_KEY || tag === TAG_VALUE) {
      if (offset + number > bytes.length) throw new Error('corrupt KeyValue: truncated bytes');
      const field = bytes.subarray(offset, offset + number);
      offset += number;
      if (tag === TAG_KEY) kv.key = field;
      else kv.value = field;
    } else if (tag === TAG_CREATE) kv.createRevision = number;
    else if (tag === TAG_MOD) kv.modRevision = number;
    else if (tag === TAG_VERSION) kv.version = number;
    else throw new Error(`corrupt KeyValue: unknown tag ${tag}`);
  }
  return kv;
}

/** Encodes a lease id as 8 big-endian bytes (two's complement), the lease tables' key. */
export function encodeLeaseId(id: bigint): Buffer {
  const bytes = Buffer.allocUnsafe(8);
  bytes.writeBigInt64BE(BigInt.asIntN(64, id), 0);
  return bytes;
}

export function decodeLeaseId(bytes: Uint8Array): bigint {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).readBigInt64BE(0);
}
