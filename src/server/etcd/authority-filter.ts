/**
 * A per-connection filter between a gRPC client's socket and Node's HTTP/2 server that repairs the
 * :authority pseudo-header. etcdctl 3.4 dials some calls (endpoint status, hashkv, move-leader,
 * defrag, snapshot) with the endpoint URL itself as the gRPC target, so grpc-go sends the whole URL,
 * `http://127.0.0.1:2379`, as :authority. Go's server accepts that; nghttp2 (inside Node) checks
 * :authority against RFC 3986's authority characters, finds the '/', and resets the stream with
 * PROTOCOL_ERROR. Node has no option to turn that check off.
 *
 * The filter reads the client's frames until the first complete header block. If its :authority is
 * valid, the connection switches to pass-through: every later byte is handed on untouched with no
 * parsing (gRPC clients keep one authority per connection). Otherwise the connection is rewritten
 * for its whole life: each header block is decoded (HPACK, keeping the client's dynamic table) and
 * re-encoded as literals without indexing, with :authority reduced to its host:port, and sent as one
 * HEADERS frame plus CONTINUATIONs. Other frames pass unchanged, in order.
 */
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { encodeLiteralBlock, type HeaderField, HpackDecoder } from './hpack.js';

/** HTTP/2 connection preface sent by the client (RFC 9113 §3.4). */
const prefaceBytes = 24;
const frameHeaderBytes = 9;
const frameTypeHeaders = 0x1;
const frameTypeSettings = 0x4;
const frameTypeContinuation = 0x9;
const flagAck = 0x1;
const flagEndStream = 0x1;
const flagEndHeaders = 0x4;
const flagPadded = 0x8;
const flagPriority = 0x20;
/** The largest frame payload the server accepts before its SETTINGS say otherwise (RFC 9113). */
const frameBytesDefault = 16_384;
/**
 * The largest header block (all fragments) held while deciding or rewriting. Node's own limit on
 * a header list is far below this; a client beyond it is cut off.
 */
export const headerBlockBytesMax = 256 * 1024;
/** The largest frame accepted at all (RFC 9113's maximum SETTINGS_MAX_FRAME_SIZE). */
const frameBytesMax = 16_777_215;

/** RFC 3986 authority characters, the set nghttp2 accepts for :authority and host. */
const authorityPattern = /^[A-Za-z0-9\-._~%!$&'()*+,;=:@[\]]*$/;

export function isValidAuthority(value: string): boolean {
  return authorityPattern.test(value);
}

/**
 * What an invalid :authority becomes: the URL's host:port when the value is a URL, or nothing
 * (the field is dropped; :authority is optional in HTTP/2).
 */
export function repairAuthority(value: string): string | undefined {
  const withoutScheme = value.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\//, '');
  const hostPort = withoutScheme.split(/[/?#]/, 1)[0] ?? '';
  return hostPort !== '' && isValidAuthority(hostPort) ? hostPort : undefined;
}

/**
 * preface: waiting for the client's 24-byte preface; frames: parsing frames; passing: handing bytes
 * on unparsed (the first header block was fine and no sniffer ACK is left to drop).
 */
type Mode = 'preface' | 'frames' | 'passing';

/** Where the client's header block being collected came from. */
interface PendingBlock {
  streamId: number;
  flags: number;
  fragments: Buffer[];
  bytes: number;
  /** The original frames, forwarded as they were if the block turns out fine. */
  frames: Buffer[];
}

/**
 * Wraps a client socket; hand the wrapper to the HTTP/2 server in place of the socket. Server
 * writes go straight to the socket; client bytes go through `#filter`.
 */
export class AuthorityFilterStream extends Duplex {
  readonly #socket: Socket;
  #mode: Mode = 'preface';
  #buffer: Buffer = Buffer.alloc(0);
  #pending: PendingBlock | null = null;
  readonly #decoder = new HpackDecoder();
  /** Decided by the first header block: whether this connection's header blocks are repaired. */
  #repairing: boolean | undefined;
  /** Header blocks rewritten on this connection; for tests. */
  rewrittenBlocks = 0;

  /** True until the client's ACK of the sniffer's early SETTINGS has been dropped. */
  #settingsAckPending: boolean;

  /**
   * `initial` holds client bytes already read from the socket (the sniffer's); when
   * `settingsAckPending`, the client's first SETTINGS ACK answers the sniffer's own SETTINGS frame,
   * which the HTTP/2 server never sent, so it is dropped.
   */
  constructor(socket: Socket, initial: Buffer = Buffer.alloc(0), settingsAckPending = false) {
    super({ allowHalfOpen: false });
    this.#socket = socket;
    this.#settingsAckPending = settingsAckPending;
    if (initial.length > 0) this.#onData(initial);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.push(null));
    // This stream never emits 'error'. Node's HTTP/2 session wraps it in a JSStreamSocket, which
    // turns an 'error' into a session destroy that writes while a write may still be pending,
    // and that fails an internal assertion and kills the process (Node 20). Closing without an
    // error takes JSStreamSocket's close path, which cancels pending writes properly.
    socket.on('error', () => this.destroy());
    socket.on('close', () => this.destroy());
  }

  get remoteAddress(): string | undefined {
    return this.#socket.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.#socket.remotePort;
  }

  get localAddress(): string | undefined {
    return this.#socket.localAddress;
  }

  get localPort(): number | undefined {
    return this.#socket.localPort;
  }

  setNoDelay(noDelay?: boolean): this {
    this.#socket.setNoDelay(noDelay);
    return this;
  }

  setKeepAlive(enable?: boolean, delayMs?: number): this {
    this.#socket.setKeepAlive(enable, delayMs);
    return this;
  }

  override _read(): void {
    this.#socket.resume();
  }

  // Server output is not touched: it goes to the socket, with the socket's own backpressure.
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error) => void): void {
    const socket = this.#socket;
    if (socket.write(chunk)) {
      done();
      return;
    }
    // Wait for the socket to drain, or to close: a write left pending forever would block the
    // session's shutdown. No error is passed on (see the constructor).
    const finish = () => {
      socket.off('drain', finish);
      socket.off('close', finish);
      done();
    };
    socket.on('drain', finish);
    socket.on('close', finish);
  }

  override _final(done: (error?: Error) => void): void {
    this.#socket.end(done);
  }

  override _destroy(_error: Error | null, done: (error: Error | null) => void): void {
    this.#socket.destroy();
    done(null);
  }

  #onData(chunk: Buffer): void {
    if (this.#mode === 'passing') {
      this.#forward(chunk);
      return;
    }
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    try {
      this.#drain();
    } catch {
      // A client that breaks HTTP/2 framing or HPACK is cut off, as nghttp2 would do.
      this.destroy();
    }
  }

  #forward(bytes: Buffer): void {
    if (bytes.length > 0 && !this.push(bytes)) this.#socket.pause();
  }

  /** Consumes whole frames from the buffer; a partial frame waits for more bytes. */
  #drain(): void {
    if (this.#mode === 'preface') {
      if (this.#buffer.length < prefaceBytes) return;
      this.#forward(this.#buffer.subarray(0, prefaceBytes));
      this.#buffer = this.#buffer.subarray(prefaceBytes);
      this.#mode = 'frames';
    }
    while (this.#buffer.length >= frameHeaderBytes) {
      const length = this.#buffer.readUIntBE(0, 3);
      if (length > frameBytesMax) throw new Error(`HTTP/2 frame of ${length} bytes`);
      const total = frameHeaderBytes + length;
      if (this.#buffer.length < total) return;
      const frame = this.#buffer.subarray(0, total);
      this.#buffer = this.#buffer.subarray(total);
      this.#frame(frame);
      if (this.#mode === 'passing') {
        const rest = this.#buffer;
        this.#buffer = Buffer.alloc(0);
        this.#forward(rest);
        return;
      }
    }
  }

  #frame(frame: Buffer): void {
    const type = frame[3]!;
    if (this.#settingsAckPending && isSettingsAck(frame)) {
      this.#settingsAckPending = false;
      this.#maybePass();
      return;
    }
    if (type !== frameTypeHeaders && type !== frameTypeContinuation) {
      if (this.#pending) throw new Error('HTTP/2 frame inside a header block');
      this.#forward(frame);
      return;
    }
    const flags = frame[4]!;
    const streamId = frame.readUInt32BE(5) & 0x7fffffff;
    const pending = this.#collect(type, flags, streamId, frame);
    if ((flags & flagEndHeaders) === 0) return;
    this.#pending = null;
    this.#finishBlock(pending);
  }

  /** Adds one HEADERS or CONTINUATION frame's fragment to the block being collected. */
  #collect(type: number, flags: number, streamId: number, frame: Buffer): PendingBlock {
    let pending = this.#pending;
    if (type === frameTypeHeaders) {
      if (pending) throw new Error('HEADERS inside a header block');
      pending = { streamId, flags, fragments: [], bytes: 0, frames: [] };
      this.#pending = pending;
    } else if (!pending || pending.streamId !== streamId) {
      throw new Error('CONTINUATION without a header block');
    }
    const fragment = type === frameTypeHeaders ? headersFragment(frame, flags) : frame.subarray(9);
    pending.fragments.push(fragment);
    pending.frames.push(frame);
    pending.bytes += fragment.length;
    if (pending.bytes > headerBlockBytesMax) {
      throw new Error(`header block above ${headerBlockBytesMax} bytes`);
    }
    return pending;
  }

  #finishBlock(block: PendingBlock): void {
    if (this.#repairing === false) {
      for (const frame of block.frames) this.#forward(frame);
      return;
    }
    const fields = this.#decoder.decode(
      block.fragments.length === 1 ? block.fragments[0]! : Buffer.concat(block.fragments),
    );
    if (this.#repairing === undefined) {
      const authority = fields.find((field) => field.name === ':authority');
      this.#repairing = authority !== undefined && !isValidAuthority(authority.value);
      if (!this.#repairing) {
        for (const frame of block.frames) this.#forward(frame);
        this.#maybePass();
        return;
      }
    }
    this.rewrittenBlocks++;
    this.#forward(headerFrames(block.streamId, block.flags & flagEndStream, repair(fields)));
  }

  /** Stops parsing once nothing is left to change on this connection. */
  #maybePass(): void {
    if (this.#repairing === false && !this.#settingsAckPending) this.#mode = 'passing';
  }
}

function isSettingsAck(frame: Buffer): boolean {
  return frame[3] === frameTypeSettings && (frame[4]! & flagAck) !== 0;
}

/** A HEADERS frame's header block fragment, without its padding and priority fields. */
function headersFragment(frame: Buffer, flags: number): Buffer {
  let start = frameHeaderBytes;
  let end = frame.length;
  if (flags & flagPadded) {
    const padBytes = frame[start]!;
    start += 1;
    end -= padBytes;
  }
  if (flags & flagPriority) start += 5;
  if (start > end) throw new Error('HEADERS padding or priority longer than the frame');
  return frame.subarray(start, end);
}

function repair(fields: HeaderField[]): HeaderField[] {
  const out: HeaderField[] = [];
  for (const field of fields) {
    if (field.name !== ':authority' || isValidAuthority(field.value)) {
      out.push(field);
      continue;
    }
    const value = repairAuthority(field.value);
    if (value !== undefined) out.push({ name: field.name, value });
  }
  return out;
}

/** One HEADERS frame and as many CONTINUATIONs as the block needs at the default frame size. */
function headerFrames(streamId: number, endStream: number, fields: HeaderField[]): Buffer {
  const block = encodeLiteralBlock(fields);
  const frames: Buffer[] = [];
  for (let offset = 0; offset < block.length || offset === 0; offset += frameBytesDefault) {
    const payload = block.subarray(offset, offset + frameBytesDefault);
    const last = offset + frameBytesDefault >= block.length;
    const header = Buffer.alloc(frameHeaderBytes);
    header.writeUIntBE(payload.length, 0, 3);
    header[3] = offset === 0 ? frameTypeHeaders : frameTypeContinuation;
    header[4] = (offset === 0 ? endStream : 0) | (last ? flagEndHeaders : 0);
    header.writeUInt32BE(streamId, 5);
    frames.push(header, payload);
    if (last) break;
  }
  return Buffer.concat(frames);
}

/**
 * How long a new HTTP/2 connection may take to send its first request and acknowledge the
 * sniffer's SETTINGS before it is handed to the (always correct, slightly slower) filter.
 */
export const authoritySniffMsMax = 200;
/** Client bytes held while sniffing; a connection that sends more goes to the filter. */
const sniffBytesMax = headerBlockBytesMax + 64 * 1024;
/** An empty SETTINGS frame: the protocol defaults, which the HTTP/2 server also assumes. */
const emptySettingsFrame = Buffer.from([0, 0, 0, frameTypeSettings, 0, 0, 0, 0, 0]);

/**
 * Decides how one new HTTP/2 connection reaches the server. Filtering costs a JavaScript stream in
 * the data path, so a connection whose first request carries a valid :authority gets the raw socket
 * (Node's native fast path) and only the others are filtered.
 *
 * grpc-go clients (etcdctl) send no request before the server's SETTINGS arrive, so the sniffer
 * sends an empty SETTINGS frame itself (the server preface's first frame may carry no settings)
 * and drops the client's ACK of it, which the real server would otherwise take as an unexpected
 * ACK. It waits for both the first complete header block and that ACK, at most
 * `authoritySniffMsMax`; a connection that is still undecided then (an idle client) is filtered.
 */
export function routeHttp2Connection(
  socket: Socket,
  deliver: (connection: Socket | AuthorityFilterStream) => void,
  sniffMs = authoritySniffMsMax,
): void {
  let held: Buffer = Buffer.alloc(0);
  let offset = prefaceBytes;
  let ackDropped = false;
  let valid: boolean | undefined;
  const fragments: Buffer[] = [];
  let done = false;
  const finish = (raw: boolean) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.pause();
    if (raw) {
      socket.unshift(held);
      deliver(socket);
    } else {
      deliver(new AuthorityFilterStream(socket, held, !ackDropped));
    }
  };
  const timer = setTimeout(() => finish(false), sniffMs);
  // A connection that closes while being sniffed is never handed on.
  socket.once('close', () => {
    done = true;
    clearTimeout(timer);
  });
  const onData = (chunk: Buffer) => {
    held = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
    while (held.length >= offset + frameHeaderBytes) {
      const length = held.readUIntBE(offset, 3);
      const end = offset + frameHeaderBytes + length;
      if (end > held.length) break;
      const frame = held.subarray(offset, end);
      if (!ackDropped && isSettingsAck(frame)) {
        held = Buffer.concat([held.subarray(0, offset), held.subarray(end)]);
        ackDropped = true;
        continue;
      }
      if (valid === undefined) valid = firstBlockVerdict(frame, fragments);
      offset = end;
    }
    if (held.length > sniffBytesMax || valid === false) finish(false);
    else if (ackDropped && valid === true) finish(true);
  };
  socket.on('data', onData);
  socket.write(emptySettingsFrame);
  socket.resume();
}

/**
 * Feeds one frame to the collection of the first header block; returns whether its :authority
 * is acceptable once the block is complete, undefined before. Broken input counts as not valid:
 * the filter then reports the protocol error itself.
 */
function firstBlockVerdict(frame: Buffer, fragments: Buffer[]): boolean | undefined {
  const type = frame[3]!;
  const flags = frame[4]!;
  if (type === frameTypeHeaders) {
    if (fragments.length > 0) return false;
    if (frame.length - frameHeaderBytes < (flags & flagPadded ? 1 : 0)) return false;
    try {
      fragments.push(headersFragment(frame, flags));
    } catch {
      return false;
    }
  } else if (type === frameTypeContinuation) {
    if (fragments.length === 0) return false;
    fragments.push(frame.subarray(frameHeaderBytes));
  } else {
    return fragments.length > 0 ? false : undefined;
  }
  if ((flags & flagEndHeaders) === 0) return undefined;
  try {
    const fields = new HpackDecoder().decode(Buffer.concat(fragments));
    const authority = fields.find((field) => field.name === ':authority');
    return authority === undefined || isValidAuthority(authority.value);
  } catch {
    return false;
  }
}
