/**
 * shoal's HTTP/2 server connection, frame by frame: an in-memory socket records every write the
 * connection makes, so the tests see exactly which frames leave and in how many writes. Real
 * clients (node:http2 here, grpc-js in h2-grpc.test.ts, etcdctl in test/etcd-compat.test.ts) check
 * the rest.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import { Duplex } from 'node:stream';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { GrpcH2Server } from './h2-grpc.js';
import { encodeLiteralBlock, type HeaderField, HpackDecoder } from './hpack.js';
import { H2Connection, H2Error, type H2Stream } from './http2.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** A socket in memory: `feed` is what the client sends, `writes` what the server wrote. */
class MemorySocket extends Duplex {
  readonly writes: Buffer[] = [];
  ended = false;

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.writes.push(chunk);
    done();
  }

  override _final(done: () => void): void {
    this.ended = true;
    done();
  }

  feed(...parts: Buffer[]): void {
    this.push(Buffer.concat(parts));
  }
}

interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)) {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

function parseFrames(bytes: Buffer): Frame[] {
  const frames: Frame[] = [];
  let offset = 0;
  while (offset + 9 <= bytes.length) {
    const length = bytes.readUIntBE(offset, 3);
    frames.push({
      type: bytes[offset + 3]!,
      flags: bytes[offset + 4]!,
      streamId: bytes.readUInt32BE(offset + 5),
      payload: bytes.subarray(offset + 9, offset + 9 + length),
    });
    offset += 9 + length;
  }
  assert.equal(offset, bytes.length, 'writes hold whole frames');
  return frames;
}

const settings = (pairs: [number, number][] = []) => {
  const payload = Buffer.alloc(pairs.length * 6);
  pairs.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return frame(0x4, 0, 0, payload);
};
const request = (streamId: number, fields: HeaderField[], endStream = false) =>
  frame(0x1, 0x4 | (endStream ? 0x1 : 0), streamId, encodeLiteralBlock(fields));
const grpcRequest = (path: string): HeaderField[] => [
  { name: ':method', value: 'POST' },
  { name: ':scheme', value: 'http' },
  { name: ':path', value: path },
  { name: ':authority', value: 'http://127.0.0.1:2379' },
  { name: 'content-type', value: 'application/grpc' },
];
const u32 = (value: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value);
  return b;
};

/** Lets the connection's end-of-tick flush and any promise jobs run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

function open(
  onRequest: (stream: H2Stream, fields: HeaderField[]) => void,
  streamsMax = 100,
  onInternalError?: (error: unknown) => void,
  socket = new MemorySocket(),
) {
  const connection = new H2Connection(socket, {
    onRequest,
    concurrentStreamsMax: streamsMax,
    onInternalError,
  });
  return { socket, connection };
}

/** A connection with one request stream open (the client's SETTINGS `pairs`), and that stream. */
async function openStream(pairs: [number, number][] = []) {
  let stream: H2Stream | undefined;
  const opened = open((s) => {
    stream = s;
  });
  opened.socket.feed(PREFACE, settings(pairs), request(1, grpcRequest('/x'), true));
  await settle();
  return { ...opened, stream: stream! };
}

/** A socket whose writes complete only when `complete` is called: a client that does not read. */
class StuckSocket extends MemorySocket {
  readonly held: (() => void)[] = [];
  reading = false;

  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.writes.push(chunk);
    if (this.reading) done();
    else this.held.push(done);
  }

  /** The client starts reading: everything written so far, and from now on, completes. */
  complete(): void {
    this.reading = true;
    for (const done of this.held.splice(0)) done();
  }
}

function goawayCode(frames: Frame[]): number | undefined {
  const goaway = frames.find((f) => f.type === 0x7);
  return goaway?.payload.readUInt32BE(4);
}

describe('H2Connection', () => {
  it('sends its SETTINGS at once and acknowledges the client preface and SETTINGS', async () => {
    const { socket } = open(() => {});
    await settle();
    const first = parseFrames(Buffer.concat(socket.writes));
    assert.equal(first[0]!.type, 0x4);
    assert.equal(first[0]!.flags, 0);
    assert.equal(first[1]!.type, 0x8, 'connection window opened');
    socket.writes.length = 0;
    socket.feed(PREFACE, settings([[0x4, 1000]]));
    await settle();
    const answer = parseFrames(Buffer.concat(socket.writes));
    assert.deepEqual(
      answer.map((f) => [f.type, f.flags]),
      [[0x4, 0x1]],
    );
  });

  it('sends a whole gRPC answer (headers, message, trailers) in one write', async () => {
    const server = new GrpcH2Server({ receiveMessageBytesMax: 1024 });
    server.addUnary(
      '/t.S/Echo',
      { decode: (b: Buffer) => b, encode: (m: Buffer) => m },
      async (m) => m,
    );
    const socket = new MemorySocket();
    server.injectConnection(socket);
    socket.feed(PREFACE, settings());
    await settle();
    socket.writes.length = 0;
    const body = Buffer.from([0, 0, 0, 0, 3, 0x61, 0x62, 0x63]);
    socket.feed(request(1, grpcRequest('/t.S/Echo')), frame(0x0, 0x1, 1, body));
    await settle();
    assert.equal(socket.writes.length, 1, 'one write for the whole answer');
    const frames = parseFrames(socket.writes[0]!);
    assert.deepEqual(
      frames.map((f) => [f.type, f.flags, f.streamId]),
      [
        [0x1, 0x4, 1],
        [0x0, 0x0, 1],
        [0x1, 0x5, 1],
      ],
    );
    assert.deepEqual(frames[1]!.payload, body);
    const decoder = new HpackDecoder();
    assert.deepEqual(decoder.decode(frames[0]!.payload), [
      { name: ':status', value: '200' },
      { name: 'content-type', value: 'application/grpc' },
    ]);
    assert.deepEqual(decoder.decode(frames[2]!.payload), [{ name: 'grpc-status', value: '0' }]);
    await server.close(0);
  });

  it('wakes a streaming handler waiting for room when the client cancels the call', async () => {
    const server = new GrpcH2Server({ receiveMessageBytesMax: 1024 });
    const events: string[] = [];
    server.addStream(
      '/t.S/Flood',
      { decode: (b: Buffer) => b, encode: (m: Buffer) => m },
      (call) => {
        let full = false;
        for (let i = 0; i < 1000 && !full; i++) full = !call.write(Buffer.alloc(1024));
        events.push(full ? 'backed up' : 'never backed up');
        call.on('cancelled', () => events.push('cancelled'));
        call.once('drain', () => events.push(`drain (cancelled: ${call.cancelled})`));
      },
      true,
    );
    const socket = new MemorySocket();
    server.injectConnection(socket);
    // No window at all: every message stays held, so the handler must wait for 'drain'.
    const body = Buffer.from([0, 0, 0, 0, 1, 0x31]);
    socket.feed(
      PREFACE,
      settings([[0x4, 0]]),
      request(1, grpcRequest('/t.S/Flood')),
      frame(0x0, 0x1, 1, body),
    );
    await settle();
    socket.feed(frame(0x3, 0, 1, u32(H2Error.cancel)));
    await settle();
    assert.deepEqual(events, ['backed up', 'cancelled', 'drain (cancelled: true)']);
    await server.close(0);
  });

  it('answers PING with the same payload and ignores unknown frame types', async () => {
    const { socket } = open(() => {});
    socket.feed(PREFACE, settings());
    await settle();
    socket.writes.length = 0;
    const data = Buffer.from('12345678');
    socket.feed(frame(0xfa, 0, 0, Buffer.from('x')), frame(0x6, 0, 0, data));
    await settle();
    const frames = parseFrames(Buffer.concat(socket.writes));
    assert.equal(frames.length, 1);
    assert.equal(frames[0]!.type, 0x6);
    assert.equal(frames[0]!.flags, 0x1);
    assert.deepEqual(frames[0]!.payload, data);
  });

  it('holds DATA back by the client windows and sends it as WINDOW_UPDATEs arrive', async () => {
    const { socket, stream } = await openStream([[0x4, 100]]);
    socket.writes.length = 0;
    const body = Buffer.alloc(250, 7);
    let drained = 0;
    stream.onDrain = () => drained++;
    stream.sendHeaders(encodeLiteralBlock([{ name: ':status', value: '200' }]), false);
    stream.sendData(body);
    stream.sendTrailers(encodeLiteralBlock([{ name: 'grpc-status', value: '0' }]));
    await settle();
    let frames = parseFrames(Buffer.concat(socket.writes));
    assert.deepEqual(
      frames.map((f) => [f.type, f.payload.length]),
      [
        [0x1, 13],
        [0x0, 100],
      ],
      'only the stream window of 100 bytes',
    );
    socket.writes.length = 0;
    socket.feed(frame(0x8, 0, 1, u32(100)));
    await settle();
    frames = parseFrames(Buffer.concat(socket.writes));
    assert.deepEqual(
      frames.map((f) => [f.type, f.payload.length]),
      [[0x0, 100]],
    );
    socket.writes.length = 0;
    // A larger initial window applies to open streams by the difference (RFC 9113 §6.9.2).
    socket.feed(settings([[0x4, 1000]]));
    await settle();
    frames = parseFrames(Buffer.concat(socket.writes));
    assert.deepEqual(
      frames.map((f) => [f.type, f.flags, f.payload.length]),
      [
        [0x4, 0x1, 0],
        [0x0, 0x0, 50],
        [0x1, 0x5, 15],
      ],
    );
    assert.equal(drained, 0, 'the writer was never told to wait');
  });

  it('tells a writer to wait when the window holds back more than its backlog', async () => {
    const { socket, stream } = await openStream();
    let drained = 0;
    stream.onDrain = () => drained++;
    stream.sendHeaders(encodeLiteralBlock([{ name: ':status', value: '200' }]), false);
    assert.equal(stream.sendData(Buffer.alloc(60_000)), true, 'within the 65,535-byte window');
    assert.equal(stream.sendData(Buffer.alloc(80_000)), false, 'beyond window plus backlog');
    socket.feed(frame(0x8, 0, 0, u32(1 << 20)), frame(0x8, 0, 1, u32(1 << 20)));
    await settle();
    assert.equal(drained, 1);
    const sent = parseFrames(Buffer.concat(socket.writes))
      .filter((f) => f.type === 0x0)
      .reduce((n, f) => n + f.payload.length, 0);
    assert.equal(sent, 140_000);
  });

  it('refuses new streams while it holds more answer bytes than its limit', async () => {
    const body = Buffer.alloc(1 << 20);
    const { socket, connection } = open((s) => {
      s.sendHeaders(encodeLiteralBlock([{ name: ':status', value: '200' }]), false);
      s.sendData(body);
    }, 1000);
    // A client that opens no window at all: every answer stays held.
    const requests = Array.from({ length: 67 }, (_, i) =>
      request(2 * i + 1, grpcRequest('/a'), true),
    );
    socket.feed(PREFACE, settings([[0x4, 0]]), ...requests);
    await settle();
    // Accepted while at most 64 MiB were held: 65 answers.
    assert.equal(connection.heldBytes, 65 * body.length);
    const refused = parseFrames(Buffer.concat(socket.writes)).filter((f) => f.type === 0x3);
    assert.deepEqual(
      refused.map((f) => [f.streamId, f.payload.readUInt32BE(0)]),
      [
        [131, H2Error.refusedStream],
        [133, H2Error.refusedStream],
      ],
    );
    // The client resets one: its bytes are released and a new stream is taken again.
    socket.feed(frame(0x3, 0, 1, u32(H2Error.cancel)), request(135, grpcRequest('/a'), true));
    await settle();
    assert.equal(connection.heldBytes, 65 * body.length);
    assert.equal(connection.streamCount, 65);
  });

  it('stops reading while the socket holds too much, and reads again once it drains', async () => {
    const socket = new StuckSocket();
    open(() => {}, 100, undefined, socket);
    socket.feed(PREFACE, settings());
    await settle();
    // PINGs whose answers (17 bytes each) the client never reads, until over 8 MiB wait.
    const ping = frame(0x6, 0, 0, Buffer.alloc(8));
    const burst = Buffer.concat(Array.from({ length: 20_000 }, () => ping));
    for (let i = 0; i < 30 && !socket.isPaused(); i++) {
      socket.feed(burst);
      await settle();
    }
    assert.equal(socket.isPaused(), true, 'reading stopped');
    socket.complete();
    await settle();
    assert.equal(socket.isPaused(), false, 'reading resumed after the drain');
  });

  it('resets a stream that holds more than its own limit', async () => {
    const { socket, stream } = await openStream([[0x4, 0]]);
    let aborted = 0;
    stream.onAbort = () => aborted++;
    stream.sendHeaders(encodeLiteralBlock([{ name: ':status', value: '200' }]), false);
    const piece = Buffer.alloc(1 << 20);
    for (let i = 0; i < 17; i++) stream.sendData(piece);
    await settle();
    const reset = parseFrames(Buffer.concat(socket.writes)).find((f) => f.type === 0x3)!;
    assert.equal(reset.payload.readUInt32BE(0), H2Error.enhanceYourCalm);
    assert.equal(aborted, 1);
    assert.equal(stream.closed, true);
  });

  it('starts its next header block with a table size update after the client lowers it', async () => {
    const { socket, stream } = await openStream([[0x1, 0]]);
    const block = encodeLiteralBlock([{ name: ':status', value: '200' }]);
    stream.sendHeaders(block, false);
    stream.sendTrailers(encodeLiteralBlock([{ name: 'grpc-status', value: '0' }]));
    await settle();
    const headers = parseFrames(Buffer.concat(socket.writes)).filter((f) => f.type === 0x1);
    assert.deepEqual(headers[0]!.payload, Buffer.concat([Buffer.from([0x20]), block]));
    assert.equal(headers[1]!.payload[0], 0x00, 'only the first block carries the update');
    assert.deepEqual(new HpackDecoder().decode(headers[0]!.payload), [
      { name: ':status', value: '200' },
    ]);
  });

  it('reports a handler callback that throws instead of letting it escape', async () => {
    const reported: unknown[] = [];
    const { socket, connection } = open(
      (s) => {
        s.onAbort = () => {
          throw new Error('handler bug');
        };
      },
      100,
      (error) => reported.push(error),
    );
    socket.feed(PREFACE, settings(), request(1, grpcRequest('/a')));
    await settle();
    connection.destroy();
    assert.equal(reported.length, 1);
    assert.match(String(reported[0]), /handler bug/);
  });

  it("splits DATA and header blocks by the client's frame size", async () => {
    const { socket, stream } = await openStream([[0x4, 1 << 20]]);
    socket.feed(frame(0x8, 0, 0, u32(1 << 20)));
    await settle();
    socket.writes.length = 0;
    const big = encodeLiteralBlock([{ name: 'x-big', value: 'v'.repeat(20_000) }]);
    stream.sendHeaders(big, false);
    stream.sendData(Buffer.alloc(40_000, 1), true);
    await settle();
    const frames = parseFrames(Buffer.concat(socket.writes));
    assert.deepEqual(
      frames.map((f) => [f.type, f.flags, f.payload.length]),
      [
        [0x1, 0x0, 16_384],
        [0x9, 0x4, big.length - 16_384],
        [0x0, 0x0, 16_384],
        [0x0, 0x0, 16_384],
        [0x0, 0x1, 40_000 - 2 * 16_384],
      ],
    );
  });

  it('strips padding and priority fields from what it receives', async () => {
    const seen: HeaderField[][] = [];
    const data: string[] = [];
    const { socket } = open((s, fields) => {
      seen.push(fields);
      s.onData = (chunk) => data.push(chunk.toString());
    });
    const block = encodeLiteralBlock(grpcRequest('/t.S/M'));
    // HEADERS with PADDED and PRIORITY: pad length, 5 priority bytes, the block, the padding.
    const headers = Buffer.concat([Buffer.from([2]), Buffer.alloc(5), block, Buffer.alloc(2)]);
    const body = Buffer.concat([Buffer.from([3]), Buffer.from('abc'), Buffer.alloc(3)]);
    socket.feed(
      PREFACE,
      settings(),
      frame(0x1, 0x4 | 0x8 | 0x20, 1, headers),
      frame(0x0, 0x1 | 0x8, 1, body),
    );
    await settle();
    assert.deepEqual(seen, [grpcRequest('/t.S/M')]);
    assert.deepEqual(data, ['abc']);
  });

  it('closes gracefully: GOAWAY, open streams finish, new ones are ignored, then the socket ends', async () => {
    const { socket, connection, stream } = await openStream();
    socket.writes.length = 0;
    connection.close();
    socket.feed(request(3, grpcRequest('/late'), true));
    await settle();
    const goaway = parseFrames(Buffer.concat(socket.writes)).find((f) => f.type === 0x7)!;
    assert.equal(goaway.payload.readUInt32BE(0), 1, 'the last stream taken');
    assert.equal(goaway.payload.readUInt32BE(4), H2Error.noError);
    assert.equal(socket.ended, false, 'stream 1 is still open');
    assert.equal(connection.streamCount, 1, 'stream 3, opened after the GOAWAY, was ignored');
    stream.sendHeaders(encodeLiteralBlock([{ name: ':status', value: '200' }]), true);
    await settle();
    assert.equal(socket.ended, true);
  });

  it('refuses streams beyond the limit and accepts them again once one closes', async () => {
    const streams: H2Stream[] = [];
    const { socket } = open((s) => streams.push(s), 1);
    socket.feed(
      PREFACE,
      settings(),
      request(1, grpcRequest('/a'), true),
      request(3, grpcRequest('/b'), true),
    );
    await settle();
    const reset = parseFrames(Buffer.concat(socket.writes)).find((f) => f.type === 0x3)!;
    assert.equal(reset.streamId, 3);
    assert.equal(reset.payload.readUInt32BE(0), H2Error.refusedStream);
    streams[0]!.sendHeaders(encodeLiteralBlock([{ name: ':status', value: '200' }]), true);
    socket.feed(request(5, grpcRequest('/c'), true));
    await settle();
    assert.deepEqual(
      streams.map((s) => s.id),
      [1, 5],
    );
  });

  it('tells a stream the client reset it, and keeps serving the others', async () => {
    const aborted: number[] = [];
    const { socket, connection } = open((s) => {
      s.onAbort = () => aborted.push(s.id);
    });
    socket.feed(PREFACE, settings(), request(1, grpcRequest('/a')), request(3, grpcRequest('/b')));
    socket.feed(frame(0x3, 0, 1, u32(H2Error.cancel)));
    await settle();
    assert.deepEqual(aborted, [1]);
    assert.equal(connection.streamCount, 1);
    connection.destroy();
    assert.deepEqual(aborted, [1, 3], 'a connection that dies aborts its open streams');
  });

  it('ignores frames on closed streams, and refuses a header list above its limit', async () => {
    const seen: number[] = [];
    const { socket, connection } = open((s) => {
      seen.push(s.id);
      s.onData = () => {};
    });
    // One 1,000-byte field added to the dynamic table, then referenced 100 times: a block of
    // about 1 KiB that decodes to a header list of over 100 KiB.
    const value = 'v'.repeat(1000);
    const hugeList = Buffer.concat([
      encodeLiteralBlock(grpcRequest('/a')),
      Buffer.from([0x40, 0x01, 0x78, 0x7f, 0xe9, 0x06]),
      Buffer.from(value),
      Buffer.alloc(100, 0x80 | 62),
    ]);
    socket.feed(
      PREFACE,
      settings(),
      request(5, grpcRequest('/a'), true),
      request(3, grpcRequest('/b'), true),
      frame(0x0, 0x1, 3, Buffer.from('late')),
      frame(0x1, 0x5, 7, hugeList),
    );
    await settle();
    assert.deepEqual(seen, [5]);
    assert.equal(connection.closed, false);
    const frames = parseFrames(Buffer.concat(socket.writes));
    const resets = frames.filter((f) => f.type === 0x3);
    assert.deepEqual(
      resets.map((f) => [f.streamId, f.payload.readUInt32BE(0)]),
      [[7, H2Error.enhanceYourCalm]],
    );
  });

  it('joins a header block split over CONTINUATION frames', async () => {
    const seen: HeaderField[][] = [];
    const { socket } = open((_s, fields) => seen.push(fields));
    const fields = [...grpcRequest('/t.S/M'), { name: 'x-big', value: 'v'.repeat(30_000) }];
    const block = encodeLiteralBlock(fields);
    socket.feed(
      PREFACE,
      settings(),
      frame(0x1, 0x1, 1, block.subarray(0, 16_000)),
      frame(0x9, 0, 1, block.subarray(16_000, 30_000)),
      frame(0x9, 0x4, 1, block.subarray(30_000)),
    );
    await settle();
    assert.deepEqual(seen, [fields]);
  });

  for (const [name, bytes, code] of [
    ['a wrong preface', [Buffer.from('GET / HTTP/1.1\r\n\r\n')], H2Error.protocol],
    ['a first frame other than SETTINGS', [PREFACE, frame(0x6, 0, 0, Buffer.alloc(8))], 0x1],
    [
      'a frame above the frame size',
      [PREFACE, settings(), frame(0x0, 0, 1, Buffer.alloc(20_000))],
      0x6,
    ],
    ['PUSH_PROMISE from a client', [PREFACE, settings(), frame(0x5, 0x4, 1, Buffer.alloc(4))], 0x1],
    ['HEADERS on an even stream', [PREFACE, settings(), request(2, grpcRequest('/a'))], 0x1],
    [
      'a bad HPACK index',
      [PREFACE, settings(), frame(0x1, 0x4, 1, Buffer.from([0xff, 0x7f]))],
      0x9,
    ],
    [
      'an interrupted header block',
      [PREFACE, settings(), frame(0x1, 0, 1, Buffer.alloc(0)), frame(0x6, 0, 0, Buffer.alloc(8))],
      0x1,
    ],
    [
      'a flood of empty CONTINUATION frames',
      [
        PREFACE,
        settings(),
        frame(0x1, 0, 1, Buffer.alloc(0)),
        ...Array.from({ length: 8000 }, () => frame(0x9, 0, 1, Buffer.alloc(0))),
      ],
      0xb,
    ],
    ['a zero connection window increment', [PREFACE, settings(), frame(0x8, 0, 0, u32(0))], 0x1],
    ['a SETTINGS frame of odd size', [PREFACE, frame(0x4, 0, 0, Buffer.alloc(5))], 0x6],
    ['MAX_FRAME_SIZE below the minimum', [PREFACE, settings([[0x5, 100]])], 0x1],
  ] as const) {
    it(`closes the connection with GOAWAY on ${name}`, async () => {
      const { socket, connection } = open((s) => {
        s.onData = () => {};
      });
      socket.feed(...(bytes as readonly Buffer[]));
      await settle();
      const frames = parseFrames(Buffer.concat(socket.writes));
      assert.equal(goawayCode(frames), code);
      assert.equal(connection.closed, true);
      assert.equal(socket.ended, true);
    });
  }

  it('never throws on arbitrary frames after a valid preface (seeded)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            type: fc.integer({ min: 0, max: 10 }),
            flags: fc.integer({ min: 0, max: 255 }),
            streamId: fc.integer({ min: 0, max: 9 }),
            payload: fc.uint8Array({ maxLength: 40 }),
          }),
          { maxLength: 12 },
        ),
        async (frames) => {
          const { socket, connection } = open((s) => {
            s.onData = () => {};
          });
          socket.feed(PREFACE, settings());
          for (const f of frames) {
            socket.feed(frame(f.type, f.flags, f.streamId, Buffer.from(f.payload)));
          }
          await settle();
          // Still serving, or closed: with a GOAWAY of its own unless the client sent one.
          // Every write is whole frames.
          const out = parseFrames(Buffer.concat(socket.writes));
          const clientLeft = frames.some((f) => f.type === 0x7);
          if (connection.closed && !clientLeft) assert.notEqual(goawayCode(out), undefined);
          connection.destroy();
        },
      ),
      { seed: 7, numRuns: 400 },
    );
  });
});

describe('H2Connection with node:http2 as the client', () => {
  it('serves a large body to a client with a small window, and answers its PINGs', async () => {
    const big = Buffer.alloc(300_000, 0x5a);
    const server = new GrpcH2Server({ receiveMessageBytesMax: 1024 });
    server.addUnary(
      '/t.S/Big',
      { decode: (b: Buffer) => b, encode: (m: Buffer) => m },
      async () => big,
    );
    const port = await server.listen('127.0.0.1', 0);
    const client = http2.connect(`http://127.0.0.1:${port}`, {
      settings: { initialWindowSize: 1000 },
    });
    try {
      await once(client, 'connect');
      await new Promise<void>((resolve, reject) =>
        client.ping(Buffer.from('abcdefgh'), (error, _ms, payload) => {
          if (error) reject(error);
          else {
            assert.equal(payload.toString(), 'abcdefgh');
            resolve();
          }
        }),
      );
      const req = client.request({
        ':method': 'POST',
        ':path': '/t.S/Big',
        'content-type': 'application/grpc',
      });
      req.end(Buffer.from([0, 0, 0, 0, 0]));
      const chunks: Buffer[] = [];
      const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) =>
        req.on('trailers', resolve),
      );
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const body = Buffer.concat(chunks);
      assert.equal(body.length, 5 + big.length);
      assert.equal(body.readUInt32BE(1), big.length);
      assert.ok(body.subarray(5).equals(big));
      assert.equal((await trailers)['grpc-status'], '0');
    } finally {
      client.close();
      await server.close(1000);
    }
  });
});
