/**
 * Pending linearizable reads on the leader (ReadIndex, thesis §6.4).
 *
 * A read records the commit index at the time it arrives, then waits until a quorum has
 * acknowledged a heartbeat sent after it: that proves no newer leader existed at that moment, so
 * the state machine at the recorded index reflects every write acknowledged before the read. One
 * heartbeat round confirms every read queued before it (the acks carry the newest read's context,
 * and confirming it confirms all earlier ones).
 */
import { assert } from './assert.js';
import type { Message, NodeId } from './types.js';

/** Reads queued on one leader waiting for a heartbeat quorum. Beyond this, reads are refused. */
export const PENDING_READS_MAX = 4096;

export interface ReadIndexStatus {
  readonly request: Message;
  readonly index: number;
  readonly acks: Map<NodeId, boolean>;
}

export function contextKey(context: Uint8Array): string {
  let key = '';
  for (let i = 0; i < context.length; i++) key += String.fromCharCode(context[i]!);
  return key;
}

export class ReadOnly {
  private pending = new Map<string, ReadIndexStatus>();
  /** Context keys in arrival order. Invariant: same keys as `pending`. */
  private queue: string[] = [];

  size(): number {
    return this.queue.length;
  }

  /** Queues a read at `index`. Returns false if the context is already pending. */
  add(index: number, request: Message): boolean {
    const key = contextKey(request.context);
    if (this.pending.has(key)) return false;
    assert(this.queue.length < PENDING_READS_MAX, 'read queue over its limit');
    this.pending.set(key, { request, index, acks: new Map() });
    this.queue.push(key);
    return true;
  }

  /** Records that `from` acknowledged the heartbeat carrying `context`; returns its acks. */
  recvAck(from: NodeId, context: Uint8Array): Map<NodeId, boolean> | null {
    const status = this.pending.get(contextKey(context));
    if (status === undefined) return null;
    status.acks.set(from, true);
    return status.acks;
  }

  /** Removes and returns every read queued up to and including the one with `context`. */
  advance(context: Uint8Array): ReadIndexStatus[] {
    const key = contextKey(context);
    const at = this.queue.indexOf(key);
    if (at < 0) return [];
    const keys = this.queue.splice(0, at + 1);
    const done: ReadIndexStatus[] = [];
    for (const k of keys) {
      done.push(this.pending.get(k)!);
      this.pending.delete(k);
    }
    return done;
  }

  lastPendingContext(): Uint8Array | null {
    const last = this.queue[this.queue.length - 1];
    return last === undefined ? null : this.pending.get(last)!.request.context;
  }

  reset(): void {
    this.pending.clear();
    this.queue = [];
  }
}
