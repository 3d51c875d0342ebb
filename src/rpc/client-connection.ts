/**
 * The client end of one connection: numbers calls, routes answer frames to them, sends one-way
 * messages on the cheapest path there is, and drains when the server sends GOAWAY or the client
 * closes.
 */
import type { Socket } from 'node:net';
import { type CallHost, type ClientCall, encodeRequest } from './client-calls.js';
import { messageFlags } from './codec.js';
import { Connection } from './connection.js';
import { RpcError } from './errors.js';
import { FrameKind, type FrameKindValue } from './frame.js';
import type { ConnectionOptions } from './options.js';

/** Call ids wrap around at 2^32; 0 is reserved for connection-level frames. */
const CALL_ID_MAX = 0xffff_ffff;

export class ClientConnection extends Connection implements CallHost {
  private readonly calls = new Map<number, ClientCall>();
  private nextCallId = 1;
  private draining = false;
  /** Streaming calls among `calls`. Invariant: streamCount <= options.streamsInFlightMax. */
  private streamCount = 0;
  private readonly onGone: (connection: ClientConnection) => void;

  constructor(
    socket: Socket,
    options: ConnectionOptions,
    onGone: (connection: ClientConnection) => void,
  ) {
    super(socket, options, false);
    this.onGone = onGone;
  }

  /** True when this connection takes new calls (open, and neither side is draining it). */
  get usable(): boolean {
    return !this.closed && !this.draining;
  }

  get callsInFlight(): number {
    return this.calls.size;
  }

  /** Starts `call` on this connection; fails it at once when a limit is reached. */
  start(call: ClientCall, openingBytes: number): void {
    if (call.done) return;
    if (!this.usable) {
      call.fail(new RpcError('UNAVAILABLE', `connection to ${this.peer} is closing`));
      return;
    }
    if (this.calls.size >= this.options.callsInFlightMax) {
      call.fail(
        new RpcError(
          'RESOURCE_EXHAUSTED',
          `too many calls in flight to ${this.peer} (limit ${this.options.callsInFlightMax})`,
        ),
      );
      return;
    }
    if (call.streaming && this.streamCount >= this.options.streamsInFlightMax) {
      call.fail(
        new RpcError(
          'RESOURCE_EXHAUSTED',
          `too many streams open to ${this.peer} (limit ${this.options.streamsInFlightMax})`,
        ),
      );
      return;
    }
    if (this.wouldOverflow(openingBytes)) {
      call.fail(this.overflowError());
      return;
    }
    const id = this.allocateCallId();
    this.calls.set(id, call);
    if (call.streaming) this.streamCount++;
    call.attach(this, id);
  }

  /** Sends a one-way message. Throws RpcError when it cannot be queued. */
  oneWay(method: Uint8Array, message: unknown): void {
    if (!this.usable) throw new RpcError('UNAVAILABLE', `connection to ${this.peer} is closing`);
    const bytes = encodeRequest(message, this.options.frameBytesMax);
    if (this.wouldOverflow(bytes.length)) throw this.overflowError();
    this.send(FrameKind.ONEWAY, messageFlags(message), 0, 0, method, bytes);
  }

  /** Sends already-encoded one-way messages that waited for this connection to open. */
  sendEncodedOneWay(method: Uint8Array, flags: number, bytes: Uint8Array): void {
    this.send(FrameKind.ONEWAY, flags, 0, 0, method, bytes);
  }

  callFinished(call: ClientCall): void {
    this.calls.delete(call.id);
    if (call.streaming) this.streamCount--;
    // A CANCEL may be queued right after this returns; end the socket only after that.
    if (this.draining) queueMicrotask(() => this.endIfDrained());
  }

  /** Stops taking calls and closes once the calls in flight have finished. */
  drain(): void {
    if (this.draining || this.closed) return;
    this.draining = true;
    this.send(FrameKind.GOAWAY, 0, 0, 0, null, null);
    this.endIfDrained();
  }

  private endIfDrained(): void {
    if (this.calls.size === 0) this.endGracefully();
  }

  protected onCallFrame(
    kind: FrameKindValue,
    flags: number,
    callId: number,
    arg: number,
    _methodLength: number,
    body: Buffer,
  ): void {
    switch (kind) {
      case FrameKind.RESPONSE:
      case FrameKind.ERROR:
      case FrameKind.MESSAGE:
      case FrameKind.WINDOW:
        // A frame for a call that ended here already (cancelled, timed out) is dropped.
        this.calls.get(callId)?.onFrame(kind, flags, arg, body);
        return;
      case FrameKind.GOAWAY:
        // The server is shutting down: finish what is in flight, send new calls elsewhere.
        this.draining = true;
        this.endIfDrained();
        return;
      default:
        this.protocolError(`a server sent frame kind ${kind}`);
    }
  }

  protected onOversizedFrame(kind: FrameKindValue, callId: number, bodyLength: number): boolean {
    const callScoped =
      kind === FrameKind.RESPONSE || kind === FrameKind.MESSAGE || kind === FrameKind.ERROR;
    if (!callScoped || callId === 0) return false;
    const limit = this.options.frameBytesMax;
    this.log.warn(
      { peer: this.peer, kind, callId, bodyLength, limit },
      'rpc: skipped oversized frame',
    );
    this.calls
      .get(callId)
      ?.abandon(
        new RpcError(
          'RESOURCE_EXHAUSTED',
          `response frame of ${bodyLength} bytes exceeds the client's limit of ${limit}`,
        ),
      );
    return true;
  }

  protected onClosed(error: RpcError): void {
    const calls = [...this.calls.values()];
    this.calls.clear();
    for (const call of calls) call.fail(error);
    this.onGone(this);
  }

  private overflowError(): RpcError {
    return new RpcError(
      'RESOURCE_EXHAUSTED',
      `more than ${this.options.bufferedBytesMax} bytes queued for ${this.peer}; the peer is not keeping up`,
    );
  }

  private allocateCallId(): number {
    // The map holds at most callsInFlightMax ids, far fewer than 2^32, so this loop ends quickly.
    let id = this.nextCallId;
    while (this.calls.has(id)) id = id === CALL_ID_MAX ? 1 : id + 1;
    this.nextCallId = id === CALL_ID_MAX ? 1 : id + 1;
    return id;
  }
}
