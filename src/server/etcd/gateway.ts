/**
 * etcd's JSON gateway (`POST /v3/kv/put` and friends) and the single client port that serves it
 * next to gRPC, as etcd does: each new connection is sniffed, HTTP/2 (gRPC) goes to the gRPC server (h2-grpc.ts) and
 * HTTP/1.1 goes to the gateway. The gateway runs the very same unary handlers as gRPC (validation,
 * size limit, backend), converting JSON in etcd's gateway conventions: original proto field names,
 * 64-bit integers as strings, bytes as base64, default values left out, errors as
 * `{"error", "code", "message"}` with the gateway's HTTP status for the gRPC code.
 */

import { EventEmitter } from 'node:events';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import type { Logger } from 'pino';
import protobuf from 'protobufjs';
import type { PbMessage } from './codec.js';
import { loadEtcdRoot } from './codec.js';
import { EtcdError, GrpcCode, type GrpcCodeNumber } from './errors.js';
import { JsonStreamError, JsonValueSplitter } from './json-stream.js';
import type { EtcdGrpcServer, StreamCall } from './server.js';

/** Largest JSON body accepted; base64 and JSON overhead on top of the request size limit. */
export const gatewayBodyBytesMax = 4 * 1024 * 1024;
/** Bytes read before deciding a connection is HTTP/2 or HTTP/1; the preface needs 3. */
const sniffBytes = 3;

/** Gateway paths (etcd 3.4's, including its older /v3/kv/lease aliases) to gRPC methods. */
const routes: Record<string, string> = {
  '/v3/kv/range': 'KV/Range',
  '/v3/kv/put': 'KV/Put',
  '/v3/kv/deleterange': 'KV/DeleteRange',
  '/v3/kv/txn': 'KV/Txn',
  '/v3/kv/compaction': 'KV/Compact',
  '/v3/lease/grant': 'Lease/LeaseGrant',
  '/v3/lease/revoke': 'Lease/LeaseRevoke',
  '/v3/kv/lease/revoke': 'Lease/LeaseRevoke',
  '/v3/lease/timetolive': 'Lease/LeaseTimeToLive',
  '/v3/kv/lease/timetolive': 'Lease/LeaseTimeToLive',
  '/v3/lease/leases': 'Lease/LeaseLeases',
  '/v3/kv/lease/leases': 'Lease/LeaseLeases',
  '/v3/cluster/member/list': 'Cluster/MemberList',
  '/v3/maintenance/status': 'Maintenance/Status',
  '/v3/maintenance/hashkv': 'Maintenance/HashKV',
  '/v3/maintenance/alarm': 'Maintenance/Alarm',
  '/v3/maintenance/defragment': 'Maintenance/Defragment',
};

/** Streaming gateway paths: JSON requests in, newline-delimited `{"result": ...}` out. */
const streamRoutes: Record<string, string> = {
  '/v3/watch': 'Watch/Watch',
  '/v3/lease/keepalive': 'Lease/LeaseKeepAlive',
};

/** grpc-gateway's HTTP status for each gRPC code (v1 mapping, which etcd 3.4 uses). */
const httpStatusOf: Record<number, number> = {
  [GrpcCode.cancelled]: 408,
  [GrpcCode.unknown]: 500,
  [GrpcCode.invalidArgument]: 400,
  [GrpcCode.deadlineExceeded]: 504,
  [GrpcCode.notFound]: 404,
  [GrpcCode.resourceExhausted]: 429,
  [GrpcCode.failedPrecondition]: 400,
  [GrpcCode.outOfRange]: 400,
  [GrpcCode.unimplemented]: 501,
  [GrpcCode.internal]: 500,
  [GrpcCode.unavailable]: 503,
  [GrpcCode.dataLoss]: 500,
};

/** Field names as written in the .proto files; the gateway speaks them. */
const originalNames = (() => {
  const root = new protobuf.Root();
  const camel = loadEtcdRoot();
  // Reload with the original spelling by re-parsing the same files.
  root.resolvePath = camel.resolvePath;
  root.loadSync('rpc.proto', { keepCase: true });
  root.resolveAll();
  return root;
})();

export class EtcdGateway {
  readonly #grpc: EtcdGrpcServer;
  readonly #log: Logger;

  constructor(grpc: EtcdGrpcServer, log: Logger) {
    this.#grpc = grpc;
    this.#log = log;
  }

  /** Handles one HTTP request; answers 404 for paths that are not gateway routes. */
  handle(request: IncomingMessage, response: ServerResponse): void {
    const path = (request.url ?? '').split('?')[0]!;
    const streamRoute = streamRoutes[path];
    if (request.method === 'POST' && streamRoute !== undefined) {
      this.#stream(streamRoute, request, response);
      return;
    }
    const route = routes[path];
    if (request.method !== 'POST' || route === undefined) {
      send(response, 404, { error: 'Not Found', code: 5, message: 'Not Found' });
      return;
    }
    readBody(request)
      .then((body) => this.#run(route, body))
      .then(
        (json) => send(response, 200, json),
        (error: unknown) => {
          const etcd = error instanceof EtcdError ? error : undefined;
          if (!etcd) this.#log.error({ err: error, route }, 'gateway request failed');
          const code = etcd?.code ?? GrpcCode.unknown;
          const message = error instanceof Error ? error.message : String(error);
          send(response, httpStatusOf[code] ?? 500, { error: message, code, message });
        },
      );
  }

  /**
   * A streaming route reads its body as a stream of JSON requests (concatenated or one per line)
   * and hands each to the stream as soon as it is complete, as etcd's grpc-gateway does: one
   * connection can create several watches, cancel them, ask for progress, or renew leases. The
   * first request decides the HTTP answer: when it is malformed the answer is an error status, as
   * before. A malformed or oversized request later in the body stops the reading of requests and
   * nothing more (etcd's gateway does the same: no error line, and the watches already created
   * keep streaming until the client goes away).
   */
  #stream(route: string, request: IncomingMessage, response: ServerResponse): void {
    const [service, method] = route.split('/') as [string, string];
    const stream = this.#grpc.streamMethod(`/etcdserverpb.${service}/${method}`);
    if (!stream) {
      send(response, 501, { error: 'Not Implemented', code: 12, message: 'Not Implemented' });
      return;
    }
    const splitter = new JsonValueSplitter(gatewayBodyBytesMax);
    let gateway: GatewayStream | undefined;
    let reading = true;
    const stop = (error: unknown) => {
      reading = false;
      if (gateway === undefined) {
        this.#answerError(response, route, error);
        return;
      }
      this.#log.debug({ err: error, route }, 'gateway stream stopped reading requests');
    };
    const deliver = (body: Buffer) => {
      const message = this.#decode(body, stream.requestType, GrpcCode.unknown);
      if (gateway === undefined) {
        gateway = new GatewayStream(this.#log, response, stream.responseType);
        stream.start(gateway.call);
      }
      const wireBytes = stream.requestType.encode(message).finish().length;
      gateway.call.emit('data', { message, wireBytes });
    };
    request.on('data', (chunk: Buffer) => {
      if (!reading || response.destroyed) return;
      try {
        for (const value of splitter.push(chunk)) {
          deliver(value);
          if (response.destroyed) return;
        }
        // Backpressure: no more requests are read while the client is not reading the answers.
        if (response.writableNeedDrain) {
          request.pause();
          response.once('drain', () => request.resume());
        }
      } catch (error) {
        stop(error);
      }
    });
    request.on('end', () => {
      if (!reading) return;
      try {
        splitter.end();
        // An empty body is one empty request, as it always was.
        if (gateway === undefined) deliver(Buffer.alloc(0));
      } catch (error) {
        stop(error);
      }
    });
    request.on('error', () => {
      reading = false;
    });
  }

  #answerError(response: ServerResponse, route: string, error: unknown): void {
    const etcd =
      error instanceof EtcdError
        ? error
        : error instanceof JsonStreamError
          ? error.tooLarge
            ? etcdTooLarge()
            : new EtcdError(GrpcCode.unknown, `invalid JSON: ${error.message}`)
          : undefined;
    if (!etcd) this.#log.error({ err: error, route }, 'gateway stream failed');
    const code = etcd?.code ?? GrpcCode.unknown;
    const message = etcd?.message ?? (error instanceof Error ? error.message : String(error));
    send(response, httpStatusOf[code] ?? 500, { error: message, code, message });
  }

  /**
   * Decodes a JSON body into a request message of `camelType` (the type grpc handlers take).
   * `badJsonCode` is the code for unparsable JSON: etcd answers it as invalid argument on unary
   * routes and as unknown (HTTP 500) on streaming ones.
   */
  #decode(body: Buffer, camelType: protobuf.Type, badJsonCode: GrpcCodeNumber): protobuf.Message {
    const requestType = originalNames.lookupType(camelType.fullName.slice(1));
    let json: unknown;
    try {
      json = body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
    } catch (error) {
      throw new EtcdError(badJsonCode, `invalid JSON: ${(error as Error).message}`);
    }
    try {
      const bytes = requestType
        .encode(
          requestType.fromObject(toOriginalNames(json, requestType) as Record<string, unknown>),
        )
        .finish();
      return camelType.decode(bytes);
    } catch (error) {
      throw new EtcdError(GrpcCode.invalidArgument, `invalid request: ${(error as Error).message}`);
    }
  }

  async #run(route: string, body: Buffer): Promise<unknown> {
    const [service, method] = route.split('/') as [string, string];
    const requestType = originalNames.lookupType(
      `etcdserverpb.${requestTypeName(service, method)}`,
    );
    let json: unknown;
    try {
      json = body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
    } catch (error) {
      throw new EtcdError(GrpcCode.invalidArgument, `invalid JSON: ${(error as Error).message}`);
    }
    let bytes: Uint8Array;
    try {
      bytes = requestType
        .encode(
          requestType.fromObject(toOriginalNames(json, requestType) as Record<string, unknown>),
        )
        .finish();
    } catch (error) {
      throw new EtcdError(GrpcCode.invalidArgument, `invalid request: ${(error as Error).message}`);
    }
    const path = `/etcdserverpb.${service}/${method}`;
    const camelType = this.#grpc.requestTypeOf(path);
    if (!camelType) throw new EtcdError(GrpcCode.unimplemented, `shoal: ${path} is not served`);
    const { response, responseType } = await this.#grpc.invoke(path, camelType.decode(bytes));
    const encoded = responseType.encode(response).finish();
    const outType = originalNames.lookupType(responseType.fullName.slice(1));
    const object = outType.toObject(outType.decode(encoded), {
      longs: String,
      bytes: String,
      enums: String,
      defaults: false,
    });
    return withoutDefaults(object);
  }
}

/**
 * Runs a streaming method for one HTTP request, as grpc-gateway does: the body is a stream of
 * request messages; each response goes out at once as a line `{"result": ...}`; the stream ends when the
 * client disconnects (the request body ending is not a half-close that ends a watch, just as on
 * etcd, whose watch stays open after the gateway closes its sending side).
 */
class GatewayStream {
  readonly #log: Logger;
  readonly #response: ServerResponse;
  readonly #outType: protobuf.Type;
  readonly #responseType: protobuf.Type;
  readonly call: StreamCall;

  constructor(log: Logger, response: ServerResponse, responseType: protobuf.Type) {
    this.#log = log;
    this.#response = response;
    this.#responseType = responseType;
    this.#outType = originalNames.lookupType(responseType.fullName.slice(1));
    const emitter = new EventEmitter();
    const call = Object.assign(emitter, {
      write: (message: PbMessage) => this.#write(message),
      end: () => {
        if (!response.writableEnded) response.end();
      },
    });
    this.call = call as unknown as StreamCall;
    // A stream error (a malformed watch request, a failed keep-alive) goes out as grpc-gateway's
    // in-stream error object, then the response ends.
    emitter.on('error', (error: { code?: number; details?: string; message?: string }) => {
      const code = error.code ?? GrpcCode.unknown;
      const message = error.details ?? error.message ?? 'unknown';
      this.#line({
        error: { grpc_code: code, http_code: httpStatusOf[code] ?? 500, message },
      });
      if (!response.writableEnded) response.end();
    });
    response.on('drain', () => emitter.emit('drain'));
    response.on('close', () => emitter.emit('cancelled'));
  }

  #write(message: PbMessage): boolean {
    const encoded = this.#responseType.encode(message).finish();
    const object = this.#outType.toObject(this.#outType.decode(encoded), {
      longs: String,
      bytes: String,
      enums: String,
      defaults: false,
    });
    return this.#line({ result: withoutDefaults(withoutZeroEnums(object, this.#outType)) });
  }

  #line(body: unknown): boolean {
    const response = this.#response;
    if (response.writableEnded || response.destroyed) return true;
    if (!response.headersSent) {
      response.writeHead(200, { 'content-type': 'application/json' });
    }
    try {
      return response.write(`${JSON.stringify(body)}\n`);
    } catch (error) {
      this.#log.warn({ err: error }, 'gateway stream write failed');
      return true;
    }
  }
}

function requestTypeName(service: string, method: string): string {
  const names: Record<string, string> = {
    'KV/Compact': 'CompactionRequest',
    'KV/Range': 'RangeRequest',
  };
  return names[`${service}/${method}`] ?? `${method}Request`;
}

/** Accepts both spellings (JSON camelCase and proto snake_case), as grpc-gateway does. */
function toOriginalNames(value: unknown, type: protobuf.Type): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    const field =
      type.fields[key] ??
      type.fieldsArray.find(
        (f) => f.name.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase()) === key,
      );
    if (!field) continue; // grpc-gateway ignores unknown fields too.
    field.resolve();
    const nested = field.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
    out[field.name] =
      nested === undefined
        ? item
        : Array.isArray(item)
          ? item.map((element) => toOriginalNames(element, nested))
          : toOriginalNames(item, nested);
  }
  return out;
}

/**
 * Drops enum fields holding their zero value (an event's `PUT`): protobufjs encodes an explicitly
 * set zero, so it survives the round trip, but proto3 JSON leaves it out.
 */
function withoutZeroEnums(value: unknown, type: protobuf.Type): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    const field = type.fields[key];
    field?.resolve();
    const resolved = field?.resolvedType;
    if (resolved instanceof protobuf.Enum && resolved.values[item as string] === 0) continue;
    out[key] =
      resolved instanceof protobuf.Type
        ? Array.isArray(item)
          ? item.map((element) => withoutZeroEnums(element, resolved))
          : withoutZeroEnums(item, resolved)
        : item;
  }
  return out;
}

/** proto3 JSON leaves out default values (false, 0, "", empty lists); etcd's gateway does too. */
function withoutDefaults(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutDefaults);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    if (item === false || item === 0 || item === '0' || item === '') continue;
    if (Array.isArray(item) && item.length === 0) continue;
    out[key] = withoutDefaults(item);
  }
  return out;
}

function readBody(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    request.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > gatewayBodyBytesMax) {
        reject(etcdTooLarge());
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

const etcdTooLarge = () =>
  new EtcdError(GrpcCode.invalidArgument, 'etcdserver: request is too large');

function send(response: ServerResponse, status: number, body: unknown): void {
  if (response.headersSent) return;
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  response.end(text);
}

/**
 * Listens on one port for both gRPC (HTTP/2, handed to h2-grpc.ts) and the JSON gateway (HTTP/1.1).
 * Resolves with the bound port and a close function.
 */
export function listenClientPort(
  grpc: EtcdGrpcServer,
  gateway: EtcdGateway,
  host: string,
  port: number,
): Promise<{ port: number; close: () => Promise<void> }> {
  const injector = grpc.connectionInjector();
  const http = createHttpServer((request, response) => gateway.handle(request, response));
  const sockets = new Set<Socket>();
  const net = createNetServer((socket) => {
    sockets.add(socket);
    // Answers are small and latency-bound; Nagle's algorithm would hold them back.
    socket.setNoDelay(true);
    socket.once('close', () => sockets.delete(socket));
    socket.once('error', () => socket.destroy());
    sniff(socket, (isHttp2) => {
      if (isHttp2) injector.injectConnection(socket);
      else http.emit('connection', socket);
    });
  });
  return new Promise((resolve, reject) => {
    net.once('error', reject);
    net.listen(port, host, () => {
      const address = net.address();
      const bound = typeof address === 'object' && address ? address.port : port;
      resolve({
        port: bound,
        close: () =>
          new Promise((done) => {
            for (const socket of sockets) socket.destroy();
            net.close(() => done());
          }),
      });
    });
  });
}

/** Reads the first bytes of a connection, puts them back, and reports whether it is HTTP/2. */
function sniff(socket: Socket, decide: (isHttp2: boolean) => void): void {
  let head = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    head = Buffer.concat([head, chunk]);
    if (head.length < sniffBytes) return;
    socket.off('data', onData);
    socket.pause();
    socket.unshift(head);
    // The HTTP/2 connection preface starts with "PRI"; no HTTP/1 method does. Both servers
    // read what was put back once the socket flows again.
    decide(head.subarray(0, sniffBytes).toString('latin1') === 'PRI');
    socket.resume();
  };
  socket.on('data', onData);
}
