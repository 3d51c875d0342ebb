/**
 * The server end of one connection: opens a ServerCall per CALL frame, routes stream frames to it,
 * runs one-way handlers, and drains gracefully when the server shuts down. Errors scoped to one call
 * (unknown method, undecodable or invalid request, limits) answer that call with an ERROR frame and
 * leave the connection serving; protocol violations close the connection.
 */
import type { Socket } from 'node:net';
import { decodeMessage } from './codec.js';
import { Connection } from './connection.js';
import { RpcError, statusFromNumber } from './errors.js';
import { FLAG_END, FLAG_RAW, FrameKind, type FrameKindValue } from './frame.js';
import type { MethodTable, RegisteredMethod } from './method-table.js';
import type { ConnectionOptions } from './options.js';
import { ServerCall } from './server-call.js';
import type { CallContext } from './service.js';

export class ServerConnection extends Connection {
  readonly calls = new Map<number, ServerCall>();
  private readonly methods: MethodTable;
  private readonly onGone: (connection: ServerConnection) => void;
  private draining = false;
  /** Streaming calls among `calls`. Invariant: streamCount <= options.streamsInFlightMax. */
  private streamCount = 0;
  /** Aborts when the connection closes; the signal one-way handlers see. */
  private readonly lifetime = new AbortController();
  private readonly oneWayContexts = new Map<string, CallContext>();

  constructor(
    socket: Socket,
    options: ConnectionOptions,
    methods: MethodTable,
    onGone: (connection: ServerConnection) => void,
  ) {
    super(socket, options, true);
    this.methods = methods;
    this.onGone = onGone;
  }

  /** Sends GOAWAY, refuses new calls, and closes once the open calls have finished. */
  drain(): void {
    if (this.draining || this.closed) return;
    this.draining = true;
    this.send(FrameKind.GOAWAY, 0, 0, 0, null, null);
    this.closeIfDrained();
  }

  /** Logs why one call was refused; the connection goes on serving. */
  logCallError(method: string, reason: string): void {
    this.log.warn({ peer: this.peer, method, reason }, 'rpc: call rejected');
  }

  /** Called by a ServerCall when it finishes. */
  callFinished(call: ServerCall): void {
    this.calls.delete(call.id);
    if (call.streaming) this.streamCount--;
    // The call's last frame is queued right after this returns; end the socket only after that.
    if (this.draining) queueMicrotask(() => this.closeIfDrained());
  }

  protected onCallFrame(
    kind: FrameKindValue,
    flags: number,
    callId: number,
    arg: number,
    methodLength: number,
    body: Buffer,
  ): void {
    switch (kind) {
      case FrameKind.CALL:
        this.openCall(flags, callId, arg, methodLength, body);
        return;
      case FrameKind.ONEWAY:
        this.runOneWay(flags, methodLength, body);
        return;
      case FrameKind.MESSAGE:
        // Frames for a call that already finished (cancelled, deadline, early answer) are dropped.
        this.calls.get(callId)?.onMessage(flags, body);
        return;
      case FrameKind.WINDOW:
        this.calls.get(callId)?.onWindow(arg);
        return;
      case FrameKind.CANCEL: {
        const code = statusFromNumber(arg);
        const reason =
          code === 'DEADLINE_EXCEEDED' ? 'deadline exceeded' : 'cancelled by the client';
        this.calls.get(callId)?.cancel(new RpcError(code, `call ${reason}`));
        return;
      }
      case FrameKind.GOAWAY:
        return; // The client is closing; it sends nothing new, calls in flight finish.
      default:
        this.protocolError(`a client sent frame kind ${kind}`);
    }
  }

  protected onOversizedFrame(kind: FrameKindValue, callId: number, bodyLength: number): boolean {
    const callScoped = kind === FrameKind.CALL || kind === FrameKind.MESSAGE;
    if (!(callScoped && callId !== 0) && kind !== FrameKind.ONEWAY) return false;
    const limit = this.options.frameBytesMax;
    this.log.warn(
      { peer: this.peer, kind, callId, bodyLength, limit },
      'rpc: skipped oversized frame',
    );
    if (kind === FrameKind.ONEWAY) return true;
    const error = new RpcError(
      'RESOURCE_EXHAUSTED',
      `request frame of ${bodyLength} bytes exceeds the server's limit of ${limit}`,
    );
    const call = this.calls.get(callId);
    if (call !== undefined) call.fail(error);
    else if (kind === FrameKind.CALL)
      this.send(FrameKind.ERROR, FLAG_END, callId, error.status, null, Buffer.from(error.message));
    return true;
  }

  protected onClosed(error: RpcError): void {
    this.lifetime.abort(error);
    for (const call of this.calls.values()) call.cancel(error);
    this.calls.clear();
    this.onGone(this);
  }

  private openCall(
    flags: number,
    callId: number,
    timeoutMs: number,
    methodLength: number,
    body: Buffer,
  ) {
    if (callId === 0 || this.calls.has(callId)) {
      this.protocolError(`call id ${callId} is zero or already in use`);
      return;
    }
    const method = this.methods.lookup(body, methodLength);
    const refusal = this.refusal(body, methodLength, method);
    if (refusal !== null) {
      if (refusal.code === 'UNIMPLEMENTED')
        this.log.warn({ peer: this.peer, reason: refusal.message }, 'rpc: call rejected');
      this.send(
        FrameKind.ERROR,
        FLAG_END,
        callId,
        refusal.status,
        null,
        Buffer.from(refusal.message),
      );
      return;
    }
    const call = new ServerCall(this, callId, method!, timeoutMs);
    this.calls.set(callId, call);
    if (call.streaming) this.streamCount++;
    call.start(flags, body.subarray(methodLength));
  }

  /** Why a new call cannot run, or null when it can. */
  private refusal(
    body: Buffer,
    methodLength: number,
    method: RegisteredMethod | undefined,
  ): RpcError | null {
    if (method === undefined) {
      const path = body.toString('utf8', 0, methodLength);
      return new RpcError('UNIMPLEMENTED', `unknown method ${path}`);
    }
    const path = method.path;
    if (method.kind === 'oneWay')
      return new RpcError('UNIMPLEMENTED', `method ${path} is one-way and takes no calls`);
    if (this.draining) return new RpcError('UNAVAILABLE', 'server is shutting down');
    if (this.calls.size >= this.options.callsInFlightMax) {
      return new RpcError(
        'RESOURCE_EXHAUSTED',
        `too many calls in flight on this connection (limit ${this.options.callsInFlightMax})`,
      );
    }
    const streaming = method.kind === 'serverStream' || method.kind === 'clientStream';
    if (streaming && this.streamCount >= this.options.streamsInFlightMax) {
      return new RpcError(
        'RESOURCE_EXHAUSTED',
        `too many streams open on this connection (limit ${this.options.streamsInFlightMax})`,
      );
    }
    return null;
  }

  private runOneWay(flags: number, methodLength: number, body: Buffer): void {
    const method = this.methods.lookup(body, methodLength);
    if (method === undefined || method.kind !== 'oneWay') {
      const path = body.toString('utf8', 0, methodLength);
      this.log.warn(
        { peer: this.peer, method: path },
        'rpc: dropped one-way message for unknown method',
      );
      return;
    }
    let message: unknown;
    try {
      message = decodeMessage(flags & FLAG_RAW, body, methodLength);
    } catch (error) {
      this.log.warn(
        { peer: this.peer, method: method.path, err: error },
        'rpc: dropped undecodable one-way message',
      );
      return;
    }
    if (method.validate !== undefined && !method.validate(message)) {
      this.log.warn(
        { peer: this.peer, method: method.path },
        'rpc: dropped invalid one-way message',
      );
      return;
    }
    try {
      const result = method.handler(message, this.oneWayContext(method.path));
      if (result instanceof Promise) result.catch((error) => this.oneWayFailed(method.path, error));
    } catch (error) {
      this.oneWayFailed(method.path, error);
    }
  }

  private oneWayFailed(path: string, error: unknown): void {
    this.log.warn({ peer: this.peer, method: path, err: error }, 'rpc: one-way handler failed');
  }

  private oneWayContext(path: string): CallContext {
    let context = this.oneWayContexts.get(path);
    if (context === undefined) {
      context = {
        signal: this.lifetime.signal,
        deadline: undefined,
        peer: this.peer,
        method: path,
      };
      this.oneWayContexts.set(path, context);
    }
    return context;
  }

  private closeIfDrained(): void {
    if (this.calls.size === 0) this.endGracefully();
  }
}
