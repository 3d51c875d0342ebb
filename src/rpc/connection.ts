/**
 * One end of a TCP connection carrying shoal RPC frames: what client and server connections share.
 * It decodes incoming frames, coalesces outgoing ones into one socket write (see `send`), answers
 * and sends keepalive pings, and turns every failure (socket error, protocol error,
 * keepalive timeout) into a single close with an RpcError the subclass hands to its open calls.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { RpcError } from './errors.js';
import { FrameDecoder, FrameError, FrameKind, type FrameKindValue, FrameWriter } from './frame.js';
import type { ConnectionOptions } from './options.js';

/** Frames per write from which a connection counts as busy and batches a whole turn (`send`). */
const BUSY_FLUSH_FRAMES = 4;

export abstract class Connection {
  readonly peer: string;
  protected readonly socket: Socket;
  readonly options: ConnectionOptions;
  protected readonly log: Logger;
  private readonly decoder: FrameDecoder;
  private readonly writer = new FrameWriter();
  private flushScheduled = false;
  /** Frames queued since the last flush, and how many the last flush wrote. */
  private framesQueued = 0;
  private lastFlushFrames = 0;
  private readonly flushBound = () => this.flush();
  private closeError: RpcError | null = null;
  private keepaliveTimer: NodeJS.Timeout | null = null;
  /**
   * performance.now() when the outstanding PING was queued; NaN when none is outstanding. NaN, not
   * -1: V8 gives a number field the representation of the first value stored in it, and -1 would
   * make it a small-integer field that the first ping's fractional time widens, changing every
   * connection's hidden class and deoptimizing the send path in the middle of the load, seconds
   * after the connection opened (seen in every member, 6-10 s into a benchmark run).
   */
  private pingSentMs = Number.NaN;
  private pingSequence = 0;
  private drainWaiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  /** Servers stop reading a peer that does not read its responses (see bufferedBytesMax). */
  private readonly pauseReadsWhenCongested: boolean;
  private readsPaused = false;

  constructor(socket: Socket, options: ConnectionOptions, pauseReadsWhenCongested: boolean) {
    this.socket = socket;
    this.options = options;
    this.peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.log = options.logger;
    this.pauseReadsWhenCongested = pauseReadsWhenCongested;
    this.decoder = new FrameDecoder(
      (kind, flags, callId, arg, methodLength, body) =>
        this.onFrame(kind, flags, callId, arg, methodLength, body),
      options.frameBytesMax,
      (kind, callId, bodyLength) => this.onOversizedFrame(kind, callId, bodyLength),
    );
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.onDrain());
    socket.on('error', (error) =>
      this.destroy(
        new RpcError('UNAVAILABLE', `connection to ${this.peer} failed: ${error.message}`),
      ),
    );
    socket.on('close', () =>
      this.destroy(new RpcError('UNAVAILABLE', `connection to ${this.peer} closed`)),
    );
    this.startKeepalive();
  }

  get closed(): boolean {
    return this.closeError !== null;
  }

  /** Bytes queued for this connection and not yet taken by the kernel. */
  get bufferedBytes(): number {
    return this.writer.pendingBytes + this.socket.writableLength;
  }

  /** True when queuing `bytes` more would pass bufferedBytesMax. */
  wouldOverflow(bytes: number): boolean {
    return this.bufferedBytes + bytes > this.options.bufferedBytesMax;
  }

  /**
   * Queues one frame. A busy connection (the last write carried BUSY_FLUSH_FRAMES frames or more)
   * writes once the event loop has run every I/O callback of this turn (setImmediate), so the
   * frames of many callbacks share one write. A quiet one writes as soon as the callback that
   * queued the frame and its promise jobs are done (process.nextTick): a lone call's frame does
   * not wait for the rest of the turn. Measured (2026-12-04, put-probe, native client, one
   * client, alternating pairs): 7 pairs, 5 faster, about 2 % more puts/s on average; at 256
   * clients no change. nextTick for every connection cost the echo benchmark (bench:rpc) about
   * 9 % at 256 concurrent calls; with the busy rule it was within 4 % of setImmediate.
   */
  send(
    kind: FrameKindValue,
    flags: number,
    callId: number,
    arg: number,
    method: Uint8Array | null,
    payload: Uint8Array | null,
  ): void {
    if (this.closeError !== null) return;
    this.writer.append(kind, flags, callId, arg, method, payload);
    this.framesQueued++;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      if (this.lastFlushFrames >= BUSY_FLUSH_FRAMES) setImmediate(this.flushBound);
      else process.nextTick(this.flushBound);
    }
  }

  /**
   * Null when the connection can take more bytes now; otherwise a promise that resolves once the
   * socket drains below bufferedBytesMax (and rejects if the connection closes first).
   */
  whenWritable(): Promise<void> | null {
    if (this.closeError !== null) return Promise.reject(this.closeError);
    if (this.bufferedBytes < this.options.bufferedBytesMax) return null;
    return new Promise((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
  }

  /** Writes everything queued, as one gathered write. */
  flush(): void {
    this.flushScheduled = false;
    if (this.closeError !== null) return;
    const chunks = this.writer.take();
    if (chunks.length === 0) return;
    this.lastFlushFrames = this.framesQueued;
    this.framesQueued = 0;
    if (chunks.length === 1) {
      this.socket.write(chunks[0]!);
    } else {
      this.socket.cork();
      for (const chunk of chunks) this.socket.write(chunk);
      this.socket.uncork();
    }
    if (this.pauseReadsWhenCongested && !this.readsPaused && this.congested()) {
      this.readsPaused = true;
      this.socket.pause();
    }
    // The kernel may have taken everything at once, in which case no 'drain' event follows.
    this.releaseDrainWaiters();
  }

  /** Closes the connection now; every open call fails with `error`. Idempotent. */
  destroy(error: RpcError): void {
    if (this.closeError !== null) return;
    this.closeError = error;
    if (this.keepaliveTimer !== null) clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = null;
    this.socket.destroy();
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const waiter of waiters) waiter.reject(error);
    this.onClosed(error);
  }

  /** Writes what is queued, then half-closes; the peer closes its side and 'close' follows. */
  protected endGracefully(): void {
    if (this.closeError !== null) return;
    this.flush();
    this.socket.end();
  }

  /** Handles a frame that is not connection-level (calls, streams, GOAWAY). */
  protected abstract onCallFrame(
    kind: FrameKindValue,
    flags: number,
    callId: number,
    arg: number,
    methodLength: number,
    body: Buffer,
  ): void;

  /**
   * A well-formed frame over frameBytesMax arrived. Return true to skip its body and fail only the
   * call it belongs to; false closes the connection.
   */
  protected abstract onOversizedFrame(
    kind: FrameKindValue,
    callId: number,
    bodyLength: number,
  ): boolean;

  /** Fails every open call with `error`; called once. */
  protected abstract onClosed(error: RpcError): void;

  /** Closes the connection because the peer broke the protocol, logging why. */
  protected protocolError(reason: string, oversized = false): void {
    this.log.warn({ peer: this.peer, reason }, 'rpc: closing connection after protocol error');
    this.destroy(
      new RpcError(oversized ? 'RESOURCE_EXHAUSTED' : 'INTERNAL', `protocol error: ${reason}`),
    );
  }

  private congested(): boolean {
    return this.bufferedBytes >= this.options.bufferedBytesMax;
  }

  private onData(chunk: Buffer): void {
    if (this.closeError !== null) return;
    try {
      this.decoder.push(chunk);
    } catch (error) {
      if (error instanceof FrameError) {
        this.protocolError(error.message, error.oversized);
      } else {
        // A bug in a frame handler: keep the process alive, drop only this connection.
        this.log.error({ peer: this.peer, err: error }, 'rpc: frame handler failed');
        this.destroy(RpcError.from(error));
      }
    }
  }

  private onFrame(
    kind: FrameKindValue,
    flags: number,
    callId: number,
    arg: number,
    methodLength: number,
    body: Buffer,
  ): void {
    if (this.closeError !== null) return;
    if (kind === FrameKind.PING) {
      this.send(FrameKind.PONG, 0, 0, arg, null, null);
    } else if (kind === FrameKind.PONG) {
      if (arg === this.pingSequence) this.pingSentMs = Number.NaN;
    } else {
      this.onCallFrame(kind, flags, callId, arg, methodLength, body);
    }
  }

  private onDrain(): void {
    if (this.readsPaused && !this.congested()) {
      this.readsPaused = false;
      this.socket.resume();
    }
    this.releaseDrainWaiters();
  }

  private releaseDrainWaiters(): void {
    if (this.drainWaiters.length === 0 || this.congested()) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const waiter of waiters) waiter.resolve();
  }

  /**
   * Sends a PING every keepaliveIntervalMs and closes the connection when one stays unanswered for
   * keepaliveTimeoutMs. An answer needs the peer to read and to write, so this catches peers that
   * crashed without a FIN, hung processes and half-open connections alike.
   */
  private startKeepalive(): void {
    const { keepaliveIntervalMs, keepaliveTimeoutMs } = this.options;
    if (keepaliveIntervalMs === 0) return;
    const tickMs = Math.max(5, Math.floor(Math.min(keepaliveIntervalMs, keepaliveTimeoutMs) / 2));
    let lastPingMs = performance.now();
    this.keepaliveTimer = setInterval(() => {
      const nowMs = performance.now();
      if (!Number.isNaN(this.pingSentMs)) {
        if (nowMs - this.pingSentMs >= keepaliveTimeoutMs) {
          this.log.warn({ peer: this.peer, keepaliveTimeoutMs }, 'rpc: keepalive timed out');
          this.destroy(
            new RpcError(
              'UNAVAILABLE',
              `peer ${this.peer} did not answer a keepalive ping within ${keepaliveTimeoutMs} ms`,
            ),
          );
        }
      } else if (nowMs - lastPingMs >= keepaliveIntervalMs) {
        lastPingMs = nowMs;
        this.pingSequence = (this.pingSequence + 1) >>> 0;
        this.pingSentMs = nowMs;
        this.send(FrameKind.PING, 0, 0, this.pingSequence, null, null);
      }
    }, tickMs);
    this.keepaliveTimer.unref();
  }
}
