/**
 * The HTTP/2 gRPC server against a real gRPC client (@grpc/grpc-js): unary calls, statuses,
 * size limits, compression refused, unknown methods, deadlines and streams in both directions.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { encodeGrpcMessage, GrpcH2Server, parseGrpcTimeout } from './h2-grpc.js';

const raw = {
  decode: (bytes: Buffer) => Buffer.from(bytes),
  encode: (message: Buffer) => message,
};
const identity = (b: Buffer) => b;

describe('GrpcH2Server', () => {
  const server = new GrpcH2Server({ receiveMessageBytesMax: 1024 });
  let client: grpc.Client;
  let port = 0;
  const never = new Promise<Buffer>(() => {});

  before(async () => {
    server.addUnary('/t.S/Echo', raw, async (request) =>
      Buffer.concat([Buffer.from('echo:'), request]),
    );
    server.addUnary('/t.S/Fail', raw, async () => {
      throw Object.assign(new Error('x'), { code: 9, details: 'no, 100% not – ünïcode' });
    });
    server.addUnary('/t.S/Hang', raw, () => never);
    server.addStream(
      '/t.S/Chat',
      raw,
      (call) => {
        call.on('data', (m: Buffer) => call.write(Buffer.from(m.toString().toUpperCase())));
        call.on('end', () => call.end());
      },
      false,
    );
    server.addStream(
      '/t.S/Count',
      raw,
      (call) => {
        const n = Number(call.request!.toString());
        for (let i = 0; i < n; i++) call.write(Buffer.from(String(i)));
        call.emit('error', { code: 5, details: 'counted' });
      },
      true,
    );
    port = await server.listen('127.0.0.1', 0);
    client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });

  after(async () => {
    client.close();
    await server.close(100);
  });

  const unary = (path: string, body: Buffer, options: grpc.CallOptions = {}) =>
    new Promise<Buffer>((resolve, reject) =>
      client.makeUnaryRequest(
        path,
        identity,
        identity,
        body,
        new grpc.Metadata(),
        options,
        (e, r) => (e ? reject(e) : resolve(r!)),
      ),
    );

  it('answers a unary call', async () => {
    assert.equal((await unary('/t.S/Echo', Buffer.from('hi'))).toString(), 'echo:hi');
    assert.equal((await unary('/t.S/Echo', Buffer.alloc(0))).toString(), 'echo:');
  });

  it('sends a handler failure as its status and message', async () => {
    await assert.rejects(unary('/t.S/Fail', Buffer.from('x')), {
      code: 9,
      details: 'no, 100% not – ünïcode',
    });
  });

  it('answers an unknown method with UNIMPLEMENTED', async () => {
    await assert.rejects(unary('/t.S/Nope', Buffer.from('x')), { code: 12 });
  });

  it('refuses a message over the limit with RESOURCE_EXHAUSTED and keeps serving', async () => {
    await assert.rejects(unary('/t.S/Echo', Buffer.alloc(2000)), { code: 8 });
    assert.equal((await unary('/t.S/Echo', Buffer.from('ok'))).toString(), 'echo:ok');
  });

  it('ends a call at its deadline with DEADLINE_EXCEEDED', async () => {
    await assert.rejects(unary('/t.S/Hang', Buffer.from('x'), { deadline: Date.now() + 200 }), {
      code: 4,
    });
  });

  it('streams both ways', async () => {
    const call = client.makeBidiStreamRequest('/t.S/Chat', identity, identity);
    const got: string[] = [];
    call.on('data', (m: Buffer) => got.push(m.toString()));
    const done = new Promise<void>((resolve, reject) => {
      call.on('status', (s: grpc.StatusObject) => (s.code === 0 ? resolve() : reject(s)));
    });
    call.write(Buffer.from('a'));
    call.write(Buffer.from('bc'));
    call.end();
    await done;
    assert.deepEqual(got, ['A', 'BC']);
  });

  it('streams from the server and ends with the handler status', async () => {
    const call = client.makeServerStreamRequest('/t.S/Count', identity, identity, Buffer.from('3'));
    const got: string[] = [];
    call.on('data', (m: Buffer) => got.push(m.toString()));
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      call.on('error', () => {});
      call.on('status', resolve);
    });
    assert.deepEqual(got, ['0', '1', '2']);
    assert.equal(status.code, 5);
    assert.equal(status.details, 'counted');
  });

  it('refuses compressed messages', async () => {
    const compressing = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
      'grpc.default_compression_algorithm': 2,
      'grpc.default_compression_level': 2,
    });
    try {
      await assert.rejects(
        new Promise((resolve, reject) =>
          compressing.makeUnaryRequest(
            '/t.S/Echo',
            identity,
            identity,
            Buffer.alloc(500, 97),
            (e, r) => (e ? reject(e) : resolve(r)),
          ),
        ),
        { code: 12 },
      );
    } finally {
      compressing.close();
    }
  });
});

describe('gRPC header helpers', () => {
  it('parses grpc-timeout in every unit', () => {
    assert.equal(parseGrpcTimeout('5S'), 5000);
    assert.equal(parseGrpcTimeout('100m'), 100);
    assert.equal(parseGrpcTimeout('1500u'), 2);
    assert.equal(parseGrpcTimeout('2M'), 120_000);
    assert.equal(parseGrpcTimeout('1H'), 3_600_000);
    assert.equal(parseGrpcTimeout('7n'), 1);
    assert.equal(parseGrpcTimeout('abc'), undefined);
    assert.equal(parseGrpcTimeout(undefined), undefined);
  });

  it('percent-encodes grpc-message outside printable ASCII and the percent sign', () => {
    assert.equal(encodeGrpcMessage('a b%c'), 'a b%25c');
    assert.equal(encodeGrpcMessage('é'), '%C3%A9');
  });
});
