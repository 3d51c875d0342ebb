/**
 * The :authority filter in front of Node's HTTP/2 server, driven by a raw client that writes frames
 * itself: a URL-shaped :authority (etcdctl's passthrough dial) reaches the server repaired on every
 * request of the connection, where nghttp2 alone resets the stream; a valid one gets the raw socket.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttp2Server, type Http2Server } from 'node:http2';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  AuthorityFilterStream,
  repairAuthority,
  routeHttp2Connection,
} from './authority-filter.js';
import { encodeLiteralBlock } from './hpack.js';

const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, payload]);
}

const request = (streamId: number, authority: string) =>
  frame(
    0x1,
    0x5, // END_STREAM | END_HEADERS
    streamId,
    encodeLiteralBlock([
      { name: ':method', value: 'GET' },
      { name: ':scheme', value: 'http' },
      { name: ':path', value: '/' },
      { name: ':authority', value: authority },
    ]),
  );

/** Reads server frames until every stream in `streams` got HEADERS or RST_STREAM. */
async function outcomes(socket: Socket, streams: number[]): Promise<Map<number, string>> {
  const seen = new Map<number, string>();
  let buffer = Buffer.alloc(0);
  for await (const chunk of socket) {
    buffer = Buffer.concat([buffer, chunk as Buffer]);
    while (buffer.length >= 9 && buffer.length >= 9 + buffer.readUIntBE(0, 3)) {
      const length = buffer.readUIntBE(0, 3);
      const type = buffer[3]!;
      const streamId = buffer.readUInt32BE(5) & 0x7fffffff;
      if (type === 0x4 && (buffer[4]! & 1) === 0) socket.write(frame(0x4, 0x1, 0, Buffer.alloc(0)));
      if (type === 0x1) seen.set(streamId, 'headers');
      if (type === 0x3) seen.set(streamId, 'reset');
      buffer = buffer.subarray(9 + length);
    }
    if (streams.every((s) => seen.has(s))) break;
  }
  return seen;
}

describe('HTTP/2 :authority filter', () => {
  let http2: Http2Server;
  let net: Server;
  let port = 0;
  const authorities: string[] = [];
  const delivered: string[] = [];

  before(async () => {
    http2 = createHttp2Server((req, res) => {
      authorities.push(req.headers[':authority'] ?? '(none)');
      res.end('ok');
    });
    net = createServer((socket) => {
      socket.once('data', (head) => {
        socket.pause();
        socket.unshift(head);
        routeHttp2Connection(socket, (connection) => {
          delivered.push(connection instanceof AuthorityFilterStream ? 'filtered' : 'raw');
          http2.emit('connection', connection);
        });
      });
    });
    net.listen(0, '127.0.0.1');
    await once(net, 'listening');
    const address = net.address();
    port = typeof address === 'object' && address ? address.port : 0;
  });

  after(() => {
    net.close();
    http2.close();
  });

  const run = async (authority: string, streams: number[]) => {
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(Buffer.concat([preface, frame(0x4, 0, 0, Buffer.alloc(0))]));
    socket.write(Buffer.concat(streams.map((id) => request(id, authority))));
    const result = await outcomes(socket, streams);
    socket.destroy();
    return streams.map((id) => result.get(id));
  };

  test('a URL-shaped :authority is repaired on every request of the connection', async () => {
    authorities.length = 0;
    delivered.length = 0;
    assert.deepEqual(await run('http://127.0.0.1:2379', [1, 3]), ['headers', 'headers']);
    assert.deepEqual(authorities, ['127.0.0.1:2379', '127.0.0.1:2379']);
    assert.deepEqual(delivered, ['filtered']);
  });

  test('a valid :authority gets the raw socket', async () => {
    authorities.length = 0;
    delivered.length = 0;
    assert.deepEqual(await run('127.0.0.1:2379', [1]), ['headers']);
    assert.deepEqual(authorities, ['127.0.0.1:2379']);
    assert.deepEqual(delivered, ['raw']);
  });

  test('repairAuthority keeps host:port and drops what cannot be repaired', () => {
    assert.equal(repairAuthority('http://[::1]:2379/'), '[::1]:2379');
    assert.equal(repairAuthority('unix:///tmp/sock'), undefined);
    assert.equal(repairAuthority('https://h:1/x?y'), 'h:1');
  });
});
