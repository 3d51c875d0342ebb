/**
 * The client's side of each call kind. A call object exists before it has a connection (while the
 * client dials), so deadlines and cancellation cover dialing too; `attach` binds it to a connection
 * and sends its opening frame. Every call ends exactly once, through `settle`.
 */
import { decodeMessage, encodeMessage, messageFlags } from './codec.js';
import { RpcError, statusFromNumber } from './errors.js';
import { FLAG_END, FrameKind, type FrameKindValue } from './frame.js';
import { TIMEOUT_MS_MAX } from './options.js';
import type { ResponseStream } from './service.js';
import {
  CreditGate,
  CreditReturner,
  INITIAL_WINDOW_BYTES,
  iteratorOf,
  MessageQueue,
} from './stream.js';

/** What a call needs from its connection. */
export interface CallHost {
  readonly options: { readonly frameBytesMax: number; readonly streamWindowBytes: number };
  send(
    kind: FrameKindValue,
    flags: number,
    callId: number,
    arg: number,
    method: Uint8Array | null,
    payload: Uint8Array | null,
  ): void;
  whenWritable(): Promise<void> | null;
  wouldOverflow(bytes: number): boolean;
  callFinished(call: ClientCall): void;
}

/** Encodes a request and checks it against the frame limit; throws RpcError. */
export function encodeRequest(message: unknown, frameBytesMax: number): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = encodeMessage(message);
  } catch (error) {
    throw new RpcError('INVALID_ARGUMENT', `request could not be encoded: ${String(error)}`);
  }
  if (bytes.length > frameBytesMax) {
    throw new RpcError(
      'RESOURCE_EXHAUSTED',
      `request of ${bytes.length} bytes exceeds the frame limit of ${frameBytesMax}`,
    );
  }
  return bytes;
}

/** Turns an ERROR frame into the RpcError it carries. */
export function errorFromFrame(arg: number, body: Buffer): RpcError {
  return new RpcError(statusFromNumber(arg), body.toString('utf8'));
}

export abstract class ClientCall {
  id = 0;
  readonly method: Uint8Array;
  protected host: CallHost | null = null;
  /** True for streaming calls (they count against streamsInFlightMax). */
  readonly streaming: boolean = false;
  protected finished = false;
  private readonly deadlineAt: number | undefined;
  private timer: NodeJS.Timeout | null = null;
  private readonly signal: AbortSignal | undefined;
  private abortListener: (() => void) | null = null;

  constructor(method: Uint8Array, timeoutMs: number | undefined, signal: AbortSignal | undefined) {
    this.method = method;
    this.signal = signal;
    if (timeoutMs !== undefined) {
      if (!(timeoutMs > 0 && timeoutMs <= TIMEOUT_MS_MAX))
        throw new RpcError('INVALID_ARGUMENT', `timeoutMs must be in (0, 2^31), got ${timeoutMs}`);
      this.deadlineAt = performance.now() + timeoutMs;
      this.timer = setTimeout(() => this.expire(timeoutMs), timeoutMs);
    }
    if (signal !== undefined) {
      this.abortListener = () =>
        this.abandon(
          new RpcError('CANCELLED', 'call cancelled by the caller', { cause: signal.reason }),
        );
      signal.addEventListener('abort', this.abortListener, { once: true });
    }
  }

  /** True once the call ended (answered, failed, cancelled or timed out). */
  get done(): boolean {
    return this.finished;
  }

  /** Remaining time to send to the server: whole ms, at least 1; 0 means no deadline. */
  remainingMs(): number {
    if (this.deadlineAt === undefined) return 0;
    return Math.max(1, Math.ceil(this.deadlineAt - performance.now()));
  }

  /** Binds the call to a connection under `id` and sends its opening frames. */
  attach(host: CallHost, id: number): void {
    this.host = host;
    this.id = id;
    this.open();
  }

  /** A frame for this call arrived. */
  abstract onFrame(kind: FrameKindValue, flags: number, arg: number, body: Buffer): void;

  /** Ends the call with `error` without telling the server (the connection is gone or never was). */
  fail(error: RpcError): void {
    if (this.settle()) this.failed(error);
  }

  /** Ends the call with `error` and tells the server to stop working on it. */
  abandon(error: RpcError): void {
    if (!this.settle()) return;
    this.host?.send(FrameKind.CANCEL, 0, this.id, error.status, null, null);
    this.failed(error);
  }

  protected abstract open(): void;
  protected abstract failed(error: RpcError): void;

  /** Marks the call finished exactly once; false when it already was. */
  protected settle(): boolean {
    if (this.finished) return false;
    this.finished = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.abortListener !== null) this.signal!.removeEventListener('abort', this.abortListener);
    this.abortListener = null;
    this.host?.callFinished(this);
    return true;
  }

  private expire(timeoutMs: number): void {
    this.timer = null;
    this.abandon(new RpcError('DEADLINE_EXCEEDED', `deadline of ${timeoutMs} ms exceeded`));
  }
}

/** One request, one response. */
export class UnaryCall extends ClientCall {
  readonly promise: Promise<unknown>;
  private resolve!: (value: unknown) => void;
  private reject!: (error: RpcError) => void;
  private readonly payload: Uint8Array;
  private readonly payloadFlags: number;

  constructor(
    method: Uint8Array,
    payload: Uint8Array,
    payloadFlags: number,
    timeoutMs?: number,
    signal?: AbortSignal,
  ) {
    super(method, timeoutMs, signal);
    this.payload = payload;
    this.payloadFlags = payloadFlags;
    this.promise = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  protected open(): void {
    const flags = FLAG_END | this.payloadFlags;
    this.host!.send(FrameKind.CALL, flags, this.id, this.remainingMs(), this.method, this.payload);
  }

  onFrame(kind: FrameKindValue, flags: number, arg: number, body: Buffer): void {
    if (kind === FrameKind.RESPONSE) {
      let value: unknown;
      try {
        value = decodeMessage(flags, body);
      } catch (error) {
        this.fail(new RpcError('INTERNAL', `response could not be decoded: ${String(error)}`));
        return;
      }
      if (this.settle()) this.resolve(value);
    } else if (kind === FrameKind.ERROR) {
      this.fail(errorFromFrame(arg, body));
    }
  }

  protected failed(error: RpcError): void {
    this.reject(error);
  }
}

/** One request, a flow-controlled stream of responses. */
export class ServerStreamCall extends ClientCall implements ResponseStream<unknown> {
  override readonly streaming = true;
  private readonly payload: Uint8Array;
  private readonly payloadFlags: number;
  private readonly queue: MessageQueue<unknown>;
  private returner: CreditReturner | null = null;
  /** Bytes received and not yet granted back. Invariant: < window before a receipt. */
  private outstandingBytes = 0;

  constructor(
    method: Uint8Array,
    payload: Uint8Array,
    payloadFlags: number,
    timeoutMs?: number,
    signal?: AbortSignal,
  ) {
    super(method, timeoutMs, signal);
    this.payload = payload;
    this.payloadFlags = payloadFlags;
    this.queue = new MessageQueue(
      (bytes) => this.returner?.consumedBytes(bytes),
      () => this.abandon(new RpcError('CANCELLED', 'stream abandoned by its reader')),
    );
  }

  protected open(): void {
    const host = this.host!;
    const windowBytes = host.options.streamWindowBytes;
    this.returner = new CreditReturner(windowBytes, (bytes) => {
      this.outstandingBytes -= bytes;
      if (!this.finished) host.send(FrameKind.WINDOW, 0, this.id, bytes, null, null);
    });
    const flags = FLAG_END | this.payloadFlags;
    host.send(FrameKind.CALL, flags, this.id, this.remainingMs(), this.method, this.payload);
    if (windowBytes > INITIAL_WINDOW_BYTES)
      host.send(FrameKind.WINDOW, 0, this.id, windowBytes - INITIAL_WINDOW_BYTES, null, null);
  }

  onFrame(kind: FrameKindValue, flags: number, arg: number, body: Buffer): void {
    if (kind === FrameKind.MESSAGE) {
      if (this.outstandingBytes >= this.host!.options.streamWindowBytes) {
        this.abandon(new RpcError('INTERNAL', 'server sent past its flow-control window'));
        return;
      }
      let value: unknown;
      try {
        value = decodeMessage(flags, body);
      } catch (error) {
        this.abandon(
          new RpcError('INTERNAL', `stream message could not be decoded: ${String(error)}`),
        );
        return;
      }
      this.outstandingBytes += body.length;
      this.queue.push(value, body.length);
    } else if (kind === FrameKind.RESPONSE) {
      if (this.settle()) this.queue.end();
    } else if (kind === FrameKind.ERROR) {
      this.fail(errorFromFrame(arg, body));
    }
  }

  cancel(): void {
    this.abandon(new RpcError('CANCELLED', 'stream cancelled by the caller'));
  }

  [Symbol.asyncIterator](): AsyncIterator<unknown> {
    return this.queue;
  }

  /** Response bytes received and not yet read, for tests and metrics. */
  get bufferedBytes(): number {
    return this.queue.bufferedBytes;
  }

  protected failed(error: RpcError): void {
    this.queue.fail(error);
  }
}

/** A flow-controlled stream of requests, one response. */
export class ClientStreamCall extends ClientCall {
  override readonly streaming = true;
  readonly promise: Promise<unknown>;
  private resolve!: (value: unknown) => void;
  private reject!: (error: RpcError) => void;
  private readonly source: AsyncIterable<unknown> | Iterable<unknown>;
  private readonly gate = new CreditGate();

  constructor(
    method: Uint8Array,
    source: AsyncIterable<unknown> | Iterable<unknown>,
    timeoutMs?: number,
    signal?: AbortSignal,
  ) {
    super(method, timeoutMs, signal);
    this.source = source;
    this.promise = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  protected open(): void {
    this.host!.send(FrameKind.CALL, 0, this.id, this.remainingMs(), this.method, null);
    void this.pump();
  }

  onFrame(kind: FrameKindValue, flags: number, arg: number, body: Buffer): void {
    if (kind === FrameKind.WINDOW) {
      this.gate.grant(arg);
    } else if (kind === FrameKind.RESPONSE) {
      let value: unknown;
      try {
        value = decodeMessage(flags, body);
      } catch (error) {
        this.fail(new RpcError('INTERNAL', `response could not be decoded: ${String(error)}`));
        return;
      }
      if (this.settle()) {
        this.gate.fail(new RpcError('CANCELLED', 'the server answered before the stream ended'));
        this.resolve(value);
      }
    } else if (kind === FrameKind.ERROR) {
      this.fail(errorFromFrame(arg, body));
    }
  }

  protected failed(error: RpcError): void {
    this.gate.fail(error);
    this.reject(error);
  }

  /** Pulls requests from the source only while the server has granted credit. */
  private async pump(): Promise<void> {
    const host = this.host!;
    let iterator: AsyncIterator<unknown> | Iterator<unknown> | null = null;
    try {
      iterator = iteratorOf(this.source);
      for (;;) {
        const credit = this.gate.ready();
        if (credit !== null) await credit;
        const writable = host.whenWritable();
        if (writable !== null) await writable;
        if (this.finished) break;
        const item = await iterator.next();
        if (this.finished) break;
        if (item.done === true) {
          host.send(FrameKind.MESSAGE, FLAG_END, this.id, 0, null, null);
          return;
        }
        const bytes = encodeRequest(item.value, host.options.frameBytesMax);
        this.gate.consume(bytes.length);
        host.send(FrameKind.MESSAGE, messageFlags(item.value), this.id, 0, null, bytes);
      }
    } catch (error) {
      if (!this.finished) this.abandon(RpcError.from(error));
    }
    if (iterator !== null) void Promise.resolve(iterator.return?.()).catch(() => {});
  }
}
