/**
 * The generator's HTTP/2 unary client against node:http2 as the server (an independent
 * implementation, with settings and frames this client must handle: small windows, padding, PING,
 * GOAWAY, trailers-only errors) and against a raw socket sending garbage. The client against etcd
 * (grpc-go) and shoal's own server is covered by test/bench.test.ts and test/etcd-*.test.ts runs of
 * `shoal bench`.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { H2UnaryConnection, UnaryCallError } from './h2-unary.js';

type Handler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void;

const servers: { close(): void }[] = [];
after(() => {
  for (const server of servers) server.close();
});

function frame(message: Buffer): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

/** Reads a whole gRPC request body and calls `answer` with the message. */
function onRequest(answer: (stream: http2.ServerHttp2Stream, message: Buffer) => void): Handler {
  return (stream) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => {
      const body = Buffer.concat(chunks);
      assert.equal(body.readUInt32BE(1), body.length - 5);
      answer(stream, body.subarray(5));
    });
  };
}

function respond(stream: http2.ServerHttp2Stream, message: Buffer): void {
  stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
  stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
  stream.end(frame(message));
}

async function serve(
  handler: Handler,
  settings: http2.Settings = {},
  options: http2.ServerOptions = {},
): Promise<{ server: http2.Http2Server; target: string; sessions: http2.ServerHttp2Session[] }> {
  const server = http2.createServer({ settings, ...options });
  const sessions: http2.ServerHttp2Session[] = [];
  server.on('session', (session) => sessions.push(session));
  server.on('stream', handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push({
    close: () => {
      for (const session of sessions) session.destroy();
      server.close();
    },
  });
  const address = server.address() as net.AddressInfo;
  return { server, target: `127.0.0.1:${address.port}`, sessions };
}

function call(connection: H2UnaryConnection, path: string, request: Buffer) {
  return new Promise<Buffer>((resolve, reject) =>
    connection.call(path, request, (error, response) =>
      error ? reject(error) : resolve(response!),
    ),
  );
}

describe('H2UnaryConnection', () => {
  it('makes unary calls with the gRPC headers, many at once on one connection', async () => {
    const seen: http2.IncomingHttpHeaders[] = [];
    const { target } = await serve((stream, headers) => {
      seen.push(headers);
      onRequest((s, message) => respond(s, Buffer.concat([Buffer.from('echo:'), message])))(
        stream,
        headers,
      );
    });
    const connection = await H2UnaryConnection.connect(target, 5000);
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) => call(connection, '/svc/Echo', Buffer.from(`m${i}`))),
    );
    assert.deepEqual(
      answers.map((a) => a.toString()),
      Array.from({ length: 100 }, (_, i) => `echo:m${i}`),
    );
    // The first request adds its fields to the server's HPACK table; the rest send indexes.
    for (const headers of seen) {
      assert.equal(headers[':method'], 'POST');
      assert.equal(headers[':path'], '/svc/Echo');
      assert.equal(headers['content-type'], 'application/grpc');
      assert.equal(headers.te, 'trailers');
    }
    assert.equal(seen.length, 100);
    // Another method on the same connection: new fields shift the indexes on both sides.
    assert.equal((await call(connection, '/svc/Other', Buffer.from('o'))).toString(), 'echo:o');
    assert.equal((await call(connection, '/svc/Echo', Buffer.from('e'))).toString(), 'echo:e');
    assert.equal(seen.at(-2)![':path'], '/svc/Other');
    assert.equal(seen.at(-1)![':path'], '/svc/Echo');
    assert.equal(connection.openCalls, 0);
    connection.close();
  });

  it('reports a trailers-only error with its status code and decoded message', async () => {
    const { target } = await serve(
      onRequest((stream) => {
        stream.respond(
          {
            ':status': 200,
            'content-type': 'application/grpc',
            'grpc-status': '5',
            'grpc-message': encodeURIComponent('key not found: ü'),
          },
          { endStream: true },
        );
      }),
    );
    const connection = await H2UnaryConnection.connect(target, 5000);
    await assert.rejects(call(connection, '/svc/Get', Buffer.from('k')), (error: unknown) => {
      assert.ok(error instanceof UnaryCallError);
      assert.equal(error.code, 5);
      assert.equal(error.message, 'key not found: ü');
      return true;
    });
    connection.close();
  });

  it('waits for the server window to send a large request, and takes a large padded answer', async () => {
    const request = Buffer.alloc(300_000, 7);
    const answer = Buffer.alloc(2_000_000, 9);
    const { target } = await serve(
      onRequest((stream, message) => {
        assert.ok(message.equals(request), 'the whole request arrived, in order');
        respond(stream, answer);
      }),
      { initialWindowSize: 1000, maxFrameSize: 16_384 },
      { paddingStrategy: http2.constants.PADDING_STRATEGY_MAX },
    );
    const connection = await H2UnaryConnection.connect(target, 5000);
    const [a, b] = await Promise.all([
      call(connection, '/svc/Big', request),
      call(connection, '/svc/Big', request),
    ]);
    assert.ok(a.equals(answer) && b.equals(answer));
    connection.close();
  });

  it('answers the server PINGs', async () => {
    const { target, sessions } = await serve(onRequest((stream, m) => respond(stream, m)));
    const connection = await H2UnaryConnection.connect(target, 5000);
    await call(connection, '/svc/Echo', Buffer.from('x'));
    const rtt = await new Promise<number>((resolve, reject) =>
      sessions[0]!.ping((error, duration) => (error ? reject(error) : resolve(duration))),
    );
    assert.ok(rtt >= 0);
    connection.close();
  });

  it('after a GOAWAY starts no new calls, and fails the open ones when the server closes', async () => {
    const held: http2.ServerHttp2Stream[] = [];
    const { target, sessions } = await serve((stream) => held.push(stream));
    const connection = await H2UnaryConnection.connect(target, 5000);
    const pending = call(connection, '/svc/Slow', Buffer.from('x'));
    while (held.length === 0) await new Promise((resolve) => setImmediate(resolve));
    sessions[0]!.goaway(http2.constants.NGHTTP2_NO_ERROR);
    while (connection.lastServedStreamId === Number.POSITIVE_INFINITY) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    // The server said it may still answer stream 1; a new call is not started.
    assert.equal(connection.lastServedStreamId, 1);
    assert.equal(connection.openCalls, 1);
    await assert.rejects(
      call(connection, '/svc/Echo', Buffer.from('y')),
      (error: unknown) => (error as UnaryCallError).code === 14,
    );
    sessions[0]!.destroy();
    await assert.rejects(pending, (error: unknown) => (error as UnaryCallError).code === 14);
    connection.close();
  });

  it('fails calls with UNAVAILABLE when the server sends garbage or drops the connection', async () => {
    const sockets: net.Socket[] = [];
    const raw = net.createServer((socket) => {
      sockets.push(socket);
      // A valid empty SETTINGS frame, so the client connects, then garbage once a request came
      // (more than the preface, SETTINGS and WINDOW_UPDATE the client opens with, 58 bytes).
      socket.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]));
      let received = 0;
      socket.on('data', (chunk: Buffer) => {
        const before = received;
        received += chunk.length;
        if (before <= 80 && received > 80) socket.write(Buffer.alloc(64, 0xff));
      });
    });
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
    servers.push({ close: () => raw.close() });
    const { port } = raw.address() as net.AddressInfo;
    const connection = await H2UnaryConnection.connect(`127.0.0.1:${port}`, 5000);
    await assert.rejects(
      call(connection, '/svc/Echo', Buffer.from('x')),
      (error: unknown) =>
        (error as UnaryCallError).code === 14 && /protocol error/.test((error as Error).message),
    );
    // A connection the server drops fails its calls too.
    const second = await H2UnaryConnection.connect(`127.0.0.1:${port}`, 5000);
    const pending = call(second, '/svc/Echo', Buffer.from('x'));
    for (const socket of sockets) socket.destroy();
    await assert.rejects(pending, (error: unknown) => (error as UnaryCallError).code === 14);
  });

  it('rejects a connection to a port where nothing listens, and a malformed target', async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as net.AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    await assert.rejects(H2UnaryConnection.connect(`127.0.0.1:${port}`, 2000), /cannot connect/);
    await assert.rejects(H2UnaryConnection.connect('no-port', 2000), /expected host:port/);
  });
});
