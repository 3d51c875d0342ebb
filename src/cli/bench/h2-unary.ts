/**
 * A small gRPC client for unary calls, for the load generator: one HTTP/2 connection over TCP,
 * requests and responses as raw message bytes.
 *
 * Why not grpc-js: in a one-client put loop the generator spent about 300 µs of CPU per call, about
 * a third of what all three members of the cluster under test spent, and allocated about 33 KB per
 * call, of which about 3 MB survived each young-generation collection: its collections paused it
 * for 5-12 ms about three times a second, on the same two cores as the members. Those pauses land
 * in the latency of whatever system is being measured. This client does only what a unary call
 * needs, and allocates little per call.
 *
 * What it speaks (RFC 9113, gRPC over HTTP/2):
 * - the preface, SETTINGS (ours: no push, large receive windows; the peer's: initial window, frame
 *   size) with acknowledgements, PING acknowledgements (grpc-go servers probe bandwidth with
 *   PINGs), GOAWAY (calls the server will not answer fail with UNAVAILABLE), RST_STREAM,
 *   CONTINUATION, padding and priority fields;
 * - flow control both ways: request DATA waits for the peer's windows; received DATA is given back
 *   with WINDOW_UPDATE once half a window was consumed;
 * - requests as HEADERS and DATA, the header fields added to the server's HPACK table on first use
 *   and sent as its indexes after (as grpc-js and grpc-go send theirs); answers as HEADERS, DATA
 *   and trailers, or trailers only, decoded with the server's HPACK decoder (hpack.ts).
 * Everything one event-loop turn queues leaves in one socket write.
 */
import net from 'node:net';
import { type HeaderField, HpackDecoder, HpackIndexingEncoder } from '../../server/etcd/hpack.js';
import {
  DEFAULT_FRAME_BYTES,
  DEFAULT_WINDOW,
  FRAME_HEADER_BYTES,
  H2Flag,
  H2FrameType,
  H2Setting,
  PREFACE,
} from '../../server/etcd/http2.js';

const FrameType = H2FrameType;
const Flag = H2Flag;
const Setting = H2Setting;
/** Our receive window per stream and (after the first WINDOW_UPDATE) for the connection. */
const RECEIVE_WINDOW_BYTES = 16 << 20;
/** Largest frame accepted from the peer (our SETTINGS_MAX_FRAME_SIZE stays at the default). */
const RECEIVE_FRAME_BYTES_MAX = DEFAULT_FRAME_BYTES;
/** Largest answer accepted (as grpc-js's max receive length in connections.ts). */
const RESPONSE_BYTES_MAX = 64 * 1024 * 1024;

/** gRPC status codes used here (the rest arrive from the server as numbers). */
export const GrpcStatus = { ok: 0, unknown: 2, internal: 13, unavailable: 14 } as const;

/** A failed call: `code` is the gRPC status (as grpc-js's ServiceError carries it). */
export class UnaryCallError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export type UnaryCallback = (error: UnaryCallError | null, response?: Buffer) => void;

interface Call {
  readonly id: number;
  readonly callback: UnaryCallback;
  /** Request DATA not yet sent (waiting for flow-control window). */
  pending: Buffer | null;
  sendWindow: number;
  status: number | null;
  statusMessage: string;
  body: Buffer[];
  bodyBytes: number;
  headersSeen: boolean;
}

export class H2UnaryConnection {
  readonly target: string;
  readonly #socket: net.Socket;
  readonly #decoder = new HpackDecoder();
  readonly #calls = new Map<number, Call>();
  readonly #encoder = new HpackIndexingEncoder();
  readonly #headerFields = new Map<string, readonly HeaderField[]>();
  #nextStreamId = 1;
  #out: Buffer[] = [];
  #flushScheduled = false;
  #input: Buffer = Buffer.alloc(0);
  #peerInitialWindow = DEFAULT_WINDOW;
  #peerFrameBytes = DEFAULT_FRAME_BYTES;
  #connectionSendWindow = DEFAULT_WINDOW;
  #connectionConsumed = 0;
  /** Calls whose DATA waits for window, in order. */
  readonly #blocked: Call[] = [];
  /** Header block being continued: stream id, flags, fragments. */
  #continuing: { streamId: number; endStream: boolean; fragments: Buffer[] } | null = null;
  #failure: UnaryCallError | null = null;
  /** Streams above this id will not be answered (GOAWAY). */
  #lastServedStreamId = Number.POSITIVE_INFINITY;
  #onSettings: (() => void) | null;

  private constructor(target: string, socket: net.Socket, onSettings: () => void) {
    this.target = target;
    this.#socket = socket;
    this.#onSettings = onSettings;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    socket.on('error', (error) => this.#fail(`connection to ${target}: ${error.message}`));
    socket.on('close', () => this.#fail(`connection to ${target} closed`));
  }

  /** Connects and waits for the server's SETTINGS; rejects after `timeoutMs`. */
  static connect(target: string, timeoutMs: number): Promise<H2UnaryConnection> {
    const colon = target.lastIndexOf(':');
    const host = target.slice(0, colon).replace(/^\[|\]$/g, '');
    const port = Number(target.slice(colon + 1));
    if (colon < 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
      return Promise.reject(new Error(`${target}: expected host:port`));
    }
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      let connection: H2UnaryConnection | null = null;
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`cannot connect to ${target}: no HTTP/2 settings within ${timeoutMs} ms`));
      }, timeoutMs);
      const failed = (error: Error) => {
        clearTimeout(timer);
        reject(new Error(`cannot connect to ${target}: ${error.message}`));
      };
      socket.once('error', failed);
      socket.once('connect', () => {
        connection = new H2UnaryConnection(target, socket, () => {
          clearTimeout(timer);
          socket.off('error', failed);
          resolve(connection!);
        });
        connection.#start();
      });
    });
  }

  /** Calls `path` with one request message; the callback gets the answer's message bytes. */
  call(path: string, request: Buffer, callback: UnaryCallback): void {
    if (this.#failure !== null) {
      const failure = this.#failure;
      queueMicrotask(() => callback(failure));
      return;
    }
    const id = this.#nextStreamId;
    this.#nextStreamId += 2;
    const call: Call = {
      id,
      callback,
      pending: null,
      sendWindow: this.#peerInitialWindow,
      status: null,
      statusMessage: '',
      body: [],
      bodyBytes: 0,
      headersSeen: false,
    };
    this.#calls.set(id, call);
    this.#frame(FrameType.headers, Flag.endHeaders, id, this.#headerBlock(path));
    const message = Buffer.allocUnsafe(5 + request.length);
    message[0] = 0;
    message.writeUInt32BE(request.length, 1);
    request.copy(message, 5);
    call.pending = message;
    this.#sendData(call);
  }

  /** Sends GOAWAY and closes; calls still open fail with UNAVAILABLE. */
  close(): void {
    if (this.#failure === null) {
      const payload = Buffer.alloc(8);
      this.#frame(FrameType.goaway, 0, 0, payload);
      this.#flush();
    }
    this.#fail('connection closed by the client');
    this.#socket.end();
  }

  #start(): void {
    const settings = Buffer.alloc(12);
    settings.writeUInt16BE(Setting.enablePush, 0);
    settings.writeUInt32BE(0, 2);
    settings.writeUInt16BE(Setting.initialWindowSize, 6);
    settings.writeUInt32BE(RECEIVE_WINDOW_BYTES, 8);
    this.#out.push(PREFACE);
    this.#frame(FrameType.settings, 0, 0, settings);
    this.#windowUpdate(0, RECEIVE_WINDOW_BYTES - DEFAULT_WINDOW);
    this.#flush();
  }

  /** The request's header block: fields indexed in the server's table after their first use. */
  #headerBlock(path: string): Buffer {
    let fields = this.#headerFields.get(path);
    if (fields === undefined) {
      fields = [
        { name: ':method', value: 'POST' },
        { name: ':scheme', value: 'http' },
        { name: ':path', value: path },
        { name: ':authority', value: this.target },
        { name: 'content-type', value: 'application/grpc' },
        { name: 'te', value: 'trailers' },
      ];
      this.#headerFields.set(path, fields);
    }
    return this.#encoder.encode(fields);
  }

  /** Sends as much of the call's request as the windows allow; the rest waits. */
  #sendData(call: Call): void {
    const message = call.pending;
    if (message === null) return;
    let offset = 0;
    while (offset < message.length) {
      const room = Math.min(
        this.#connectionSendWindow,
        call.sendWindow,
        this.#peerFrameBytes,
        message.length - offset,
      );
      if (room <= 0) break;
      const last = offset + room === message.length;
      this.#frame(
        FrameType.data,
        last ? Flag.endStream : 0,
        call.id,
        message.subarray(offset, offset + room),
      );
      this.#connectionSendWindow -= room;
      call.sendWindow -= room;
      offset += room;
    }
    call.pending = offset === message.length ? null : message.subarray(offset);
    if (call.pending !== null && !this.#blocked.includes(call)) this.#blocked.push(call);
  }

  #unblock(): void {
    for (const call of this.#blocked.splice(0)) {
      if (this.#calls.has(call.id)) this.#sendData(call);
    }
  }

  #frame(type: number, flags: number, streamId: number, payload: Buffer): void {
    const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
    header.writeUIntBE(payload.length, 0, 3);
    header[3] = type;
    header[4] = flags;
    header.writeUInt32BE(streamId, 5);
    this.#out.push(header, payload);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      process.nextTick(() => this.#flush());
    }
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#out.length === 0 || this.#socket.destroyed) {
      this.#out = [];
      return;
    }
    const bytes = this.#out.length === 1 ? this.#out[0]! : Buffer.concat(this.#out);
    this.#out = [];
    this.#socket.write(bytes);
  }

  #windowUpdate(streamId: number, increment: number): void {
    const payload = Buffer.allocUnsafe(4);
    payload.writeUInt32BE(increment, 0);
    this.#frame(FrameType.windowUpdate, 0, streamId, payload);
  }

  #receive(chunk: Buffer): void {
    let input = this.#input.length === 0 ? chunk : Buffer.concat([this.#input, chunk]);
    let offset = 0;
    try {
      while (input.length - offset >= FRAME_HEADER_BYTES) {
        const length = input.readUIntBE(offset, 3);
        if (length > RECEIVE_FRAME_BYTES_MAX) {
          throw new Error(`frame of ${length} bytes exceeds ${RECEIVE_FRAME_BYTES_MAX}`);
        }
        if (input.length - offset < FRAME_HEADER_BYTES + length) break;
        const type = input[offset + 3]!;
        const flags = input[offset + 4]!;
        const streamId = input.readUInt32BE(offset + 5) & 0x7fff_ffff;
        const payload = input.subarray(
          offset + FRAME_HEADER_BYTES,
          offset + FRAME_HEADER_BYTES + length,
        );
        offset += FRAME_HEADER_BYTES + length;
        this.#onFrame(type, flags, streamId, payload);
        if (this.#failure !== null) return;
      }
    } catch (error) {
      this.#fail(`protocol error from ${this.target}: ${(error as Error).message}`);
      this.#socket.destroy();
      return;
    }
    input = input.subarray(offset);
    // Keep a copy of a partial frame only: the chunk's memory is not held by a small remainder.
    this.#input = input.length === 0 ? Buffer.alloc(0) : Buffer.from(input);
  }

  #onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (this.#continuing !== null && type !== FrameType.continuation) {
      throw new Error('expected CONTINUATION');
    }
    switch (type) {
      case FrameType.data:
        this.#onData(flags, streamId, payload);
        return;
      case FrameType.headers:
        this.#onHeaders(flags, streamId, payload);
        return;
      case FrameType.continuation: {
        const continuing = this.#continuing;
        if (continuing === null || continuing.streamId !== streamId) {
          throw new Error('unexpected CONTINUATION');
        }
        continuing.fragments.push(Buffer.from(payload));
        if (flags & Flag.endHeaders) {
          this.#continuing = null;
          this.#onHeaderBlock(streamId, Buffer.concat(continuing.fragments), continuing.endStream);
        }
        return;
      }
      case FrameType.rstStream: {
        const call = this.#calls.get(streamId);
        const code = payload.length >= 4 ? payload.readUInt32BE(0) : 0;
        if (call)
          this.#finish(
            call,
            new UnaryCallError(GrpcStatus.unavailable, `stream reset (HTTP/2 error ${code})`),
          );
        return;
      }
      case FrameType.settings:
        if (flags & Flag.ack) return;
        this.#applySettings(payload);
        this.#frame(FrameType.settings, Flag.ack, 0, Buffer.alloc(0));
        this.#unblock();
        if (this.#onSettings !== null) {
          const ready = this.#onSettings;
          this.#onSettings = null;
          ready();
        }
        return;
      case FrameType.ping:
        if (!(flags & Flag.ack)) this.#frame(FrameType.ping, Flag.ack, 0, Buffer.from(payload));
        return;
      case FrameType.goaway: {
        const lastStreamId = payload.readUInt32BE(0) & 0x7fff_ffff;
        this.#lastServedStreamId = lastStreamId;
        for (const call of [...this.#calls.values()]) {
          if (call.id > lastStreamId) {
            this.#finish(
              call,
              new UnaryCallError(GrpcStatus.unavailable, 'the server is going away'),
            );
          }
        }
        if (this.#failure === null) {
          this.#failure = new UnaryCallError(GrpcStatus.unavailable, 'the server is going away');
        }
        return;
      }
      case FrameType.windowUpdate: {
        const increment = payload.readUInt32BE(0) & 0x7fff_ffff;
        if (streamId === 0) this.#connectionSendWindow += increment;
        else {
          const call = this.#calls.get(streamId);
          if (call) call.sendWindow += increment;
        }
        this.#unblock();
        return;
      }
      case FrameType.pushPromise:
        throw new Error('PUSH_PROMISE although push is disabled');
      default:
        return; // PRIORITY and unknown frame types are ignored (RFC 9113 §5.5).
    }
  }

  #applySettings(payload: Buffer): void {
    if (payload.length % 6 !== 0) throw new Error('SETTINGS of a bad length');
    for (let at = 0; at < payload.length; at += 6) {
      const id = payload.readUInt16BE(at);
      const value = payload.readUInt32BE(at + 2);
      if (id === Setting.headerTableSize) {
        this.#encoder.setPeerTableBytesMax(value);
      } else if (id === Setting.initialWindowSize) {
        const delta = value - this.#peerInitialWindow;
        this.#peerInitialWindow = value;
        for (const call of this.#calls.values()) call.sendWindow += delta;
      } else if (id === Setting.maxFrameSize) {
        this.#peerFrameBytes = value;
      }
    }
  }

  /** Strips the padding (and priority fields) of DATA and HEADERS payloads. */
  #content(type: number, flags: number, payload: Buffer): Buffer {
    let start = 0;
    let end = payload.length;
    if (flags & Flag.padded) {
      const padding = payload[0] ?? 0;
      start = 1;
      end -= padding;
    }
    if (type === FrameType.headers && flags & Flag.priority) start += 5;
    if (end < start) throw new Error('padding longer than the frame');
    return payload.subarray(start, end);
  }

  #onData(flags: number, streamId: number, payload: Buffer): void {
    // Every received byte counts against the windows, padding included.
    this.#connectionConsumed += payload.length;
    if (this.#connectionConsumed >= RECEIVE_WINDOW_BYTES / 2) {
      this.#windowUpdate(0, this.#connectionConsumed);
      this.#connectionConsumed = 0;
    }
    const call = this.#calls.get(streamId);
    if (call === undefined) return;
    const data = this.#content(FrameType.data, flags, payload);
    call.bodyBytes += data.length;
    if (call.bodyBytes > RESPONSE_BYTES_MAX + 5) {
      this.#frame(FrameType.rstStream, 0, streamId, Buffer.from([0, 0, 0, 8]));
      this.#finish(call, new UnaryCallError(8, `answer larger than ${RESPONSE_BYTES_MAX} bytes`));
      return;
    }
    if (data.length > 0) call.body.push(Buffer.from(data));
    if (call.bodyBytes >= RECEIVE_WINDOW_BYTES / 2 && !(flags & Flag.endStream)) {
      this.#windowUpdate(streamId, data.length);
    }
    if (flags & Flag.endStream) this.#complete(call);
  }

  #onHeaders(flags: number, streamId: number, payload: Buffer): void {
    const fragment = this.#content(FrameType.headers, flags, payload);
    const endStream = (flags & Flag.endStream) !== 0;
    if (!(flags & Flag.endHeaders)) {
      this.#continuing = { streamId, endStream, fragments: [Buffer.from(fragment)] };
      return;
    }
    this.#onHeaderBlock(streamId, fragment, endStream);
  }

  #onHeaderBlock(streamId: number, block: Buffer, endStream: boolean): void {
    // The decoder's table must see every block in order, even of streams no longer tracked.
    const fields = this.#decoder.decode(block);
    const call = this.#calls.get(streamId);
    if (call === undefined) return;
    for (const { name, value } of fields) {
      if (name === ':status' && value !== '200' && !call.headersSeen) {
        this.#finish(call, new UnaryCallError(GrpcStatus.unknown, `HTTP status ${value}`));
        return;
      }
      if (name === 'grpc-status') call.status = Number(value);
      else if (name === 'grpc-message') call.statusMessage = decodeURIComponentSafe(value);
    }
    call.headersSeen = true;
    if (endStream) this.#complete(call);
  }

  #complete(call: Call): void {
    if (call.status === null) {
      this.#finish(call, new UnaryCallError(GrpcStatus.internal, 'answer without grpc-status'));
      return;
    }
    if (call.status !== GrpcStatus.ok) {
      this.#finish(call, new UnaryCallError(call.status, call.statusMessage));
      return;
    }
    const body = call.body.length === 1 ? call.body[0]! : Buffer.concat(call.body);
    if (body.length < 5 || body[0] !== 0 || body.readUInt32BE(1) !== body.length - 5) {
      this.#finish(call, new UnaryCallError(GrpcStatus.internal, 'malformed gRPC message'));
      return;
    }
    this.#finish(call, null, body.subarray(5));
  }

  #finish(call: Call, error: UnaryCallError | null, response?: Buffer): void {
    if (!this.#calls.delete(call.id)) return;
    call.callback(error, response);
  }

  #fail(reason: string): void {
    if (this.#failure === null) {
      this.#failure = new UnaryCallError(GrpcStatus.unavailable, reason);
    }
    const failure = this.#failure;
    for (const call of [...this.#calls.values()]) this.#finish(call, failure);
    if (this.#onSettings !== null) this.#onSettings = null;
  }

  /** Streams opened and not answered (for tests). */
  get openCalls(): number {
    return this.#calls.size;
  }

  get lastServedStreamId(): number {
    return this.#lastServedStreamId;
  }
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
