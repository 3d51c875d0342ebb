/**
 * The wire form of SWIM packets: a compound packet is one msgpack array of message objects, so
 * several messages share a datagram. Decoding validates every message (`parseMessage`); a datagram
 * that is not exactly a well-formed compound is rejected whole.
 */
import { Packr } from 'msgpackr';
import type { Message } from './core/types.js';
import { parseMessage } from './core/validate.js';

/** Most messages one compound packet may hold; a datagram with more is malformed. */
export const COMPOUND_MESSAGES_MAX = 255;

// Records (msgpackr's structure extension) are off so the encoding is plain, portable msgpack and
// its size matches the core's msgpackSizeBytes (variableMapSize picks fixmap headers, as it does).
const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

export function encodePacket(messages: readonly Message[]): Buffer {
  return packr.pack(messages);
}

/** The messages of a datagram, or null when it is malformed in any way. */
export function decodePacket(bytes: Uint8Array): Message[] | null {
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch {
    return null;
  }
  if (!Array.isArray(value) || value.length === 0 || value.length > COMPOUND_MESSAGES_MAX) {
    return null;
  }
  const messages: Message[] = [];
  for (const item of value) {
    const message = parseMessage(item);
    if (message === null) return null;
    messages.push(message);
  }
  return messages;
}
