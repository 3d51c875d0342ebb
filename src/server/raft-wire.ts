/**
 * The binary encoding of a batch of raft messages between members (the `shoal.raft/batch` one-way
 * method). msgpack spent about 12 % of a leader's busy time at one client decoding and encoding
 * these maps key by key; every field here sits at a fixed place instead.
 *
 * Layout (little-endian; every number is a float64, which holds any safe integer exactly):
 *
 *   batch    := version:u8 (=1) clusterId:f64 from:f64 addressLength:u16 address:utf8
 *               count:u32 message*
 *   message  := type:u8 flags:u8 (bit 0 reject) to:f64 from:f64 term:f64 logTerm:f64 index:f64
 *               commit:f64 rejectHint:f64 contextLength:u32 context entryCount:u32 entry*
 *   entry    := term:f64 index:f64 type:u8 dataLength:u32 data
 *
 * Snapshots never travel in a batch (they are streamed, see transport.ts), so `snapshot` is always
 * null here. Decoding checks every length against the bytes present and every field's range, and
 * throws RaftWireError on anything else: a peer's garbage is refused, never half-applied. Entry data
 * and contexts are views into the received bytes, not copies (as with msgpack's `bin`).
 */
import { type Entry, EntryType, type Message, type MessageType } from '../raft/index.js';

export const RAFT_WIRE_VERSION = 1;
const MESSAGE_TYPE_MAX = 18;
const FLAG_REJECT = 1;
const MESSAGE_FIXED_BYTES = 2 + 7 * 8 + 4 + 4;
const ENTRY_FIXED_BYTES = 8 + 8 + 1 + 4;
const HEADER_FIXED_BYTES = 1 + 8 + 8 + 2 + 4;
const ADDRESS_BYTES_MAX = 0xffff;

export interface RaftBatch {
  clusterId: number;
  from: number;
  /** The sender's peer address, so a member it was removed from can tell it. */
  fromAddress: string;
  messages: Message[];
}

export class RaftWireError extends Error {
  constructor(message: string) {
    super(`raft batch: ${message}`);
    this.name = 'RaftWireError';
  }
}

/** Bytes a message takes in a batch (for splitting batches by size before encoding). */
export function encodedMessageBytes(m: Message): number {
  let bytes = MESSAGE_FIXED_BYTES + m.context.byteLength;
  for (const entry of m.entries) bytes += ENTRY_FIXED_BYTES + entry.data.byteLength;
  return bytes;
}

export function encodeRaftBatch(batch: RaftBatch): Buffer {
  const address = Buffer.from(batch.fromAddress, 'utf8');
  if (address.length > ADDRESS_BYTES_MAX) throw new RaftWireError('sender address too long');
  let total = HEADER_FIXED_BYTES + address.length;
  for (const m of batch.messages) {
    if (m.snapshot !== null) throw new RaftWireError('snapshots are streamed, not batched');
    total += encodedMessageBytes(m);
  }
  const out = Buffer.allocUnsafe(total);
  let at = out.writeUInt8(RAFT_WIRE_VERSION, 0);
  at = out.writeDoubleLE(batch.clusterId, at);
  at = out.writeDoubleLE(batch.from, at);
  at = out.writeUInt16LE(address.length, at);
  at += address.copy(out, at);
  at = out.writeUInt32LE(batch.messages.length, at);
  for (const m of batch.messages) {
    at = out.writeUInt8(m.type, at);
    at = out.writeUInt8(m.reject ? FLAG_REJECT : 0, at);
    at = out.writeDoubleLE(m.to, at);
    at = out.writeDoubleLE(m.from, at);
    at = out.writeDoubleLE(m.term, at);
    at = out.writeDoubleLE(m.logTerm, at);
    at = out.writeDoubleLE(m.index, at);
    at = out.writeDoubleLE(m.commit, at);
    at = out.writeDoubleLE(m.rejectHint, at);
    at = writeSized(out, at, m.context);
    at = out.writeUInt32LE(m.entries.length, at);
    for (const entry of m.entries) {
      at = out.writeDoubleLE(entry.term, at);
      at = out.writeDoubleLE(entry.index, at);
      at = out.writeUInt8(entry.type, at);
      at = writeSized(out, at, entry.data);
    }
  }
  return out;
}

/** Writes `bytes` after their u32 length at `at`; returns the offset after them. */
function writeSized(out: Buffer, at: number, bytes: Uint8Array): number {
  const start = out.writeUInt32LE(bytes.byteLength, at);
  out.set(bytes, start);
  return start + bytes.byteLength;
}

/** Reads a batch; throws RaftWireError when the bytes are not exactly one valid batch. */
export function decodeRaftBatch(bytes: Uint8Array): RaftBatch {
  const buf = Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const reader = new Reader(buf);
  const version = reader.u8();
  if (version !== RAFT_WIRE_VERSION) throw new RaftWireError(`unknown version ${version}`);
  const clusterId = reader.count('cluster id');
  const from = reader.count('sender');
  const fromAddress = reader.bytes(reader.u16()).toString('utf8');
  const count = reader.u32();
  // Every message takes at least its fixed part, which bounds what a forged count can allocate.
  if (count * MESSAGE_FIXED_BYTES > reader.remaining) throw new RaftWireError('truncated');
  const messages: Message[] = new Array(count);
  for (let i = 0; i < count; i++) messages[i] = readMessage(reader);
  if (reader.remaining !== 0) throw new RaftWireError(`${reader.remaining} trailing bytes`);
  return { clusterId, from, fromAddress, messages };
}

function readMessage(reader: Reader): Message {
  const type = reader.u8();
  if (type > MESSAGE_TYPE_MAX) throw new RaftWireError(`unknown message type ${type}`);
  const flags = reader.u8();
  if ((flags & ~FLAG_REJECT) !== 0) throw new RaftWireError(`unknown flags ${flags}`);
  // Field order matches Message's declaration, so every decoded message has one hidden class.
  const to = reader.count('to');
  const from = reader.count('from');
  const term = reader.count('term');
  const logTerm = reader.count('logTerm');
  const index = reader.count('index');
  const commit = reader.count('commit');
  const rejectHint = reader.count('rejectHint');
  const context = reader.bytes(reader.u32());
  const entryCount = reader.u32();
  if (entryCount * ENTRY_FIXED_BYTES > reader.remaining) throw new RaftWireError('truncated');
  const entries: Entry[] = new Array(entryCount);
  for (let i = 0; i < entryCount; i++) {
    const entryTerm = reader.count('entry term');
    const entryIndex = reader.count('entry index');
    const entryType = reader.u8();
    if (entryType !== EntryType.Normal && entryType !== EntryType.ConfChange) {
      throw new RaftWireError(`unknown entry type ${entryType}`);
    }
    const data = reader.bytes(reader.u32());
    entries[i] = { term: entryTerm, index: entryIndex, type: entryType, data };
  }
  return {
    type: type as MessageType,
    to,
    from,
    term,
    logTerm,
    index,
    entries,
    commit,
    snapshot: null,
    reject: (flags & FLAG_REJECT) !== 0,
    rejectHint,
    context,
  };
}

class Reader {
  private at = 0;

  constructor(private readonly buf: Buffer) {}

  get remaining(): number {
    return this.buf.length - this.at;
  }

  private need(bytes: number): void {
    if (bytes > this.buf.length - this.at) throw new RaftWireError('truncated');
  }

  u8(): number {
    this.need(1);
    return this.buf[this.at++]!;
  }

  u16(): number {
    this.need(2);
    const value = this.buf.readUInt16LE(this.at);
    this.at += 2;
    return value;
  }

  u32(): number {
    this.need(4);
    const value = this.buf.readUInt32LE(this.at);
    this.at += 4;
    return value;
  }

  /** A non-negative safe integer stored as a float64. */
  count(what: string): number {
    this.need(8);
    const value = this.buf.readDoubleLE(this.at);
    this.at += 8;
    if (!Number.isSafeInteger(value) || value < 0) throw new RaftWireError(`bad ${what} ${value}`);
    return value;
  }

  /** A view of the next `length` bytes. */
  bytes(length: number): Buffer {
    this.need(length);
    const view = this.buf.subarray(this.at, this.at + length);
    this.at += length;
    return view;
  }
}
