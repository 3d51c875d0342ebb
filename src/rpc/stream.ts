/**
 * The two halves of a flow-controlled stream.
 *
 * Flow control is credit based, per stream and in bytes, like HTTP/2's windows: the receiver starts
 * each stream with INITIAL_WINDOW_BYTES of credit for the sender and grants more (WINDOW frames) as
 * its application consumes messages. The sender may send a message whenever its credit is positive
 * and subtracts the message size, so it overdraws by at most one message. A receiver therefore never
 * holds more than `window + frameBytesMax` bytes for a stream, however slow its reader is, and a
 * sender whose reader is slow simply stops pulling from its source.
 */
import { RpcError } from './errors.js';

/** Credit every stream starts with, known to both sides without a frame (protocol constant). */
export const INITIAL_WINDOW_BYTES = 64 * 1024;

/** Receiving half: buffers messages until the application pulls them, then returns credit. */
export class MessageQueue<T> implements AsyncIterableIterator<T> {
  private values: T[] = [];
  private sizes: number[] = [];
  private head = 0;
  private bufferedBytesCount = 0;
  private ended = false;
  private error: RpcError | null = null;
  private waiter: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | null =
    null;
  /** Called with the size of each message the application takes (to grant credit back). */
  private readonly onConsumed: (bytes: number) => void;
  /** Called when the application stops iterating before the end (to cancel the stream). */
  private readonly onAbandon: () => void;

  constructor(onConsumed: (bytes: number) => void, onAbandon: () => void) {
    this.onConsumed = onConsumed;
    this.onAbandon = onAbandon;
  }

  /** Bytes received and not yet taken by the application. */
  get bufferedBytes(): number {
    return this.bufferedBytesCount;
  }

  get finished(): boolean {
    return this.ended || this.error !== null;
  }

  push(value: T, bytes: number): void {
    if (this.finished) return;
    const waiter = this.waiter;
    if (waiter !== null) {
      this.waiter = null;
      waiter.resolve({ value, done: false });
      this.onConsumed(bytes);
      return;
    }
    this.values.push(value);
    this.sizes.push(bytes);
    this.bufferedBytesCount += bytes;
  }

  /** The sender closed its half: the iterator ends after the buffered messages. */
  end(): void {
    if (this.finished) return;
    this.ended = true;
    if (this.waiter !== null && this.head === this.values.length) {
      const waiter = this.waiter;
      this.waiter = null;
      waiter.resolve({ value: undefined, done: true });
    }
  }

  /** The stream failed: the iterator throws `error` (buffered messages are dropped). */
  fail(error: RpcError): void {
    if (this.finished) return;
    this.error = error;
    this.values = [];
    this.sizes = [];
    this.head = 0;
    this.bufferedBytesCount = 0;
    if (this.waiter !== null) {
      const waiter = this.waiter;
      this.waiter = null;
      waiter.reject(error);
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.head < this.values.length) {
      const value = this.values[this.head]!;
      const bytes = this.sizes[this.head]!;
      this.head++;
      if (this.head === this.values.length) {
        this.values = [];
        this.sizes = [];
        this.head = 0;
      }
      this.bufferedBytesCount -= bytes;
      this.onConsumed(bytes);
      return Promise.resolve({ value, done: false });
    }
    if (this.error !== null) return Promise.reject(this.error);
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    if (this.waiter !== null) return Promise.reject(new Error('concurrent next() on a stream'));
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<T>> {
    if (!this.finished) {
      this.fail(new RpcError('CANCELLED', 'stream abandoned by its reader'));
      this.onAbandon();
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** Sending half: tracks the credit the receiver granted; the sender awaits it before each message. */
export class CreditGate {
  private credit: number;
  private waiter: { resolve: () => void; reject: (e: unknown) => void } | null = null;
  private error: RpcError | null = null;

  constructor(initialBytes = INITIAL_WINDOW_BYTES) {
    this.credit = initialBytes;
  }

  get available(): number {
    return this.credit;
  }

  /** Resolves at once when credit is positive, else when a grant arrives; rejects on failure. */
  ready(): Promise<void> | null {
    if (this.error !== null) return Promise.reject(this.error);
    if (this.credit > 0) return null;
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  consume(bytes: number): void {
    this.credit -= bytes;
  }

  grant(bytes: number): void {
    this.credit += bytes;
    if (this.credit > 0 && this.waiter !== null) {
      const waiter = this.waiter;
      this.waiter = null;
      waiter.resolve();
    }
  }

  fail(error: RpcError): void {
    if (this.error !== null) return;
    this.error = error;
    if (this.waiter !== null) {
      const waiter = this.waiter;
      this.waiter = null;
      waiter.reject(error);
    }
  }
}

/** Grants credit back in batches: one WINDOW frame per half window consumed, not per message. */
export class CreditReturner {
  private consumed = 0;
  private readonly thresholdBytes: number;
  private readonly send: (bytes: number) => void;

  constructor(windowBytes: number, send: (bytes: number) => void) {
    this.thresholdBytes = Math.max(1, windowBytes >>> 1);
    this.send = send;
  }

  consumedBytes(bytes: number): void {
    // An empty message still costs the sender nothing, but count it so credit keeps moving.
    this.consumed += bytes;
    if (this.consumed >= this.thresholdBytes) {
      const grant = this.consumed;
      this.consumed = 0;
      this.send(grant);
    }
  }
}

/** Returns an async iterator over a sync or async iterable. */
export function iteratorOf<T>(
  source: AsyncIterable<T> | Iterable<T>,
): AsyncIterator<T> | Iterator<T> {
  if (Symbol.asyncIterator in source) return source[Symbol.asyncIterator]();
  return source[Symbol.iterator]();
}
