/**
 * Timestamps of a write's steps through a member, for finding where a slow request spent its time
 * (bench/trace-preload.mjs records them, bench/trace-report.ts reads them).
 *
 * Each step is published on one `node:diagnostics_channel` channel as a small `TraceEvent`. With
 * no subscriber (always, unless a member was started with the preload) a step costs one boolean
 * check: `trace` is a function that returns at once. The steps, in a put's order on the leader:
 *
 *   req     the gRPC put reached the raft backend            (a, b unused)
 *   prop    the leader appended the proposal                  (a: its index)
 *   send    a Ready's messages went to the transport          (a: messages, b: last index)
 *   dsend   the same for messages drained mid-write           (a: messages, b: last index)
 *   persist the Ready's WAL write became durable              (a, b: first and last index)
 *   ack     a follower acknowledged entries                   (a: follower id, b: up to index)
 *   commit  committed entries start applying (Ready or drain) (a, b: first and last index)
 *   applied those entries were applied                        (a, b: first and last index)
 *   resp    the put's answer left the raft backend
 *
 * and on a follower: `recv` (an append arrived; a: from, b: its last index) and `acksent` (the
 * acknowledgement left after the WAL write; a: last index). The gRPC front end adds `sockin`
 * (bytes read from a client connection; a: bytes) and `sockout` (an answer written; a: bytes).
 */
import diagnostics from 'node:diagnostics_channel';

export const TRACE_CHANNEL = 'shoal.trace';

export interface TraceEvent {
  step: string;
  a: number;
  b: number;
  /** performance.timeOrigin + performance.now(): comparable across processes on one machine. */
  atMs: number;
}

const channel = diagnostics.channel(TRACE_CHANNEL);

/** True while something records the trace; callers may skip work that only feeds it. */
export function tracing(): boolean {
  return channel.hasSubscribers;
}

export function trace(step: string, a = 0, b = 0): void {
  if (!channel.hasSubscribers) return;
  const event: TraceEvent = { step, a, b, atMs: performance.timeOrigin + performance.now() };
  channel.publish(event);
}
