/**
 * The wire format of shoal RPC: length-prefixed frames over one TCP connection.
 *
 * Every frame is a fixed 16-byte header followed by a body of `bodyLength` bytes. All integers are
 * unsigned big-endian.
 *
 *   offset  size  field
 *   0       4     bodyLength    bytes after the header; at most the connection's maxFrameBytes
 *   4       1     kind          FrameKind below
 *   5       1     flags         FLAG_END | FLAG_RAW; the other bits must be zero
 *   6       2     methodLength  CALL and ONEWAY: length of the UTF-8 method name that opens the
 *                               body ("service.method"); zero for every other kind
 *   8       4     callId        the call this frame belongs to; 0 for connection-level frames
 *   12      4     arg           per kind: CALL timeout in ms (0 = no deadline), ERROR and CANCEL
 *                               status number, WINDOW credit in bytes, PING/PONG opaque value
 *
 * The payload is the rest of the body after the method name: a msgpack value, or, with FLAG_RAW,
 * the bytes of a top-level Uint8Array message as they are (so file chunks skip msgpack entirely).
 * An empty payload means "no message" (a bare END, or a CALL that opens a client stream).
 *
 * Kinds and who sends them:
 *   CALL      client: opens call `callId`; with FLAG_END its payload is the only request message
 *   ONEWAY    client: a fire-and-forget message, callId 0; never answered
 *   MESSAGE   either: one stream message; FLAG_END closes the sender's half of the stream
 *   RESPONSE  server: the call succeeded; payload is the response (absent for server streams)
 *   ERROR     server: the call failed; arg is the status number, the body a UTF-8 message
 *   CANCEL    client: the caller gave up (arg CANCELLED or DEADLINE_EXCEEDED); no answer follows
 *   WINDOW    either: grants the peer `arg` more bytes of stream credit for `callId`
 *   PING/PONG either: keepalive; a PONG echoes the PING's arg
 *   GOAWAY    either: the sender takes no new calls on this connection; in-flight calls finish
 *
 * A frame that breaks these rules (unknown kind, stray flags, method length past the body) is a
 * protocol error that closes the connection. A well-formed frame over the size limit that belongs
 * to a call has its body skipped (never buffered) and fails only that call with RESOURCE_EXHAUSTED;
 * other errors scoped to one call (unknown method, undecodable payload) also close only that call.
 */

export const HEADER_BYTES = 16;
/** Default and absolute ceilings for one frame's body. */
export const FRAME_BYTES_MAX_DEFAULT = 16 * 1024 * 1024;
export const FRAME_BYTES_MAX_LIMIT = 0xffff_ffff;
/** Method names are short identifiers; a longer one is a protocol error. */
export const METHOD_BYTES_MAX = 1024;

export const FrameKind = {
  CALL: 1,
  ONEWAY: 2,
  MESSAGE: 3,
  RESPONSE: 4,
  ERROR: 5,
  CANCEL: 6,
  WINDOW: 7,
  PING: 8,
  PONG: 9,
  GOAWAY: 10,
} as const;
export type FrameKindValue = (typeof FrameKind)[keyof typeof FrameKind];
const KIND_MAX = 10;

export const FLAG_END = 1;
export const FLAG_RAW = 2;
const FLAGS_KNOWN = FLAG_END | FLAG_RAW;

/** A frame that violates the format; the connection that sent it cannot be trusted any more. */
export class FrameError extends Error {
  override readonly name = 'FrameError';
  /** True when the frame was well formed but larger than the configured limit. */
  readonly oversized: boolean;
  constructor(message: string, oversized = false) {
    super(message);
    this.oversized = oversized;
  }
}

/**
 * Receives each decoded frame. `body` is a view into the received bytes (not a copy) and stays
 * valid after the call; it includes the method name for CALL and ONEWAY (`methodLength` bytes).
 */
export type FrameHandler = (
  kind: FrameKindValue,
  flags: number,
  callId: number,
  arg: number,
  methodLength: number,
  body: Buffer,
) => void;

/** Told about a well-formed frame over the size limit; returns true to skip its body and go on. */
export type OversizedHandler = (
  kind: FrameKindValue,
  callId: number,
  bodyLength: number,
) => boolean;

/**
 * Incremental frame decoder: feed it socket chunks in order, it calls `handler` once per complete
 * frame. Bodies that arrive inside one chunk are handed on as views without copying; a body split
 * over several chunks is assembled once into a buffer of exactly its size.
 */
export class FrameDecoder {
  private readonly frameBytesMax: number;
  private readonly handler: FrameHandler;
  /** Bytes of a header split across chunks; `headerFill` of them are valid. */
  private readonly partialHeader = Buffer.allocUnsafe(HEADER_BYTES);
  private headerFill = 0;
  /** The body being assembled from several chunks, once its header is known. */
  private partialBody: Buffer | null = null;
  private bodyFill = 0;
  private kind: FrameKindValue = FrameKind.PING;
  private flags = 0;
  private methodLength = 0;
  private callId = 0;
  private arg = 0;
  private failed = false;

  /** Decides whether an oversized frame is skipped (true) or fails the connection. */
  private readonly onOversized: OversizedHandler | undefined;
  /** Bytes of a skipped oversized body still to discard. */
  private skipRemaining = 0;

  constructor(
    handler: FrameHandler,
    frameBytesMax = FRAME_BYTES_MAX_DEFAULT,
    onOversized?: OversizedHandler,
  ) {
    this.onOversized = onOversized;
    if (
      !Number.isInteger(frameBytesMax) ||
      frameBytesMax < 0 ||
      frameBytesMax > FRAME_BYTES_MAX_LIMIT
    )
      throw new RangeError(`frameBytesMax must be an integer in [0, 2^32): ${frameBytesMax}`);
    this.handler = handler;
    this.frameBytesMax = frameBytesMax;
  }

  /** Bytes held for incomplete frames, for buffer accounting. */
  get bufferedBytes(): number {
    return this.headerFill + this.bodyFill;
  }

  /** True when the decoder stopped at a frame boundary (nothing partial is held). */
  get atBoundary(): boolean {
    return this.headerFill === 0 && this.partialBody === null && this.skipRemaining === 0;
  }

  /** Decodes every complete frame in `chunk`. Throws FrameError on a malformed frame; after that the
   * decoder refuses further input, because the stream position can no longer be trusted. */
  push(chunk: Buffer): void {
    if (this.failed) throw new FrameError('decoder already failed');
    let offset = 0;
    const end = chunk.length;
    try {
      if (this.partialBody !== null || this.headerFill > 0) offset = this.continuePartial(chunk);
      while (offset < end) {
        if (this.skipRemaining > 0) {
          offset = this.skip(chunk, offset);
          continue;
        }
        if (end - offset < HEADER_BYTES) {
          chunk.copy(this.partialHeader, 0, offset, end);
          this.headerFill = end - offset;
          return;
        }
        const bodyLength = this.readHeader(chunk, offset);
        offset += HEADER_BYTES;
        if (bodyLength < 0) continue; // An oversized body the owner chose to skip.
        if (end - offset >= bodyLength) {
          this.emit(chunk.subarray(offset, offset + bodyLength));
          offset += bodyLength;
        } else {
          this.partialBody = Buffer.allocUnsafe(bodyLength);
          this.bodyFill = chunk.copy(this.partialBody, 0, offset, end);
          return;
        }
      }
    } catch (error) {
      this.failed = true;
      throw error;
    }
  }

  /** Discards bytes of a skipped oversized body; returns the new offset. */
  private skip(chunk: Buffer, offset: number): number {
    const take = Math.min(this.skipRemaining, chunk.length - offset);
    this.skipRemaining -= take;
    return offset + take;
  }

  /** Completes a header or body left from earlier chunks; returns the offset consumed in `chunk`. */
  private continuePartial(chunk: Buffer): number {
    let offset = 0;
    if (this.partialBody === null) {
      const need = HEADER_BYTES - this.headerFill;
      const take = Math.min(need, chunk.length);
      chunk.copy(this.partialHeader, this.headerFill, 0, take);
      this.headerFill += take;
      offset = take;
      if (this.headerFill < HEADER_BYTES) return offset;
      this.headerFill = 0;
      const bodyLength = this.readHeader(this.partialHeader, 0);
      if (bodyLength < 0) return offset;
      if (chunk.length - offset >= bodyLength) {
        this.emit(chunk.subarray(offset, offset + bodyLength));
        return offset + bodyLength;
      }
      this.partialBody = Buffer.allocUnsafe(bodyLength);
      this.bodyFill = 0;
    }
    const body = this.partialBody;
    const take = Math.min(body.length - this.bodyFill, chunk.length - offset);
    chunk.copy(body, this.bodyFill, offset, offset + take);
    this.bodyFill += take;
    offset += take;
    if (this.bodyFill === body.length) {
      this.partialBody = null;
      this.bodyFill = 0;
      this.emit(body);
    }
    return offset;
  }

  /** Parses and validates the header at `offset`, stores its fields, returns the body length. */
  private readHeader(source: Buffer, offset: number): number {
    const bodyLength = source.readUInt32BE(offset);
    const kind = source[offset + 4]!;
    const flags = source[offset + 5]!;
    const methodLength = source.readUInt16BE(offset + 6);
    if (kind < 1 || kind > KIND_MAX) throw new FrameError(`unknown frame kind ${kind}`);
    if ((flags & ~FLAGS_KNOWN) !== 0)
      throw new FrameError(`unknown frame flags 0x${flags.toString(16)}`);
    const carriesMethod = kind === FrameKind.CALL || kind === FrameKind.ONEWAY;
    if (carriesMethod ? methodLength === 0 || methodLength > METHOD_BYTES_MAX : methodLength !== 0)
      throw new FrameError(`invalid method length ${methodLength} for frame kind ${kind}`);
    if (methodLength > bodyLength)
      throw new FrameError(`method length ${methodLength} exceeds body length ${bodyLength}`);
    const callId = source.readUInt32BE(offset + 8);
    if (bodyLength > this.frameBytesMax) {
      // A well-formed but oversized frame: its owner may fail just that call and skip the body
      // without buffering it, or the connection fails.
      if (this.onOversized?.(kind as FrameKindValue, callId, bodyLength) === true) {
        this.skipRemaining = bodyLength;
        return -1;
      }
      throw new FrameError(
        `frame body of ${bodyLength} bytes exceeds the limit of ${this.frameBytesMax}`,
        true,
      );
    }
    this.kind = kind as FrameKindValue;
    this.flags = flags;
    this.methodLength = methodLength;
    this.callId = callId;
    this.arg = source.readUInt32BE(offset + 12);
    return bodyLength;
  }

  private emit(body: Buffer): void {
    this.handler(this.kind, this.flags, this.callId, this.arg, this.methodLength, body);
  }
}

/** Writes a frame header into `target` at `offset`. */
export function writeHeader(
  target: Buffer,
  offset: number,
  bodyLength: number,
  kind: FrameKindValue,
  flags: number,
  methodLength: number,
  callId: number,
  arg: number,
): void {
  target.writeUInt32BE(bodyLength, offset);
  target[offset + 4] = kind;
  target[offset + 5] = flags;
  target.writeUInt16BE(methodLength, offset + 6);
  target.writeUInt32BE(callId, offset + 8);
  target.writeUInt32BE(arg, offset + 12);
}

/** Encodes one whole frame into a fresh buffer (tests and tools; the hot path uses FrameWriter). */
export function encodeFrame(
  kind: FrameKindValue,
  flags: number,
  callId: number,
  arg: number,
  method: Uint8Array | null,
  payload: Uint8Array | null,
): Buffer {
  const methodLength = method?.length ?? 0;
  const bodyLength = methodLength + (payload?.length ?? 0);
  const frame = Buffer.allocUnsafe(HEADER_BYTES + bodyLength);
  writeHeader(frame, 0, bodyLength, kind, flags, methodLength, callId, arg);
  if (method) frame.set(method, HEADER_BYTES);
  if (payload) frame.set(payload, HEADER_BYTES + methodLength);
  return frame;
}

/** Bodies up to this size are copied into the shared batch buffer; larger ones are written by
 * reference (no copy) as their own chunk of a gathered write. */
const COPY_BYTES_MAX = 16 * 1024;
/** Size of each batch buffer; frames are packed into it back to back until it is full. */
const BATCH_BUFFER_BYTES = 64 * 1024;

/**
 * Gathers outgoing frames and hands them to `sink` in one call per flush, so many small frames
 * become one socket write. Small frames are copied into a bump-allocated batch buffer (one
 * allocation per 64 KiB of traffic, none per frame); large bodies go out by reference.
 */
export class FrameWriter {
  private batch = Buffer.allocUnsafeSlow(BATCH_BUFFER_BYTES);
  /** Start of the bytes not yet handed to the sink, and end of the bytes written. */
  private batchStart = 0;
  private batchUsed = 0;
  private chunks: Buffer[] = [];
  private pendingBytesCount = 0;

  /** Bytes appended but not yet flushed. */
  get pendingBytes(): number {
    return this.pendingBytesCount;
  }

  append(
    kind: FrameKindValue,
    flags: number,
    callId: number,
    arg: number,
    method: Uint8Array | null,
    payload: Uint8Array | null,
  ): void {
    const methodLength = method === null ? 0 : method.length;
    const payloadLength = payload === null ? 0 : payload.length;
    const bodyLength = methodLength + payloadLength;
    const copyPayload = payloadLength <= COPY_BYTES_MAX;
    const inline = HEADER_BYTES + methodLength + (copyPayload ? payloadLength : 0);
    if (this.batch.length - this.batchUsed < inline) this.renewBatch(inline);
    const batch = this.batch;
    let at = this.batchUsed;
    writeHeader(batch, at, bodyLength, kind, flags, methodLength, callId, arg);
    at += HEADER_BYTES;
    if (method !== null) {
      batch.set(method, at);
      at += methodLength;
    }
    if (payload !== null && copyPayload) {
      batch.set(payload, at);
      at += payloadLength;
    }
    this.batchUsed = at;
    if (payload !== null && !copyPayload) {
      this.sealBatch();
      this.chunks.push(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength));
    }
    this.pendingBytesCount += HEADER_BYTES + bodyLength;
  }

  /** Returns the gathered chunks (in order) and starts a new gather; empty when nothing is pending. */
  take(): Buffer[] {
    this.sealBatch();
    const chunks = this.chunks;
    this.chunks = [];
    this.pendingBytesCount = 0;
    return chunks;
  }

  /** Moves the written-but-unsealed part of the batch buffer into the chunk list. */
  private sealBatch(): void {
    if (this.batchUsed > this.batchStart) {
      this.chunks.push(this.batch.subarray(this.batchStart, this.batchUsed));
      this.batchStart = this.batchUsed;
    }
  }

  private renewBatch(needBytes: number): void {
    this.sealBatch();
    this.batch = Buffer.allocUnsafeSlow(Math.max(BATCH_BUFFER_BYTES, needBytes));
    this.batchStart = 0;
    this.batchUsed = 0;
  }
}
