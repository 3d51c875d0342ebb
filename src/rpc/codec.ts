/**
 * Message encoding for frame payloads: msgpack through msgpackr, with a raw fast path. A message
 * that is itself a Uint8Array is sent as its bytes under FLAG_RAW, skipping msgpack and any copy on
 * the receiving side. Inside msgpack values, Uint8Array/Buffer fields travel as msgpack `bin` and
 * are decoded as views into the received frame, not copies. bigint travels as a 64-bit integer and
 * comes back as bigint; Map and Set are not preserved (use plain objects and arrays).
 */
import { Packr, Unpackr } from 'msgpackr';
import { FLAG_RAW } from './frame.js';

/** Records (msgpackr's shared-structure extension) are off: both sides stay stateless. */
const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false, int64AsType: 'bigint' });

/**
 * Encodes one message (pair it with `messageFlags`; two calls instead of a result object keep the
 * hot path free of a per-message allocation). The returned bytes of a msgpack encoding are a view
 * into msgpackr's own buffer, which it never overwrites (it moves on to a fresh buffer when full),
 * so they stay valid until written.
 */
export function encodeMessage(message: unknown): Uint8Array {
  return message instanceof Uint8Array ? message : packr.pack(message);
}

/** The frame flags a message's payload needs: FLAG_RAW for a top-level Uint8Array, else 0. */
export function messageFlags(message: unknown): number {
  return message instanceof Uint8Array ? FLAG_RAW : 0;
}

/**
 * Decodes the payload that starts `offset` bytes into `body`. Throws when the bytes are not exactly
 * one valid msgpack value, so a peer's garbage becomes a call-scoped INVALID_ARGUMENT rather than a
 * crash.
 */
export function decodeMessage(flags: number, body: Buffer, offset = 0): unknown {
  if ((flags & FLAG_RAW) !== 0) return offset === 0 ? body : body.subarray(offset);
  // msgpackr builds (and caches on the Buffer object) a DataView for every new source Buffer. Frame
  // bodies are fresh views into the same socket chunk, so decode from one view of the chunk's
  // whole ArrayBuffer, reused for every frame in it, with start and end offsets instead.
  const buffer = body.buffer;
  if (buffer !== lastArrayBuffer) {
    lastArrayBuffer = buffer;
    lastView = Buffer.from(buffer);
  }
  const start = body.byteOffset + offset;
  const end = body.byteOffset + body.length;
  // An empty range must not reach msgpackr, which reads an `end` of 0 as "to the end of the buffer".
  if (start >= end) throw new Error('empty msgpack payload');
  // unpack throws on truncated data and on trailing bytes after the value.
  return unpackr.unpack(lastView, { start, end });
}

/** The ArrayBuffer of the last decoded payload and a Buffer over all of it. Holds at most one
 * socket chunk alive. */
let lastArrayBuffer: ArrayBufferLike | null = null;
let lastView: Buffer = Buffer.alloc(0);
