/**
 * The server side of HTTP/2 (RFC 9113), written for the gRPC front end (h2-grpc.ts).
 *
 * Why not node:http2: it hands a stream's trailers to nghttp2 only after the stream's data write
 * has completed, so every gRPC answer left the member as two socket writes, the trailers (which the
 * client waits for to finish the call) one or more event-loop turns after the message. At one
 * client that cost shoal's puts about 0.7 ms each against its own native protocol. Here a whole
 * answer (HEADERS, DATA, trailing HEADERS) is queued as bytes and everything queued in one turn of
 * the event loop leaves in one socket write.
 *
 * What a connection does, in RFC 9113's terms:
 * - Preface: the server's SETTINGS go out at once; the client's 24-byte preface and its first
 *   SETTINGS frame must arrive first.
 * - Frames: DATA, HEADERS + CONTINUATION (decoded with hpack.ts, keeping the client's dynamic
 *   table), PRIORITY (ignored), RST_STREAM, SETTINGS (applied and acknowledged), PING (answered),
 *   GOAWAY, WINDOW_UPDATE; unknown types are ignored, PUSH_PROMISE from a client is an error.
 * - Streams: odd ids, each new one above the last; a stream is open until both sides have ended it
 *   or either resets it. More than `concurrentStreamsMax` open streams are refused (REFUSED_STREAM).
 * - Flow control: what the server sends respects the client's connection and stream windows
 *   (data waits for WINDOW_UPDATE); what it receives is checked against the windows it announced,
 *   which it reopens as the data is handed on.
 * - Errors: a stream error resets that stream; a connection error sends GOAWAY with the code and
 *   closes the socket. Malformed input never throws out of this module.
 * - :authority is not checked (etcdctl sends a whole URL there for some calls; etcd accepts it).
 *
 * The encoder side of HPACK is fixed blocks: the server never adds to the client's dynamic table.
 */
import type { Duplex } from 'node:stream';
import { trace } from '../trace.js';
import { type HeaderField, HpackDecoder, HpackError } from './hpack.js';

/** RFC 9113 §6: frame types. */
export const H2FrameType = {
  data: 0x0,
  headers: 0x1,
  priority: 0x2,
  rstStream: 0x3,
  settings: 0x4,
  pushPromise: 0x5,
  ping: 0x6,
  goaway: 0x7,
  windowUpdate: 0x8,
  continuation: 0x9,
} as const;
const T = H2FrameType;

/** RFC 9113 §6: frame flags (END_STREAM and ACK share a bit on different frame types). */
export const H2Flag = {
  endStream: 0x1,
  ack: 0x1,
  endHeaders: 0x4,
  padded: 0x8,
  priority: 0x20,
} as const;
const flagEndStream = H2Flag.endStream;
const flagAck = H2Flag.ack;
const flagEndHeaders = H2Flag.endHeaders;
const flagPadded = H2Flag.padded;
const flagPriority = H2Flag.priority;

/** RFC 9113 §7: error codes. */
export const H2Error = {
  noError: 0x0,
  protocol: 0x1,
  internal: 0x2,
  flowControl: 0x3,
  settingsTimeout: 0x4,
  streamClosed: 0x5,
  frameSize: 0x6,
  refusedStream: 0x7,
  cancel: 0x8,
  compression: 0x9,
  enhanceYourCalm: 0xb,
} as const;

/** RFC 9113 §6.5.2: settings identifiers. */
export const H2Setting = {
  headerTableSize: 0x1,
  enablePush: 0x2,
  maxConcurrentStreams: 0x3,
  initialWindowSize: 0x4,
  maxFrameSize: 0x5,
  maxHeaderListSize: 0x6,
} as const;
const S = H2Setting;

/** An HPACK dynamic table size update to 0 (RFC 7541 §6.3). */
const TABLE_SIZE_ZERO = Buffer.from([0x20]);
/** The client connection preface (RFC 9113 §3.4). */
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const FRAME_HEADER_BYTES = 9;
/** The protocol's defaults (RFC 9113 §6.5.2, §6.9.2). */
export const DEFAULT_WINDOW = 65_535;
export const DEFAULT_FRAME_BYTES = 16_384;
const WINDOW_MAX = 2 ** 31 - 1;
const FRAME_BYTES_LIMIT = 16_777_215;

/** The window the server announces per stream and, after its first WINDOW_UPDATE, per connection. */
export const STREAM_RECEIVE_WINDOW = 1 << 20;
export const CONNECTION_RECEIVE_WINDOW = 16 << 20;
/** The largest frame payload the server accepts (it announces the protocol's default). */
const RECEIVE_FRAME_BYTES = DEFAULT_FRAME_BYTES;
/** The largest header block (HEADERS plus CONTINUATIONs) accepted. */
export const HEADER_BLOCK_BYTES_MAX = 64 * 1024;
/**
 * The largest decoded header list (RFC 9113 §6.5.2 counts name, value and 32 per field), the
 * value the server announces as SETTINGS_MAX_HEADER_LIST_SIZE. Entries of the dynamic table can
 * be referenced again and again, so the decoded list can be far larger than its block.
 */
export const HEADER_LIST_BYTES_MAX = 64 * 1024;
/**
 * Answer bytes one connection may hold (waiting for the client's windows, or in the socket's
 * buffer) before it refuses new streams with REFUSED_STREAM, which gRPC clients retry: a client
 * that sends requests but does not read the answers cannot make the member buffer without end.
 */
export const HELD_BYTES_MAX = 64 << 20;
/**
 * Bytes waiting in the socket's own buffer above which the connection stops reading: a client that
 * sends requests or PINGs but does not read what comes back cannot grow it without end. Reading
 * resumes when the socket drains (which depends only on the client reading).
 */
export const SOCKET_BACKLOG_BYTES_MAX = 8 << 20;
/** One stream's held answer bytes above which it is reset (ENHANCE_YOUR_CALM). */
export const STREAM_HELD_BYTES_MAX = 16 << 20;
/** A stream counts as backed up (its writer should wait for 'drain') above this many queued bytes. */
const STREAM_BACKLOG_BYTES = 64 * 1024;

/** A connection-level failure: GOAWAY with `code`, then the socket closes. */
class ConnectionError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

function frameHeader(type: number, flags: number, streamId: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  out.writeUIntBE(length, 0, 3);
  out[3] = type;
  out[4] = flags;
  out.writeUInt32BE(streamId, 5);
  return out;
}

function headerListBytes(fields: readonly HeaderField[]): number {
  let bytes = 0;
  for (const field of fields) bytes += field.name.length + field.value.length + 32;
  return bytes;
}

function u32(value: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(value, 0);
  return out;
}

/** What the gRPC layer sees of one request stream. All callbacks are optional. */
export class H2Stream {
  /** Request body bytes, in order. */
  onData: ((chunk: Buffer) => void) | undefined;
  /** The client ended its side (END_STREAM). */
  onEnd: (() => void) | undefined;
  /** The stream is gone before the server ended it: reset by the client, or the connection died. */
  onAbort: (() => void) | undefined;
  /** Queued output has left after `send*` returned false. */
  onDrain: (() => void) | undefined;

  /** The client has ended its side. */
  remoteEnded = false;
  /** The server has queued its END_STREAM (or reset the stream). */
  localEnded = false;
  /** Reset, or the connection closed: nothing more is sent or delivered. */
  closed = false;

  /** Bytes the client still lets this stream send (its stream window). */
  sendWindow: number;
  /** Received bytes handed on but not yet given back with WINDOW_UPDATE. */
  receivedUnacked = 0;
  /** Bytes the client may still send on this stream before its window is exhausted. */
  receiveWindow = STREAM_RECEIVE_WINDOW;
  /** Output held back by flow control: DATA payloads, then the trailing HEADERS block if any. */
  pending: Buffer[] = [];
  pendingBytes = 0;
  pendingEnd = false;
  pendingTrailers: Buffer | undefined;
  wantsDrain = false;

  constructor(
    readonly id: number,
    private readonly connection: H2Connection,
    sendWindow: number,
  ) {
    this.sendWindow = sendWindow;
  }

  /** Queues the response HEADERS block. */
  sendHeaders(block: Buffer, endStream: boolean): void {
    if (this.closed || this.localEnded) return;
    this.connection.queueHeaders(this.id, block, endStream);
    if (endStream) this.endLocal();
  }

  /**
   * Queues DATA (split and held back as the client's windows require). Returns false when the
   * stream is backed up: the writer should wait for `onDrain`.
   */
  sendData(bytes: Buffer, endStream = false): boolean {
    if (this.closed || this.localEnded) return false;
    if (bytes.length > 0) {
      this.pending.push(bytes);
      this.pendingBytes += bytes.length;
      this.connection.hold(bytes.length);
    }
    if (endStream) this.pendingEnd = true;
    this.connection.pump(this);
    if (this.backedUp) {
      this.wantsDrain = true;
      return false;
    }
    return true;
  }

  /** Output is held back by flow control, or the socket itself is not taking more. */
  get backedUp(): boolean {
    return this.pendingBytes > STREAM_BACKLOG_BYTES || this.connection.socketBackedUp;
  }

  /** Queues the trailing HEADERS block (END_STREAM) after all data. */
  sendTrailers(block: Buffer): void {
    if (this.closed || this.localEnded || this.pendingEnd) return;
    this.pendingTrailers = block;
    this.pendingEnd = true;
    this.connection.pump(this);
  }

  /** @internal The server's side is ended (everything up to END_STREAM is queued or sent). */
  endLocal(): void {
    this.localEnded = true;
    this.connection.release(this);
    // A finished answer to a client still sending: ask it to stop (RFC 9113 §8.1) and forget
    // the stream, as nghttp2 does.
    if (this.remoteEnded) this.connection.forget(this);
    else this.connection.resetStream(this, H2Error.noError, false);
  }
}

export interface H2ConnectionOptions {
  /** A new request: its decoded header fields; the body follows through the stream's callbacks. */
  onRequest: (stream: H2Stream, fields: HeaderField[], endStream: boolean) => void;
  /** Streams one connection may have open at once. */
  concurrentStreamsMax: number;
  /** The connection is gone (closed, failed or destroyed). */
  onClose?: () => void;
  /** An exception escaped a request callback (a bug); the connection is closed. */
  onInternalError?: (error: unknown) => void;
}

/** One HTTP/2 connection on a socket (or any duplex byte stream). */
export class H2Connection {
  readonly #socket: Duplex;
  readonly #options: H2ConnectionOptions;
  readonly #decoder = new HpackDecoder();
  readonly #streams = new Map<number, H2Stream>();
  /** Streams with output held back by flow control. */
  readonly #blocked = new Set<H2Stream>();

  #input: Buffer = Buffer.alloc(0);
  #prefaceSeen = false;
  #settingsSeen = false;
  /** Highest client stream id seen; lower unknown ids are closed streams. */
  #lastStreamId = 0;
  /** A header block being collected across CONTINUATION frames. */
  #headerBlock:
    | { streamId: number; endStream: boolean; parts: Buffer[]; bytes: number; framedBytes: number }
    | undefined;

  // The client's settings, as far as the server's sending is concerned.
  #peerFrameBytes = DEFAULT_FRAME_BYTES;
  /** The client's SETTINGS_HEADER_TABLE_SIZE (the server's encoder never fills the table). */
  #peerTableBytes = 4096;
  #peerInitialWindow = DEFAULT_WINDOW;
  #connectionSendWindow = DEFAULT_WINDOW;
  #connectionReceiveWindow = DEFAULT_WINDOW;
  #connectionReceivedUnacked = 0;

  #out: Buffer[] = [];
  #outBytes = 0;
  /** Answer bytes held back by flow control, over all streams. */
  #heldBytes = 0;
  #flushScheduled = false;
  /** Reading stopped while the socket's buffer is over SOCKET_BACKLOG_BYTES_MAX. */
  #readingPaused = false;
  /** The client lowered SETTINGS_HEADER_TABLE_SIZE: the next header block must say so first. */
  #tableSizeUpdatePending = false;
  /** GOAWAY sent (closing or failed): no new streams. */
  #goingAway = false;
  #closed = false;

  constructor(socket: Duplex, options: H2ConnectionOptions) {
    this.#socket = socket;
    this.#options = options;
    // Server preface: SETTINGS, then open the connection window to its full size.
    const settings = Buffer.allocUnsafe(6 * 4);
    let offset = 0;
    for (const [id, value] of [
      [S.maxConcurrentStreams, options.concurrentStreamsMax],
      [S.initialWindowSize, STREAM_RECEIVE_WINDOW],
      [S.maxHeaderListSize, HEADER_LIST_BYTES_MAX],
      [S.enablePush, 0],
    ] as const) {
      settings.writeUInt16BE(id, offset);
      settings.writeUInt32BE(value, offset + 2);
      offset += 6;
    }
    this.#queueFrame(T.settings, 0, 0, settings);
    this.#queueFrame(T.windowUpdate, 0, 0, u32(CONNECTION_RECEIVE_WINDOW - DEFAULT_WINDOW));
    this.#connectionReceiveWindow = CONNECTION_RECEIVE_WINDOW;
    socket.on('data', (chunk: Buffer) => {
      trace('sockin', chunk.length);
      this.#onBytes(chunk);
    });
    socket.on('drain', () => this.#onSocketDrain());
    socket.on('error', () => this.destroy());
    socket.on('close', () => this.destroy());
    socket.on('end', () => this.destroy());
    socket.resume();
    this.#flush();
  }

  /** Open streams. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** Answer bytes held back by the client's flow-control windows. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Stops taking new streams (GOAWAY with NO_ERROR naming the last stream accepted); the socket
   * closes once the open streams are done.
   */
  close(): void {
    if (this.#closed) return;
    this.#goAway(H2Error.noError);
    this.#closeIfIdle();
  }

  /** Closes the socket at once; open streams see `onAbort`. */
  destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#out = [];
    this.#outBytes = 0;
    const open = [...this.#streams.values()];
    this.#streams.clear();
    this.#blocked.clear();
    for (const stream of open) this.#abort(stream);
    this.#socket.destroy();
    this.#options.onClose?.();
  }

  // ---- output -------------------------------------------------------------------------------

  #queue(bytes: Buffer): void {
    if (this.#closed) return;
    this.#out.push(bytes);
    this.#outBytes += bytes.length;
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      // Everything queued by the current callback and its promise jobs leaves in one write.
      process.nextTick(() => this.#flush());
    }
  }

  /**
   * Queues one frame: its 9-byte header, then the payload as it is (no copy before the single
   * copy of everything queued this turn into the socket write).
   */
  #queueFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    this.#queue(frameHeader(type, flags, streamId, payload.length));
    if (payload.length > 0) this.#queue(payload);
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#closed || this.#out.length === 0) return;
    const out = this.#out.length === 1 ? this.#out[0]! : Buffer.concat(this.#out, this.#outBytes);
    this.#out = [];
    this.#outBytes = 0;
    this.#socket.write(out);
    trace('sockout', out.length);
    const waiting = (this.#socket as { writableLength?: number }).writableLength ?? 0;
    if (!this.#readingPaused && waiting > SOCKET_BACKLOG_BYTES_MAX) {
      this.#readingPaused = true;
      this.#socket.pause();
    }
  }

  /** @internal */
  queueHeaders(streamId: number, headerBlock: Buffer, endStream: boolean): void {
    let block = headerBlock;
    if (this.#tableSizeUpdatePending) {
      // RFC 7541 §4.2: after the client lowers the table size, the next block starts with a size
      // update. The server's blocks never use the dynamic table, so 0 suits any size.
      this.#tableSizeUpdatePending = false;
      block = Buffer.concat([TABLE_SIZE_ZERO, headerBlock]);
    }
    const flags = endStream ? flagEndStream : 0;
    if (block.length <= this.#peerFrameBytes) {
      this.#queueFrame(T.headers, flags | flagEndHeaders, streamId, block);
      return;
    }
    // A block larger than the client's frame size continues in CONTINUATION frames.
    let offset = 0;
    let type: number = T.headers;
    while (offset < block.length) {
      const end = Math.min(block.length, offset + this.#peerFrameBytes);
      const last = end === block.length;
      const frameFlags = (type === T.headers ? flags : 0) | (last ? flagEndHeaders : 0);
      this.#queueFrame(type, frameFlags, streamId, block.subarray(offset, end));
      type = T.continuation;
      offset = end;
    }
  }

  /** @internal Sends what the windows allow of a stream's held output. */
  pump(stream: H2Stream): void {
    if (stream.closed) return;
    while (stream.pendingBytes > 0) {
      const allowed = Math.min(
        stream.pendingBytes,
        stream.sendWindow,
        this.#connectionSendWindow,
        this.#peerFrameBytes,
      );
      if (allowed <= 0) {
        if (stream.pendingBytes > STREAM_HELD_BYTES_MAX) {
          this.resetStream(stream, H2Error.enhanceYourCalm, true);
          return;
        }
        this.#blocked.add(stream);
        this.#maybeDrain(stream);
        return;
      }
      const payload = this.#take(stream, allowed);
      stream.sendWindow -= allowed;
      this.#connectionSendWindow -= allowed;
      const ends = stream.pendingBytes === 0 && stream.pendingEnd && !stream.pendingTrailers;
      this.#queueFrame(T.data, ends ? flagEndStream : 0, stream.id, payload);
      if (ends) {
        this.#blocked.delete(stream);
        stream.endLocal();
        return;
      }
    }
    this.#blocked.delete(stream);
    if (stream.pendingEnd) {
      const trailers = stream.pendingTrailers;
      stream.pendingTrailers = undefined;
      if (trailers !== undefined) this.queueHeaders(stream.id, trailers, true);
      else this.#queueFrame(T.data, flagEndStream, stream.id, Buffer.alloc(0));
      stream.endLocal();
      return;
    }
    this.#maybeDrain(stream);
  }

  #maybeDrain(stream: H2Stream): void {
    if (stream.wantsDrain && !stream.closed && !stream.backedUp) {
      stream.wantsDrain = false;
      this.#notify(stream.onDrain);
    }
  }

  /** @internal A stream queued `bytes` of DATA. */
  hold(bytes: number): void {
    this.#heldBytes += bytes;
  }

  /** @internal Drops what an ended or closed stream still held. */
  release(stream: H2Stream): void {
    this.#heldBytes -= stream.pendingBytes;
    stream.pendingBytes = 0;
    stream.pending = [];
  }

  #take(stream: H2Stream, bytes: number): Buffer {
    const first = stream.pending[0]!;
    stream.pendingBytes -= bytes;
    this.#heldBytes -= bytes;
    if (first.length === bytes) {
      stream.pending.shift();
      return first;
    }
    if (first.length > bytes) {
      stream.pending[0] = first.subarray(bytes);
      return first.subarray(0, bytes);
    }
    const joined = Buffer.concat(stream.pending);
    stream.pending = joined.length > bytes ? [joined.subarray(bytes)] : [];
    return joined.subarray(0, bytes);
  }

  /** @internal */
  get socketBackedUp(): boolean {
    return (this.#socket as { writableNeedDrain?: boolean }).writableNeedDrain === true;
  }

  #onSocketDrain(): void {
    if (this.#readingPaused && !this.#closed) {
      this.#readingPaused = false;
      this.#socket.resume();
    }
    for (const stream of [...this.#streams.values()]) this.#maybeDrain(stream);
  }

  /** @internal */
  resetStream(stream: H2Stream, code: number, notify: boolean): void {
    this.release(stream);
    this.#queueFrame(T.rstStream, 0, stream.id, u32(code));
    this.#streams.delete(stream.id);
    this.#blocked.delete(stream);
    if (notify) this.#abort(stream);
    else stream.closed = true;
    this.#closeIfIdle();
  }

  /** @internal Both sides have ended the stream. */
  forget(stream: H2Stream): void {
    stream.closed = true;
    this.#streams.delete(stream.id);
    this.#blocked.delete(stream);
    this.#closeIfIdle();
  }

  #abort(stream: H2Stream): void {
    this.release(stream);
    if (stream.closed) return;
    stream.closed = true;
    this.#notify(stream.onAbort);
  }

  /** Runs a handler's callback; a bug in it is reported, and never escapes into socket events. */
  #notify(callback: (() => void) | undefined): void {
    if (callback === undefined) return;
    try {
      callback();
    } catch (error) {
      this.#options.onInternalError?.(error);
    }
  }

  #closeIfIdle(): void {
    if (this.#goingAway && this.#streams.size === 0 && !this.#closed) {
      this.#flush();
      this.#closed = true;
      this.#socket.end();
      // A client that keeps its side open after GOAWAY is cut off after a second.
      setTimeout(() => this.#socket.destroy(), 1000).unref();
      this.#options.onClose?.();
    }
  }

  #goAway(code: number, debug = ''): void {
    if (this.#goingAway) return;
    this.#goingAway = true;
    const payload = Buffer.allocUnsafe(8 + Buffer.byteLength(debug));
    payload.writeUInt32BE(this.#lastStreamId, 0);
    payload.writeUInt32BE(code, 4);
    payload.write(debug, 8);
    this.#queueFrame(T.goaway, 0, 0, payload);
  }

  #fail(error: ConnectionError): void {
    if (this.#closed) return;
    this.#goAway(error.code, error.message);
    this.#flush();
    const open = [...this.#streams.values()];
    this.#streams.clear();
    for (const stream of open) this.#abort(stream);
    this.#closed = true;
    this.#socket.end();
    // A client that does not close its side within a second is cut off.
    setTimeout(() => this.#socket.destroy(), 1000).unref();
    this.#options.onClose?.();
  }

  // ---- input --------------------------------------------------------------------------------

  #onBytes(chunk: Buffer): void {
    if (this.#closed) return;
    this.#input = this.#input.length === 0 ? chunk : Buffer.concat([this.#input, chunk]);
    try {
      this.#parse();
    } catch (error) {
      if (error instanceof ConnectionError) this.#fail(error);
      else if (error instanceof HpackError) {
        this.#fail(new ConnectionError(H2Error.compression, error.message));
      } else {
        // A bug in a request handler: this connection ends, the member goes on.
        this.#options.onInternalError?.(error);
        this.#fail(new ConnectionError(H2Error.internal, 'internal error'));
      }
    }
  }

  #parse(): void {
    let offset = 0;
    const input = this.#input;
    if (!this.#prefaceSeen) {
      const have = Math.min(input.length, PREFACE.length);
      if (!input.subarray(0, have).equals(PREFACE.subarray(0, have))) {
        throw new ConnectionError(H2Error.protocol, 'bad connection preface');
      }
      if (have < PREFACE.length) return;
      this.#prefaceSeen = true;
      offset = PREFACE.length;
    }
    while (!this.#closed && input.length - offset >= FRAME_HEADER_BYTES) {
      const length = input.readUIntBE(offset, 3);
      if (length > RECEIVE_FRAME_BYTES) {
        throw new ConnectionError(H2Error.frameSize, `frame of ${length} bytes is too large`);
      }
      const end = offset + FRAME_HEADER_BYTES + length;
      if (end > input.length) break;
      const type = input[offset + 3]!;
      const flags = input[offset + 4]!;
      const streamId = input.readUInt32BE(offset + 5) & 0x7fff_ffff;
      const payload = input.subarray(offset + FRAME_HEADER_BYTES, end);
      offset = end;
      this.#onFrame(type, flags, streamId, payload);
    }
    this.#input = offset === input.length ? Buffer.alloc(0) : input.subarray(offset);
  }

  #onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (!this.#settingsSeen && type !== T.settings) {
      throw new ConnectionError(H2Error.protocol, 'the first frame must be SETTINGS');
    }
    if (this.#headerBlock !== undefined && type !== T.continuation) {
      throw new ConnectionError(H2Error.protocol, 'a header block was interrupted');
    }
    switch (type) {
      case T.data:
        this.#onDataFrame(flags, streamId, payload);
        break;
      case T.headers:
        this.#onHeadersFrame(flags, streamId, payload);
        break;
      case T.continuation:
        this.#onContinuation(flags, streamId, payload);
        break;
      case T.priority:
        if (streamId === 0) throw new ConnectionError(H2Error.protocol, 'PRIORITY on stream 0');
        if (payload.length !== 5) this.#streamError(streamId, H2Error.frameSize);
        break;
      case T.rstStream:
        this.#onReset(streamId, payload);
        break;
      case T.settings:
        this.#onSettings(flags, streamId, payload);
        break;
      case T.pushPromise:
        throw new ConnectionError(H2Error.protocol, 'a client may not push');
      case T.ping:
        if (streamId !== 0) throw new ConnectionError(H2Error.protocol, 'PING on a stream');
        if (payload.length !== 8) throw new ConnectionError(H2Error.frameSize, 'PING size');
        if ((flags & flagAck) === 0) this.#queueFrame(T.ping, flagAck, 0, payload);
        break;
      case T.goaway:
        if (streamId !== 0) throw new ConnectionError(H2Error.protocol, 'GOAWAY on a stream');
        if (payload.length < 8) throw new ConnectionError(H2Error.frameSize, 'GOAWAY size');
        // The client will open no more streams; the open ones finish.
        this.#goingAway = true;
        this.#closeIfIdle();
        break;
      case T.windowUpdate:
        this.#onWindowUpdate(streamId, payload);
        break;
      default:
        // RFC 9113 §4.1: unknown frame types are ignored.
        break;
    }
  }

  /** Strips padding (RFC 9113 §6.1, §6.2); `fixed` bytes follow the pad length (priority). */
  #unpad(flags: number, payload: Buffer, fixed: number): Buffer {
    let start = 0;
    let padding = 0;
    if (flags & flagPadded) {
      if (payload.length < 1) throw new ConnectionError(H2Error.frameSize, 'padded frame size');
      padding = payload[0]!;
      start = 1;
    }
    start += fixed;
    if (padding + start > payload.length) {
      throw new ConnectionError(H2Error.protocol, 'padding exceeds the frame');
    }
    return payload.subarray(start, payload.length - padding);
  }

  #onDataFrame(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(H2Error.protocol, 'DATA on stream 0');
    // The whole frame, padding included, counts against the windows.
    this.#connectionReceiveWindow -= payload.length;
    if (this.#connectionReceiveWindow < 0) {
      throw new ConnectionError(H2Error.flowControl, 'connection window exceeded');
    }
    this.#giveBackConnection(payload.length);
    const stream = this.#streams.get(streamId);
    if (stream === undefined || stream.remoteEnded) {
      if (streamId > this.#lastStreamId) {
        throw new ConnectionError(H2Error.protocol, 'DATA on an idle stream');
      }
      // A closed stream, usually one the server answered or reset while the client was still
      // sending: such frames are ignored (RFC 9113 §5.1).
      return;
    }
    stream.receiveWindow -= payload.length;
    if (stream.receiveWindow < 0) {
      this.resetStream(stream, H2Error.flowControl, true);
      return;
    }
    const body = this.#unpad(flags, payload, 0);
    const end = (flags & flagEndStream) !== 0;
    if (end) stream.remoteEnded = true;
    else this.#giveBackStream(stream, payload.length);
    if (body.length > 0 && !stream.closed) stream.onData?.(body);
    if (end) this.#remoteEnd(stream);
  }

  #remoteEnd(stream: H2Stream): void {
    if (!stream.closed) stream.onEnd?.();
    if (stream.localEnded && !stream.closed) this.forget(stream);
  }

  /** Reopens the connection window once half of it is used. */
  #giveBackConnection(bytes: number): void {
    this.#connectionReceivedUnacked += bytes;
    if (this.#connectionReceivedUnacked >= CONNECTION_RECEIVE_WINDOW / 2) {
      this.#queueFrame(T.windowUpdate, 0, 0, u32(this.#connectionReceivedUnacked));
      this.#connectionReceiveWindow += this.#connectionReceivedUnacked;
      this.#connectionReceivedUnacked = 0;
    }
  }

  #giveBackStream(stream: H2Stream, bytes: number): void {
    stream.receivedUnacked += bytes;
    if (stream.receivedUnacked >= STREAM_RECEIVE_WINDOW / 2) {
      this.#queueFrame(T.windowUpdate, 0, stream.id, u32(stream.receivedUnacked));
      stream.receiveWindow += stream.receivedUnacked;
      stream.receivedUnacked = 0;
    }
  }

  #onHeadersFrame(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0 || streamId % 2 === 0) {
      throw new ConnectionError(H2Error.protocol, `HEADERS on stream ${streamId}`);
    }
    const fragment = this.#unpad(flags, payload, flags & flagPriority ? 5 : 0);
    const block = {
      streamId,
      endStream: (flags & flagEndStream) !== 0,
      parts: [fragment],
      bytes: fragment.length,
      framedBytes: FRAME_HEADER_BYTES + payload.length,
    };
    if (flags & flagEndHeaders) this.#onHeaderBlock(block.streamId, block.endStream, fragment);
    else this.#headerBlock = block;
  }

  #onContinuation(flags: number, streamId: number, payload: Buffer): void {
    const block = this.#headerBlock;
    if (block === undefined || block.streamId !== streamId) {
      throw new ConnectionError(H2Error.protocol, 'CONTINUATION without a header block');
    }
    block.parts.push(payload);
    block.bytes += payload.length;
    // Frame headers count too, so a flood of empty CONTINUATION frames is bounded as well.
    block.framedBytes += FRAME_HEADER_BYTES + payload.length;
    if (block.framedBytes > HEADER_BLOCK_BYTES_MAX) {
      throw new ConnectionError(H2Error.enhanceYourCalm, 'header block too large');
    }
    if (flags & flagEndHeaders) {
      this.#headerBlock = undefined;
      this.#onHeaderBlock(streamId, block.endStream, Buffer.concat(block.parts, block.bytes));
    }
  }

  #onHeaderBlock(streamId: number, endStream: boolean, block: Buffer): void {
    if (block.length > HEADER_BLOCK_BYTES_MAX) {
      throw new ConnectionError(H2Error.enhanceYourCalm, 'header block too large');
    }
    // Decode even blocks that will be refused: the dynamic table must follow the client's.
    const fields = this.#decoder.decode(block);
    const existing = this.#streams.get(streamId);
    if (existing !== undefined) {
      // Trailers from the client: they must end the stream.
      if (existing.remoteEnded || !endStream) {
        throw new ConnectionError(H2Error.protocol, 'HEADERS on an open stream without END_STREAM');
      }
      existing.remoteEnded = true;
      this.#remoteEnd(existing);
      return;
    }
    // A closed stream (trailers after the server reset it): ignored, as for DATA.
    if (streamId <= this.#lastStreamId) return;
    this.#lastStreamId = streamId;
    const socketHeld = (this.#socket as { writableLength?: number }).writableLength ?? 0;
    if (this.#heldBytes + socketHeld > HELD_BYTES_MAX) {
      this.#queueFrame(T.rstStream, 0, streamId, u32(H2Error.refusedStream));
      return;
    }
    if (headerListBytes(fields) > HEADER_LIST_BYTES_MAX) {
      this.#queueFrame(T.rstStream, 0, streamId, u32(H2Error.enhanceYourCalm));
      return;
    }
    if (this.#goingAway) return;
    if (this.#streams.size >= this.#options.concurrentStreamsMax) {
      this.#queueFrame(T.rstStream, 0, streamId, u32(H2Error.refusedStream));
      return;
    }
    const stream = new H2Stream(streamId, this, this.#peerInitialWindow);
    stream.remoteEnded = endStream;
    this.#streams.set(streamId, stream);
    this.#options.onRequest(stream, fields, endStream);
    if (endStream && !stream.closed) this.#remoteEnd(stream);
  }

  #onReset(streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(H2Error.protocol, 'RST_STREAM on stream 0');
    if (payload.length !== 4) throw new ConnectionError(H2Error.frameSize, 'RST_STREAM size');
    if (streamId > this.#lastStreamId) {
      throw new ConnectionError(H2Error.protocol, 'RST_STREAM on an idle stream');
    }
    const stream = this.#streams.get(streamId);
    if (stream === undefined) return;
    this.#streams.delete(streamId);
    this.#blocked.delete(stream);
    this.#abort(stream);
    this.#closeIfIdle();
  }

  #onSettings(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new ConnectionError(H2Error.protocol, 'SETTINGS on a stream');
    if (flags & flagAck) {
      if (payload.length !== 0) throw new ConnectionError(H2Error.frameSize, 'SETTINGS ACK size');
      return;
    }
    if (payload.length % 6 !== 0) throw new ConnectionError(H2Error.frameSize, 'SETTINGS size');
    this.#settingsSeen = true;
    for (let offset = 0; offset < payload.length; offset += 6) {
      const id = payload.readUInt16BE(offset);
      const value = payload.readUInt32BE(offset + 2);
      switch (id) {
        case S.enablePush:
          if (value > 1) throw new ConnectionError(H2Error.protocol, 'ENABLE_PUSH must be 0 or 1');
          break;
        case S.initialWindowSize: {
          if (value > WINDOW_MAX) {
            throw new ConnectionError(H2Error.flowControl, 'INITIAL_WINDOW_SIZE too large');
          }
          // §6.9.2: the change applies to every open stream's window, by the difference.
          const delta = value - this.#peerInitialWindow;
          this.#peerInitialWindow = value;
          for (const stream of this.#streams.values()) {
            stream.sendWindow += delta;
            if (stream.sendWindow > WINDOW_MAX) {
              throw new ConnectionError(H2Error.flowControl, 'stream window overflow');
            }
          }
          break;
        }
        case S.maxFrameSize:
          if (value < DEFAULT_FRAME_BYTES || value > FRAME_BYTES_LIMIT) {
            throw new ConnectionError(H2Error.protocol, 'MAX_FRAME_SIZE out of range');
          }
          this.#peerFrameBytes = value;
          break;
        case S.headerTableSize:
          if (value < this.#peerTableBytes) this.#tableSizeUpdatePending = true;
          this.#peerTableBytes = value;
          break;
        default:
          // MAX_CONCURRENT_STREAMS limits pushes, which the server never makes. Unknown: ignored.
          break;
      }
    }
    this.#queueFrame(T.settings, flagAck, 0, Buffer.alloc(0));
    this.#pumpBlocked();
  }

  #onWindowUpdate(streamId: number, payload: Buffer): void {
    if (payload.length !== 4) throw new ConnectionError(H2Error.frameSize, 'WINDOW_UPDATE size');
    const increment = payload.readUInt32BE(0) & 0x7fff_ffff;
    if (streamId === 0) {
      if (increment === 0) throw new ConnectionError(H2Error.protocol, 'zero window increment');
      this.#connectionSendWindow += increment;
      if (this.#connectionSendWindow > WINDOW_MAX) {
        throw new ConnectionError(H2Error.flowControl, 'connection window overflow');
      }
      this.#pumpBlocked();
      return;
    }
    const stream = this.#streams.get(streamId);
    if (stream === undefined) {
      if (streamId > this.#lastStreamId) {
        throw new ConnectionError(H2Error.protocol, 'WINDOW_UPDATE on an idle stream');
      }
      return;
    }
    if (increment === 0) {
      this.resetStream(stream, H2Error.protocol, true);
      return;
    }
    stream.sendWindow += increment;
    if (stream.sendWindow > WINDOW_MAX) {
      this.resetStream(stream, H2Error.flowControl, true);
      return;
    }
    this.pump(stream);
  }

  #pumpBlocked(): void {
    for (const stream of [...this.#blocked]) {
      if (this.#connectionSendWindow <= 0) return;
      this.pump(stream);
    }
  }

  /** Resets a stream the server does not (or no longer) track. */
  #streamError(streamId: number, code: number): void {
    const stream = this.#streams.get(streamId);
    if (stream !== undefined) {
      this.resetStream(stream, code, true);
      return;
    }
    this.#queueFrame(T.rstStream, 0, streamId, u32(code));
  }
}
