/**
 * The transmit-limited broadcast queue behind infection-style dissemination. Each membership update
 * is piggybacked on outgoing packets until it has been sent `retransmitMult * ceil(log10(n + 1))`
 * times; updates sent the fewest times go first, newest first among equals, so fresh news spreads
 * before old news is repeated. A newer update about a member replaces any queued one about it.
 */
import { msgpackSizeBytes } from './size.js';
import type { BroadcastMessage } from './types.js';

/** Most updates held at once; at the limit the most-transmitted, oldest ones are dropped. */
export const BROADCAST_QUEUE_MAX = 2048;

interface QueuedBroadcast {
  readonly message: BroadcastMessage;
  readonly sizeBytes: number;
  /** Insertion order, to prefer newer updates among equally transmitted ones. */
  readonly id: number;
  transmits: number;
}

/** memberlist's retransmit limit: `retransmitMult * ceil(log10(n + 1))`. */
export function retransmitLimit(retransmitMult: number, memberCount: number): number {
  const nodeScale = Math.ceil(Math.log10(memberCount + 1));
  return retransmitMult * nodeScale;
}

export class BroadcastQueue {
  private items: QueuedBroadcast[] = [];
  private nextId = 0;
  private droppedCount = 0;

  /** Queues `message`, replacing any queued update about the same member. */
  enqueue(message: BroadcastMessage): void {
    this.items = this.items.filter((item) => item.message.name !== message.name);
    this.items.push({
      message,
      sizeBytes: msgpackSizeBytes(message),
      id: this.nextId++,
      transmits: 0,
    });
    if (this.items.length > BROADCAST_QUEUE_MAX) this.prune();
  }

  /**
   * Takes the updates that fit in `bytesAvailable` (each costing its size plus `overheadBytes`),
   * least transmitted first, and counts one transmission for each; those that reach `limit`
   * transmissions leave the queue.
   */
  take(overheadBytes: number, bytesAvailable: number, limit: number): BroadcastMessage[] {
    if (this.items.length === 0) return [];
    this.items.sort((a, b) => a.transmits - b.transmits || b.id - a.id);
    const taken: BroadcastMessage[] = [];
    let remaining = bytesAvailable;
    for (const item of this.items) {
      const cost = item.sizeBytes + overheadBytes;
      if (cost > remaining) continue;
      remaining -= cost;
      item.transmits++;
      taken.push(item.message);
    }
    this.items = this.items.filter((item) => item.transmits < limit);
    return taken;
  }

  /** How many times the queued update about `name` has been sent, or undefined if none is queued. */
  transmitsOf(name: string): number | undefined {
    return this.items.find((item) => item.message.name === name)?.transmits;
  }

  get length(): number {
    return this.items.length;
  }

  /** Updates dropped because the queue was full. */
  get dropped(): number {
    return this.droppedCount;
  }

  private prune(): void {
    // Drop the updates that have already spread the most; among equals, the oldest.
    this.items.sort((a, b) => a.transmits - b.transmits || b.id - a.id);
    const excess = this.items.length - BROADCAST_QUEUE_MAX;
    this.items.length = BROADCAST_QUEUE_MAX;
    this.droppedCount += excess;
  }
}
