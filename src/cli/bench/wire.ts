/**
 * Hand-written static protobuf codecs for the few etcd v3 messages the load generator sends and
 * reads, with field numbers taken from src/server/etcd/proto/rpc.proto. The generator encodes each
 * request shape once into a buffer and afterwards only rewrites the key bytes in place, so a request
 * costs no allocation and no reflection; responses are scanned for the one or two fields the
 * generator needs instead of being decoded into objects.
 */

/** Protobuf wire types used here. */
const wireVarint = 0;
const wireLen = 2;

function tag(field: number, wireType: number): number {
  return (field << 3) | wireType;
}

function varintLength(value: number): number {
  let length = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    length++;
  }
  return length;
}

/** Small append-only writer over a buffer of known size. */
class Writer {
  offset = 0;
  constructor(readonly buffer: Buffer) {}

  varint(value: number): this {
    while (value >= 0x80) {
      this.buffer[this.offset++] = (value & 0x7f) | 0x80;
      value = Math.floor(value / 128);
    }
    this.buffer[this.offset++] = value;
    return this;
  }

  bytesField(field: number, bytes: Uint8Array): this {
    this.varint(tag(field, wireLen)).varint(bytes.length);
    this.buffer.set(bytes, this.offset);
    this.offset += bytes.length;
    return this;
  }

  /** Writes the header of a length-delimited field whose body follows. */
  lenHeader(field: number, length: number): this {
    return this.varint(tag(field, wireLen)).varint(length);
  }
}

function bytesFieldLength(field: number, length: number): number {
  return varintLength(tag(field, wireLen)) + varintLength(length) + length;
}

/** An encoded request plus where its key bytes sit, so the key can be replaced in place. */
export interface RequestTemplate {
  buffer: Buffer;
  keyOffset: number;
  keyLength: number;
}

/** PutRequest { key = 1; value = 2 }. */
export function encodePutRequest(key: Uint8Array, value: Uint8Array): RequestTemplate {
  const length = bytesFieldLength(1, key.length) + bytesFieldLength(2, value.length);
  const writer = new Writer(Buffer.alloc(length));
  writer.varint(tag(1, wireLen)).varint(key.length);
  const keyOffset = writer.offset;
  writer.buffer.set(key, keyOffset);
  writer.offset += key.length;
  writer.bytesField(2, value);
  return { buffer: writer.buffer, keyOffset, keyLength: key.length };
}

/** RangeRequest { key = 1; serializable = 7 }. */
export function encodeRangeRequest(key: Uint8Array, serializable: boolean): RequestTemplate {
  const length = bytesFieldLength(1, key.length) + (serializable ? 2 : 0);
  const writer = new Writer(Buffer.alloc(length));
  writer.bytesField(1, key);
  if (serializable) writer.varint(tag(7, wireVarint)).varint(1);
  return {
    buffer: writer.buffer,
    keyOffset: bytesFieldLength(1, key.length) - key.length,
    keyLength: key.length,
  };
}

/** TxnRequest { success = 2: [RequestOp { request_put = 2: PutRequest }] } with no compares. */
export function encodeTxnPutRequest(key: Uint8Array, value: Uint8Array): RequestTemplate {
  const put = encodePutRequest(key, value);
  const opLength = bytesFieldLength(2, put.buffer.length);
  const writer = new Writer(Buffer.alloc(bytesFieldLength(2, opLength)));
  writer.lenHeader(2, opLength).lenHeader(2, put.buffer.length);
  const putOffset = writer.offset;
  writer.buffer.set(put.buffer, putOffset);
  return { buffer: writer.buffer, keyOffset: putOffset + put.keyOffset, keyLength: key.length };
}

/** WatchRequest { create_request = 1: WatchCreateRequest { key = 1 } }. */
export function encodeWatchCreateRequest(key: Uint8Array): Buffer {
  const createLength = bytesFieldLength(1, key.length);
  const writer = new Writer(Buffer.alloc(bytesFieldLength(1, createLength)));
  writer.lenHeader(1, createLength).bytesField(1, key);
  return writer.buffer;
}

/**
 * Writes `index` as zero-padded decimal ASCII into `buffer[offset, offset + width)`, the generator's
 * key format (readable in etcdctl). Throws when the number needs more digits than `width`.
 */
export function writeDecimalKey(
  buffer: Buffer,
  offset: number,
  width: number,
  index: number,
): void {
  let rest = index;
  for (let i = offset + width - 1; i >= offset; i--) {
    buffer[i] = 0x30 + (rest % 10);
    rest = Math.floor(rest / 10);
  }
  if (rest !== 0) throw new RangeError(`key index ${index} does not fit in ${width} digits`);
}

/** The generator's key for `index` as a fresh buffer. */
export function decimalKey(width: number, index: number): Buffer {
  const key = Buffer.alloc(width);
  writeDecimalKey(key, 0, width, index);
  return key;
}

/** Reads a varint at `offset`; returns [value, next offset]. Values above 2^53 lose precision. */
function readVarint(buffer: Uint8Array, offset: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (offset >= buffer.length) throw new RangeError('truncated varint');
    const byte = buffer[offset++]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, offset];
    scale *= 128;
  }
  throw new RangeError('varint longer than 10 bytes');
}

/**
 * Calls `visit(field, wireType, value, start, end)` for every top-level field of a message: `value`
 * is the varint for wire type 0; for length-delimited fields the body is buffer[start, end).
 */
export function scanFields(
  buffer: Uint8Array,
  visit: (field: number, wireType: number, value: number, start: number, end: number) => void,
): void {
  let offset = 0;
  while (offset < buffer.length) {
    const [key, afterKey] = readVarint(buffer, offset);
    const field = Math.floor(key / 8);
    const wireType = key & 7;
    if (wireType === wireVarint) {
      const [value, next] = readVarint(buffer, afterKey);
      visit(field, wireType, value, afterKey, next);
      offset = next;
    } else if (wireType === wireLen) {
      const [length, start] = readVarint(buffer, afterKey);
      if (start + length > buffer.length) throw new RangeError('truncated length-delimited field');
      visit(field, wireType, length, start, start + length);
      offset = start + length;
    } else if (wireType === 1 || wireType === 5) {
      offset = afterKey + (wireType === 1 ? 8 : 4);
    } else {
      throw new RangeError(`unsupported wire type ${wireType}`);
    }
  }
}

export interface WatchResponseSummary {
  watchId: number;
  created: boolean;
  canceled: boolean;
  eventCount: number;
}

/** WatchResponse { watch_id = 2; created = 3; canceled = 4; events = 11 (repeated) }. */
export function summarizeWatchResponse(buffer: Uint8Array): WatchResponseSummary {
  const summary = { watchId: 0, created: false, canceled: false, eventCount: 0 };
  scanFields(buffer, (field, _wireType, value) => {
    if (field === 2) summary.watchId = value;
    else if (field === 3) summary.created = value !== 0;
    else if (field === 4) summary.canceled = value !== 0;
    else if (field === 11) summary.eventCount++;
  });
  return summary;
}

/** RangeResponse { kvs = 2 (repeated); count = 4 }: how many key-values came back, and the count. */
export function summarizeRangeResponse(buffer: Uint8Array): { kvCount: number; count: number } {
  const summary = { kvCount: 0, count: 0 };
  scanFields(buffer, (field, _wireType, value) => {
    if (field === 2) summary.kvCount++;
    else if (field === 4) summary.count = value;
  });
  return summary;
}
