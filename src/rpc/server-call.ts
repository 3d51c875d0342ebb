/**
 * One call on the server: decodes its request(s), runs the handler, enforces the deadline the
 * client sent, applies flow control to streams in both directions and answers exactly once. It is
 * also the handler's CallContext; the AbortSignal is created only if the handler asks for it.
 */
import { decodeMessage, encodeMessage, messageFlags } from './codec.js';
import { RpcError } from './errors.js';
import { FLAG_END, FLAG_RAW, FrameKind } from './frame.js';
import type { RegisteredMethod } from './method-table.js';
import { TIMEOUT_MS_MAX } from './options.js';
import type { ServerConnection } from './server-connection.js';
import type { CallContext } from './service.js';
import {
  CreditGate,
  CreditReturner,
  INITIAL_WINDOW_BYTES,
  iteratorOf,
  MessageQueue,
} from './stream.js';

/** Marks a request that failed to decode or validate (the call has already been answered). */
const INVALID: unique symbol = Symbol('invalid request');

export class ServerCall implements CallContext {
  readonly id: number;
  readonly deadline: number | undefined;
  private readonly connection: ServerConnection;
  private readonly registered: RegisteredMethod;
  private controller: AbortController | null = null;
  private abortReason: RpcError | null = null;
  private timer: NodeJS.Timeout | null = null;
  private finished = false;
  /** Server streams: credit the client granted for response messages. */
  private gate: CreditGate | null = null;
  /** Client streams: request messages received and not yet taken by the handler. */
  private queue: MessageQueue<unknown> | null = null;
  private returner: CreditReturner | null = null;
  /** Client streams: bytes received and not yet granted back. Invariant: < window before a receipt. */
  private outstandingBytes = 0;

  constructor(
    connection: ServerConnection,
    id: number,
    registered: RegisteredMethod,
    timeoutMs: number,
  ) {
    this.connection = connection;
    this.id = id;
    this.registered = registered;
    if (timeoutMs > 0) {
      // Node timers hold at most 2^31-1 ms (about 24 days); a longer deadline is as good as none.
      timeoutMs = Math.min(timeoutMs, TIMEOUT_MS_MAX);
      this.deadline = performance.now() + timeoutMs;
      this.timer = setTimeout(() => this.expire(timeoutMs), timeoutMs);
    } else {
      this.deadline = undefined;
    }
  }

  get signal(): AbortSignal {
    if (this.controller === null) {
      this.controller = new AbortController();
      if (this.abortReason !== null) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  /** True for server- and client-streaming calls (they count against streamsInFlightMax). */
  get streaming(): boolean {
    return this.registered.kind === 'serverStream' || this.registered.kind === 'clientStream';
  }

  get peer(): string {
    return this.connection.peer;
  }

  get method(): string {
    return this.registered.path;
  }

  /** Runs the handler for the CALL frame's flags and payload. */
  start(flags: number, payload: Buffer): void {
    const kind = this.registered.kind;
    if (kind === 'clientStream') {
      if (payload.length !== 0 || (flags & FLAG_RAW) !== 0) {
        this.fail(
          new RpcError('INVALID_ARGUMENT', `${this.method} takes its requests as a stream`),
        );
        return;
      }
      this.startClientStream(flags);
      return;
    }
    if ((flags & FLAG_END) === 0 || (payload.length === 0 && (flags & FLAG_RAW) === 0)) {
      this.fail(new RpcError('INVALID_ARGUMENT', `${this.method} needs exactly one request`));
      return;
    }
    const request = this.decodeRequest(flags, payload);
    if (request === INVALID) return;
    if (kind === 'unary') this.runUnary(request);
    else void this.pumpServerStream(request);
  }

  /** A stream message from the client (client streams only). */
  onMessage(flags: number, payload: Buffer): void {
    const queue = this.queue;
    if (queue === null) {
      this.fail(new RpcError('INVALID_ARGUMENT', `${this.method} takes no stream messages`));
      return;
    }
    const hasMessage = payload.length !== 0 || (flags & FLAG_RAW) !== 0;
    if (hasMessage) {
      if (this.outstandingBytes >= this.connection.options.streamWindowBytes) {
        this.fail(new RpcError('RESOURCE_EXHAUSTED', 'client sent past its flow-control window'));
        return;
      }
      const message = this.decodeRequest(flags, payload);
      if (message === INVALID) return;
      this.outstandingBytes += payload.length;
      queue.push(message, payload.length);
    }
    if ((flags & FLAG_END) !== 0) queue.end();
  }

  /** A WINDOW frame: the client granted credit for response messages. */
  onWindow(bytes: number): void {
    this.gate?.grant(bytes);
  }

  /** The client cancelled, or the connection died: stop the handler, answer nothing. */
  cancel(reason: RpcError): void {
    if (this.finish()) this.abort(reason);
  }

  private expire(timeoutMs: number): void {
    this.timer = null;
    const error = new RpcError(
      'DEADLINE_EXCEEDED',
      `deadline of ${timeoutMs} ms exceeded on the server`,
    );
    if (this.finish()) {
      this.sendError(error);
      this.abort(error);
    }
  }

  private runUnary(request: unknown): void {
    let result: unknown;
    try {
      result = this.registered.handler(request, this);
    } catch (error) {
      this.fail(RpcError.from(error));
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (value) => this.respond(value),
        (error) => this.fail(RpcError.from(error)),
      );
    } else {
      this.respond(result);
    }
  }

  private startClientStream(flags: number): void {
    const windowBytes = this.connection.options.streamWindowBytes;
    this.returner = new CreditReturner(windowBytes, (bytes) => {
      this.outstandingBytes -= bytes;
      if (!this.finished) this.connection.send(FrameKind.WINDOW, 0, this.id, bytes, null, null);
    });
    const returner = this.returner;
    this.queue = new MessageQueue<unknown>(
      (bytes) => returner.consumedBytes(bytes),
      () => {},
    );
    if (windowBytes > INITIAL_WINDOW_BYTES)
      this.connection.send(
        FrameKind.WINDOW,
        0,
        this.id,
        windowBytes - INITIAL_WINDOW_BYTES,
        null,
        null,
      );
    if ((flags & FLAG_END) !== 0) this.queue.end();
    this.runUnary(this.queue);
  }

  /** Pulls response messages from the handler only while the client has granted credit. */
  private async pumpServerStream(request: unknown): Promise<void> {
    const gate = new CreditGate();
    this.gate = gate;
    let iterator: AsyncIterator<unknown> | Iterator<unknown> | null = null;
    try {
      iterator = iteratorOf(
        this.registered.handler(request, this) as AsyncIterable<unknown> | Iterable<unknown>,
      );
      for (;;) {
        const credit = gate.ready();
        if (credit !== null) await credit;
        const writable = this.connection.whenWritable();
        if (writable !== null) await writable;
        if (this.finished) break;
        const item = await iterator.next();
        if (this.finished) break;
        if (item.done === true) {
          this.finishWith(FrameKind.RESPONSE, FLAG_END, 0, null);
          return;
        }
        const sent = this.sendMessage(item.value);
        if (!sent) break;
      }
    } catch (error) {
      this.fail(RpcError.from(error));
    }
    // The call ended early (cancel, deadline, error): let the generator run its finally blocks.
    if (iterator !== null) void Promise.resolve(iterator.return?.()).catch(() => {});
  }

  /** Sends one response-stream message; false when the call failed instead. */
  private sendMessage(value: unknown): boolean {
    const bytes = this.encode(value);
    if (bytes === null) return false;
    this.gate!.consume(bytes.length);
    this.connection.send(FrameKind.MESSAGE, messageFlags(value), this.id, 0, null, bytes);
    return true;
  }

  private respond(value: unknown): void {
    if (this.finished) return;
    const bytes = this.encode(value);
    if (bytes !== null)
      this.finishWith(FrameKind.RESPONSE, FLAG_END | messageFlags(value), 0, bytes);
  }

  /** Encodes a response; on failure answers the call with the error and returns null. */
  private encode(value: unknown): Uint8Array | null {
    let bytes: Uint8Array;
    try {
      bytes = encodeMessage(value);
    } catch (error) {
      this.fail(new RpcError('INTERNAL', `response could not be encoded: ${String(error)}`));
      return null;
    }
    const limit = this.connection.options.frameBytesMax;
    if (bytes.length > limit) {
      this.fail(
        new RpcError(
          'RESOURCE_EXHAUSTED',
          `response of ${bytes.length} bytes exceeds the frame limit of ${limit}`,
        ),
      );
      return null;
    }
    return bytes;
  }

  /** Answers the call with `error` and aborts the handler. */
  fail(error: RpcError): void {
    if (this.finish()) {
      this.sendError(error);
      // Stop whatever the handler is still doing (a stream being consumed or produced).
      this.abort(error);
    }
  }

  private sendError(error: RpcError): void {
    this.connection.send(
      FrameKind.ERROR,
      FLAG_END,
      this.id,
      error.status,
      null,
      Buffer.from(error.message),
    );
  }

  private finishWith(
    kind: typeof FrameKind.RESPONSE,
    flags: number,
    arg: number,
    payload: Uint8Array | null,
  ) {
    if (this.finish()) this.connection.send(kind, flags, this.id, arg, null, payload);
  }

  /** Marks the call finished exactly once; returns false if it already was. */
  private finish(): boolean {
    if (this.finished) return false;
    this.finished = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.connection.callFinished(this);
    return true;
  }

  private abort(reason: RpcError): void {
    if (this.abortReason !== null) return;
    this.abortReason = reason;
    this.controller?.abort(reason);
    this.gate?.fail(reason);
    this.queue?.fail(reason);
  }

  /** Decodes and validates a request; on failure answers the call and returns INVALID. */
  private decodeRequest(flags: number, payload: Buffer): unknown {
    let value: unknown;
    try {
      value = decodeMessage(flags, payload);
    } catch (error) {
      this.connection.logCallError(this.method, `undecodable request: ${String(error)}`);
      this.fail(new RpcError('INVALID_ARGUMENT', `request to ${this.method} could not be decoded`));
      return INVALID;
    }
    const validate = this.registered.validate;
    if (validate !== undefined && !validate(value)) {
      this.connection.logCallError(this.method, 'request failed validation');
      this.fail(new RpcError('INVALID_ARGUMENT', `request to ${this.method} failed validation`));
      return INVALID;
    }
    return value;
  }
}
