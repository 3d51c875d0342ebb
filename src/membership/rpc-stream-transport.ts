/**
 * `StreamTransport` on shoal RPC: a `membership` service registered on the member's peer RPC
 * server (the TCP port with the same number as its SWIM UDP port), and calls to other members
 * through the process's shared client pool, one client per peer address.
 *
 * - `membership.pushPull` (unary): a `PushPullMessage` each way, at most `PUSH_PULL_BYTES_MAX`
 *   encoded bytes; a request without `reply` is answered with null. The bound is on the core's
 *   compact msgpack size; the RPC codec may write a few more header bytes per entry, which the RPC
 *   frame limit (16 MiB by default, and it must stay well above 4 MiB) absorbs.
 * - `membership.ping` (unary): a `PingMessage`, answered with `{ ack }`; the caller's deadline is
 *   the end of its probe period.
 *
 * Requests and replies come from the network, so both are validated with the core's rules and
 * copied out of the frame buffer; a malformed request is answered with INVALID_ARGUMENT (an
 * oversized one with RESOURCE_EXHAUSTED) and counted, and the member keeps serving.
 */
import type { Logger } from 'pino';
import {
  defineService,
  isRpcError,
  type RpcClientPool,
  RpcError,
  type RpcServer,
  unary,
} from '../rpc/index.js';
import { msgpackSizeBytes } from './core/size.js';
import { type PingMessage, PUSH_PULL_BYTES_MAX, type PushPullMessage } from './core/types.js';
import { parseMessage } from './core/validate.js';
import type { StreamHandlers, StreamTransport } from './stream-transport.js';

/** Reply to `membership.ping`. */
export interface StreamPingReply {
  ack: boolean;
}

/**
 * The membership service. Requests are typed for callers, but handlers treat them as untrusted
 * and validate them themselves (so that rejections are counted).
 */
export const membershipService = defineService({
  name: 'membership',
  methods: {
    pushPull: unary<PushPullMessage, PushPullMessage | null>(),
    ping: unary<PingMessage, StreamPingReply>(),
  },
});

export interface StreamTransportStats {
  pushPullsSent: number;
  pushPullsFailed: number;
  pushPullsServed: number;
  pingsSent: number;
  pingsAcked: number;
  /** Pings that got no answer in time, or an error. */
  pingsFailed: number;
  pingsServed: number;
  /** Requests answered with INVALID_ARGUMENT or RESOURCE_EXHAUSTED. */
  requestsRejected: number;
  /** Replies from peers that were malformed or too large. */
  repliesRejected: number;
}

export interface RpcStreamTransportOptions {
  /** The member's peer RPC server, already listening; the membership service is added to it. */
  readonly server: RpcServer;
  /** The process's client pool for peer addresses. */
  readonly clients: RpcClientPool;
  readonly logger: Logger;
}

export class RpcStreamTransport implements StreamTransport {
  readonly stats: StreamTransportStats = {
    pushPullsSent: 0,
    pushPullsFailed: 0,
    pushPullsServed: 0,
    pingsSent: 0,
    pingsAcked: 0,
    pingsFailed: 0,
    pingsServed: 0,
    requestsRejected: 0,
    repliesRejected: 0,
  };
  private handlers: StreamHandlers | null = null;
  private closed = false;

  constructor(private readonly options: RpcStreamTransportOptions) {}

  async pushPull(
    toAddress: string,
    message: PushPullMessage,
    timeoutMs: number,
  ): Promise<PushPullMessage | null> {
    if (msgpackSizeBytes(message) > PUSH_PULL_BYTES_MAX) {
      throw new RpcError('RESOURCE_EXHAUSTED', `push-pull exceeds ${PUSH_PULL_BYTES_MAX} bytes`);
    }
    this.stats.pushPullsSent++;
    const stub = this.options.clients.stub(toAddress, membershipService);
    let raw: unknown;
    try {
      raw = await stub.pushPull(message, { timeoutMs });
    } catch (error) {
      this.stats.pushPullsFailed++;
      throw error;
    }
    if (raw === null && !message.reply) return null;
    const reply = ownPushPull(raw);
    if (reply === null || reply.reply || !message.reply) {
      this.stats.pushPullsFailed++;
      this.stats.repliesRejected++;
      throw new RpcError('INTERNAL', `malformed or oversized push-pull reply from ${toAddress}`);
    }
    return reply;
  }

  async ping(toAddress: string, message: PingMessage, timeoutMs: number): Promise<boolean> {
    this.stats.pingsSent++;
    const stub = this.options.clients.stub(toAddress, membershipService);
    try {
      const reply: unknown = await stub.ping(message, { timeoutMs });
      const acked = isPingReply(reply) && reply.ack;
      if (acked) this.stats.pingsAcked++;
      else this.stats.pingsFailed++;
      return acked;
    } catch (error) {
      this.stats.pingsFailed++;
      const code = isRpcError(error) ? error.code : 'UNKNOWN';
      this.options.logger.debug({ to: toAddress, code }, 'fallback ping failed');
      return false;
    }
  }

  serve(handlers: StreamHandlers): void {
    if (this.handlers !== null) throw new Error('RpcStreamTransport.serve called twice');
    this.handlers = handlers;
    this.options.server.addService(membershipService, {
      pushPull: (request: unknown) => this.servePushPull(request),
      ping: (request: unknown) => this.servePing(request),
    });
  }

  /**
   * Stops answering. The service stays registered on the shared server (RPC has no way to remove
   * one), answering UNAVAILABLE; the server and the client pool belong to the member process.
   */
  async close(): Promise<void> {
    this.closed = true;
  }

  private servePushPull(request: unknown): PushPullMessage | null {
    const handlers = this.activeHandlers();
    const message = ownPushPull(request);
    if (message === null) {
      this.stats.requestsRejected++;
      const tooLarge = parseMessage(request)?.type === 'pushPull';
      if (tooLarge) {
        throw new RpcError('RESOURCE_EXHAUSTED', `push-pull exceeds ${PUSH_PULL_BYTES_MAX} bytes`);
      }
      throw new RpcError('INVALID_ARGUMENT', 'malformed push-pull request');
    }
    this.stats.pushPullsServed++;
    return handlers.pushPull(message);
  }

  private servePing(request: unknown): StreamPingReply {
    const handlers = this.activeHandlers();
    const message = parseMessage(request);
    if (message === null || message.type !== 'ping') {
      this.stats.requestsRejected++;
      throw new RpcError('INVALID_ARGUMENT', 'malformed ping request');
    }
    this.stats.pingsServed++;
    return { ack: handlers.ping(message) };
  }

  private activeHandlers(): StreamHandlers {
    if (this.closed || this.handlers === null) {
      throw new RpcError('UNAVAILABLE', 'membership is shut down on this member');
    }
    return this.handlers;
  }
}

/**
 * The push-pull message `value` is, validated, within PUSH_PULL_BYTES_MAX and with every entry's
 * metadata copied, since decoded byte fields are views into the received frame and keeping them
 * would keep whole frames alive. Null when malformed or too large.
 */
function ownPushPull(value: unknown): PushPullMessage | null {
  const message = parseMessage(value);
  if (message === null || message.type !== 'pushPull') return null;
  if (msgpackSizeBytes(message) > PUSH_PULL_BYTES_MAX) return null;
  for (const entry of message.states) entry.meta = Uint8Array.from(entry.meta);
  return message;
}

function isPingReply(value: unknown): value is StreamPingReply {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Record<string, unknown>).ack === 'boolean'
  );
}
