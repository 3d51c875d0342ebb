/**
 * Splitting a push-pull state exchange into datagram-sized pieces, for transports without a stream.
 * Merging is per entry and idempotent, so the pieces may arrive in any order or not at all: a lost
 * piece only delays convergence until the next exchange or gossip. Only the first piece asks for a
 * reply, so the peer answers once.
 */
import { containerHeaderBytes, msgpackSizeBytes } from './size.js';
import type { PushPullMessage } from './types.js';

export function splitPushPull(message: PushPullMessage, bytesMax: number): PushPullMessage[] {
  const empty: PushPullMessage = { ...message, states: [] };
  // Room for the compound array header, the message envelope and a 3-byte array header.
  const envelopeBytes = containerHeaderBytes(1) + msgpackSizeBytes(empty) + 2;
  const pieces: PushPullMessage[] = [];
  let current: PushPullMessage = { ...empty, states: [] };
  let usedBytes = envelopeBytes;
  for (const entry of message.states) {
    const entryBytes = msgpackSizeBytes(entry);
    if (envelopeBytes + entryBytes > bytesMax) continue; // Cannot fit at all; validation bounds it.
    if (usedBytes + entryBytes > bytesMax && current.states.length > 0) {
      pieces.push(current);
      current = { ...empty, reply: false, states: [] };
      usedBytes = envelopeBytes;
    }
    current.states.push(entry);
    usedBytes += entryBytes;
  }
  pieces.push(current);
  return pieces;
}
