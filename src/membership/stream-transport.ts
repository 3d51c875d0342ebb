/**
 * The reliable-stream half of SWIM's transport: memberlist runs its push-pull state exchange and
 * its fallback ping over TCP, and shoal runs them over shoal RPC (`RpcStreamTransport`, on the
 * member's peer port). The `Memberlist` runtime works without one (push-pull is then split into
 * datagrams and there is no fallback ping), which is how it runs standalone.
 *
 * Every message handed to a handler or returned by `pushPull` has been validated with the core's
 * `parseMessage` rules and owns its bytes (no views into network buffers).
 */
import type { PingMessage, PushPullMessage } from './core/types.js';

/** What a member answers on its stream transport; both run synchronously on the core. */
export interface StreamHandlers {
  /** Merges a push-pull request; returns this member's state when the sender asked for it. */
  pushPull(message: PushPullMessage): PushPullMessage | null;
  /** Answers a fallback ping: true (ack) when it is addressed to this member. */
  ping(message: PingMessage): boolean;
}

export interface StreamTransport {
  /**
   * Sends `message` to the member at `toAddress` and resolves with its reply (its full state)
   * when `message.reply` is set, or null otherwise. Rejects with a coded error (an `RpcError` for
   * `RpcStreamTransport`) when the peer cannot be reached or answer within `timeoutMs`, or when
   * its reply is malformed or larger than `PUSH_PULL_BYTES_MAX`.
   */
  pushPull(
    toAddress: string,
    message: PushPullMessage,
    timeoutMs: number,
  ): Promise<PushPullMessage | null>;

  /** Sends a fallback ping; resolves true when the member acks within `timeoutMs`, else false. */
  ping(toAddress: string, message: PingMessage, timeoutMs: number): Promise<boolean>;

  /** Starts answering requests with `handlers` (called once). */
  serve(handlers: StreamHandlers): void;

  /** Stops answering (requests then fail with a coded error) and releases what it owns. */
  close(): Promise<void>;
}
