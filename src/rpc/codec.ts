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

/** An encoded payload plus the frame flags it needs (FLAG_RAW or 0). */
export interface EncodedPayload {
  bytes: Uint8Array;
  flags: number;
}

/**
 * Encodes one message. The returned bytes of a msgpack encoding are a view into msgpackr's own
 * buffer, which it never overwrites (it moves on to a fresh buffer when full), so they stay valid
 * until written.
 */
export function encodeMessage(message: unknown): EncodedPayload {
  if (message instanceof Uint8Array) return { bytes: message, flags: FLAG_RAW };
  return { bytes: packr.pack(message), flags: 0 };
}

/**
 * Decodes a payload. Throws when the bytes are not exactly one valid msgpack value, so a peer's
 * garbage becomes a call-scoped INVALID_ARGUMENT rather than a crash.
 */
export function decodeMessage(flags: number, payload: Buffer): unknown {
  if ((flags & FLAG_RAW) !== 0) return payload;
  // unpack throws on truncated data and on trailing bytes after the value.
  return unpackr.unpack(payload);
}
