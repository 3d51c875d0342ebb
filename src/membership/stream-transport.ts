/**
 * The reliable-stream half of SWIM's transport, as an interface only. memberlist runs its push-pull
 * state exchange and a fallback ping over TCP; shoal will run them over shoal RPC, which is being
 * built separately. Until then the `Memberlist` runtime, given no `StreamTransport`, splits
 * push-pull exchanges into datagrams (`splitPushPull`) and has no fallback ping.
 *
 * TODO(shoal-rpc): implement `StreamTransport` on shoal RPC (a `membership` service on the peer
 * port: `pushPull` as a unary call carrying one msgpack `PushPullMessage` each way, bounded by the
 * RPC frame limit; `ping` as a unary call answered with an ack), and add the fallback ping to the
 * core as a `stream` ping packet sent when the direct probe times out.
 */
import type { PingMessage, PushPullMessage } from './core/types.js';

export interface StreamTransport {
  /**
   * Sends `message` to the member at `toAddress` over a reliable stream and resolves with its
   * reply (the peer's full state) when `message.reply` is set, or null otherwise. Rejects with a
   * coded error when the peer cannot be reached before `deadlineMs` (milliseconds from now).
   */
  pushPull(
    toAddress: string,
    message: PushPullMessage,
    deadlineMs: number,
  ): Promise<PushPullMessage | null>;

  /** Serves push-pull requests: the handler merges the request and returns the reply, if any. */
  onPushPull(
    handler: (fromAddress: string, message: PushPullMessage) => PushPullMessage | null,
  ): void;

  /** memberlist's TCP fallback ping: resolves true when the member acks before `deadlineMs`. */
  ping(toAddress: string, message: PingMessage, deadlineMs: number): Promise<boolean>;

  close(): Promise<void>;
}
