/**
 * Limits and timings shared by both ends of a connection, with their defaults. Every buffer and
 * queue in the RPC layer is bounded by one of these; what happens at each limit is written next to
 * it.
 */
import type { Logger } from 'pino';
import pino from 'pino';
import { FRAME_BYTES_MAX_DEFAULT, FRAME_BYTES_MAX_LIMIT } from './frame.js';
import { INITIAL_WINDOW_BYTES } from './stream.js';

/** The longest deadline a call can carry: Node timers hold at most 2^31-1 ms (about 24 days). */
export const TIMEOUT_MS_MAX = 0x7fff_ffff;

export interface ConnectionOptions {
  /**
   * Largest frame body accepted or sent. Receiving a larger frame closes the connection (the stream
   * position is lost); sending a larger message fails that call with RESOURCE_EXHAUSTED.
   */
  frameBytesMax: number;
  /**
   * Calls (unary and streams) open at once on one connection. Past it the client fails new calls
   * with RESOURCE_EXHAUSTED at once, and the server answers them with RESOURCE_EXHAUSTED.
   */
  callsInFlightMax: number;
  /**
   * Bytes waiting to be written to the socket. Past it unary calls and one-way sends fail with
   * RESOURCE_EXHAUSTED, stream senders wait for the socket to drain, and a server stops reading
   * the connection until its peer reads what it was sent.
   */
  bufferedBytesMax: number;
  /** Per-stream flow-control window (credit in bytes a receiver grants its sender). */
  streamWindowBytes: number;
  /**
   * Streaming calls open at once on one connection. Each may hold up to streamWindowBytes plus one
   * message on its receiving side, so this bounds stream memory per connection. Past it, new
   * streaming calls fail with RESOURCE_EXHAUSTED (at once on the client; the server answers so).
   */
  streamsInFlightMax: number;
  /** A PING is sent after this long without receiving anything. 0 disables keepalive. */
  keepaliveIntervalMs: number;
  /** A peer that leaves a PING unanswered this long is considered dead; the connection closes. */
  keepaliveTimeoutMs: number;
  logger: Logger;
}

export const CONNECTION_DEFAULTS: Readonly<Omit<ConnectionOptions, 'logger'>> = {
  frameBytesMax: FRAME_BYTES_MAX_DEFAULT,
  callsInFlightMax: 10_000,
  bufferedBytesMax: 64 * 1024 * 1024,
  streamWindowBytes: 1024 * 1024,
  streamsInFlightMax: 256,
  keepaliveIntervalMs: 5_000,
  keepaliveTimeoutMs: 10_000,
};

let defaultLogger: Logger | null = null;

/** The logger used when none is given: pino at `warn`, so protocol errors are visible. */
export function rpcDefaultLogger(): Logger {
  defaultLogger ??= pino({ name: 'shoal-rpc', level: 'warn' });
  return defaultLogger;
}

/** Fills in defaults and checks every value, so a bad configuration fails at construction. */
export function resolveConnectionOptions(
  options: Partial<ConnectionOptions> = {},
): ConnectionOptions {
  const resolved: ConnectionOptions = {
    ...CONNECTION_DEFAULTS,
    ...withoutUndefined(options),
    logger: options.logger ?? rpcDefaultLogger(),
  };
  checkInteger('frameBytesMax', resolved.frameBytesMax, 1, FRAME_BYTES_MAX_LIMIT);
  checkInteger('callsInFlightMax', resolved.callsInFlightMax, 1, 0xffff_ffff);
  checkInteger('bufferedBytesMax', resolved.bufferedBytesMax, 1, Number.MAX_SAFE_INTEGER);
  checkInteger('streamWindowBytes', resolved.streamWindowBytes, INITIAL_WINDOW_BYTES, 0x7fff_ffff);
  checkInteger('streamsInFlightMax', resolved.streamsInFlightMax, 1, 0xffff_ffff);
  checkInteger('keepaliveIntervalMs', resolved.keepaliveIntervalMs, 0, 0x7fff_ffff);
  checkInteger('keepaliveTimeoutMs', resolved.keepaliveTimeoutMs, 1, 0x7fff_ffff);
  return resolved;
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [key, item] of Object.entries(value)) {
    if (item !== undefined) (out as Record<string, unknown>)[key] = item;
  }
  return out;
}

function checkInteger(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max)
    throw new RangeError(`${name} must be an integer in [${min}, ${max}], got ${value}`);
}
