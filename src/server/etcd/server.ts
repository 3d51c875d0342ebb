/**
 * The etcd v3 gRPC front end: serves etcd's KV, Watch, Lease, Cluster and Maintenance services over
 * HTTP/2 with shoal's own gRPC server (h2-grpc.ts), using protobufjs codecs built from shoal's own
 * .proto files. It decodes and
 * validates each request, enforces the request size limit, calls the `EtcdBackend`, and encodes the
 * answer; failures become gRPC statuses with etcd's exact codes and messages. Services and methods
 * that are not built yet answer UNIMPLEMENTED rather than pretending.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { type Logger, pino } from 'pino';
import type protobuf from 'protobufjs';
import type { EtcdBackend } from './backend.js';
import {
  boolField,
  decodeCompactionRequest,
  decodeDeleteRangeRequest,
  decodePutRequest,
  decodeRangeRequest,
  decodeTxnRequest,
  encodeDeleteRangeResponse,
  encodeHashKvResponse,
  encodeHeader,
  encodeLeaseGrantResponse,
  encodeLeaseKeepAliveResponse,
  encodeLeaseLeasesResponse,
  encodeLeaseTimeToLiveResponse,
  encodeMember,
  encodePutResponse,
  encodeRangeResponse,
  encodeStatusResponse,
  encodeTxnResponse,
  int64Bigint,
  int64Number,
  loadEtcdRoot,
  type PbMessage,
  toLong,
  uint64Bigint,
} from './codec.js';
import { EtcdError, etcdErrors, GrpcCode, invalidArgument } from './errors.js';
import { type GrpcCall, GrpcH2Server, type GrpcStatus, type MethodCodec } from './h2-grpc.js';
import { checkPutResponse, decodePutRequestBytes, encodePutResponseBytes } from './put-wire.js';
import type { MemberListResponse, PutRequest } from './types.js';
import {
  checkDeleteRangeRequest,
  checkPutRequest,
  checkRangeRequest,
  checkTxnRequest,
  txnOpsMaxDefault,
} from './validate.js';
import { progressIntervalMsDefault, WatchStream } from './watch.js';

/** etcd's default --max-request-bytes: the largest write a client may propose (1.5 MiB). */
export const maxRequestBytesDefault = 1.5 * 1024 * 1024;
/**
 * Like etcd, the transport accepts a little more than the request limit so that a slightly
 * oversized write is refused by the server with etcd's own "request is too large" message.
 */
export const grpcOverheadBytes = 512 * 1024;
/** Requests being executed at once; beyond this, clients get etcd's "too many requests". */
export const inflightRequestsMaxDefault = 10_000;
/** Keep-alives queued on one stream; a client that floods past this has its stream ended. */
export const keepAliveQueueMax = 1024;

export interface EtcdServerOptions {
  backend: EtcdBackend;
  maxRequestBytes?: number;
  txnOpsMax?: number;
  inflightRequestsMax?: number;
  /** How often watchers that asked for progress notifications get one (etcd: 10 minutes). */
  watchProgressIntervalMs?: number;
  logger?: Logger;
  /** Called after every unary request with its method, gRPC status code and latency (metrics). */
  onHandled?: (method: string, code: number, seconds: number) => void;
}

/** What a request decoder hands to its handler: the message and its size on the wire. */
interface Decoded {
  message: PbMessage;
  wireBytes: number;
}

/** A streaming call as its handler sees it (from h2-grpc.ts, or imitated by the gateway). */
export type StreamCall = GrpcCall<Decoded, PbMessage>;

type UnaryHandler = (request: Decoded) => Promise<PbMessage>;
type StreamHandler = (call: StreamCall) => void;

const unimplemented = (what: string): UnaryHandler => {
  return async () => {
    throw new EtcdError(GrpcCode.unimplemented, `shoal: ${what} is not implemented yet`);
  };
};

export class EtcdGrpcServer {
  readonly #backend: EtcdBackend;
  readonly #maxRequestBytes: number;
  readonly #txnOpsMax: number;
  readonly #inflightMax: number;
  readonly #progressIntervalMs: number;
  readonly #log: Logger;
  readonly #root: protobuf.Root;
  readonly #server: GrpcH2Server;
  readonly #onHandled: EtcdServerOptions['onHandled'];
  /** Unary methods by gRPC path, so the JSON gateway can run them without a gRPC call. */
  readonly #unary = new Map<
    string,
    { handler: UnaryHandler; requestType: protobuf.Type; responseType: protobuf.Type }
  >();
  /** Streaming methods by gRPC path, so the JSON gateway can run them on an HTTP response. */
  readonly #streams = new Map<
    string,
    { handler: StreamHandler; requestType: protobuf.Type; responseType: protobuf.Type }
  >();
  #inflight = 0;

  constructor(options: EtcdServerOptions) {
    this.#backend = options.backend;
    this.#maxRequestBytes = options.maxRequestBytes ?? maxRequestBytesDefault;
    this.#txnOpsMax = options.txnOpsMax ?? txnOpsMaxDefault;
    this.#inflightMax = options.inflightRequestsMax ?? inflightRequestsMaxDefault;
    this.#progressIntervalMs = options.watchProgressIntervalMs ?? progressIntervalMsDefault;
    this.#log = options.logger ?? pino({ name: 'etcd-api' });
    this.#root = loadEtcdRoot();
    this.#onHandled = options.onHandled;
    this.#server = new GrpcH2Server({
      receiveMessageBytesMax: this.#maxRequestBytes + grpcOverheadBytes,
      onInternalError: (error, path) =>
        this.#log.error({ err: error, method: path }, 'etcd API request failed'),
    });
    this.#addServices();
  }

  /** Listens on host:port (port 0 picks a free one) and resolves with the bound port. */
  listen(host = '127.0.0.1', port = 0): Promise<number> {
    return this.#server.listen(host, port);
  }

  /**
   * Runs one unary method on a decoded request message exactly as a gRPC call would (same
   * validation, size limit and backend call) and returns the response message. The JSON gateway
   * uses it; it throws `EtcdError`s for API errors.
   */
  async invoke(
    path: string,
    request: protobuf.Message,
  ): Promise<{
    response: PbMessage;
    responseType: protobuf.Type;
  }> {
    const method = this.#unary.get(path);
    if (!method) throw new EtcdError(GrpcCode.unimplemented, `shoal: ${path} is not served`);
    const wireBytes = method.requestType.encode(request).finish().length;
    const message = request as unknown as PbMessage;
    return {
      response: await method.handler({ message, wireBytes }),
      responseType: method.responseType,
    };
  }

  /** The protobuf type of a unary method's request, for decoding gateway JSON. */
  requestTypeOf(path: string): protobuf.Type | undefined {
    return this.#unary.get(path)?.requestType;
  }

  /**
   * A streaming method (Watch, LeaseKeepAlive) for the JSON gateway: `start` runs the handler on
   * a call object that behaves like an h2-grpc.ts call (write, end, data/drain/cancelled).
   */
  streamMethod(path: string):
    | {
        start: (call: StreamCall) => void;
        requestType: protobuf.Type;
        responseType: protobuf.Type;
      }
    | undefined {
    const method = this.#streams.get(path);
    if (!method) return undefined;
    const handler = method.handler as (call: StreamCall) => void;
    return {
      start: (call) => handler(call),
      requestType: method.requestType,
      responseType: method.responseType,
    };
  }

  /** Hands connections accepted elsewhere (the shared client port) to the gRPC server. */
  connectionInjector(): { injectConnection(connection: import('node:stream').Duplex): void } {
    return { injectConnection: (connection) => this.#server.injectConnection(connection) };
  }

  /** Stops accepting calls, lets running calls finish for up to `graceMs`, then cuts them. */
  close(graceMs = 2000): Promise<void> {
    return this.#server.close(graceMs);
  }

  /** KV, Watch and Lease: the data services. */
  #addServices(): void {
    const b = this.#backend;
    this.#addService('KV', {
      Range: (r) => this.#range(r),
      Put: (r) => this.#put(r),
      DeleteRange: (r) => this.#deleteRange(r),
      Txn: (r) => this.#txn(r),
      Compact: async (r) => {
        this.#checkSize(r);
        return {
          header: encodeHeader((await b.compact(decodeCompactionRequest(r.message))).header),
        };
      },
    });
    // Put, the hottest method, skips protobufjs both ways (put-wire.ts); the JSON gateway keeps
    // the generic path above.
    this.#server.addUnary(
      '/etcdserverpb.KV/Put',
      {
        decode: (bytes) => ({ put: decodePutRequestBytes(bytes), wireBytes: bytes.length }),
        encode: encodePutResponseBytes,
      },
      this.#wrap('KV.Put', async (r: { put: PutRequest; wireBytes: number }) => {
        checkPutRequest(r.put);
        if (r.wireBytes > this.#maxRequestBytes) throw etcdErrors.requestTooLarge();
        const response = await this.#backend.put(r.put);
        checkPutResponse(response);
        return response;
      }),
    );
    this.#addService(
      'Watch',
      {},
      {
        Watch: (call: StreamCall) =>
          void new WatchStream(call, b, this.#log, this.#progressIntervalMs, this.#maxRequestBytes),
      },
    );
    this.#addService(
      'Lease',
      {
        LeaseGrant: async (r) =>
          encodeLeaseGrantResponse(
            await b.leaseGrant(int64Number(r.message, 'TTL'), int64Bigint(r.message, 'ID')),
          ),
        LeaseRevoke: async (r) => ({
          header: encodeHeader((await b.leaseRevoke(int64Bigint(r.message, 'ID'))).header),
        }),
        LeaseTimeToLive: async (r) =>
          encodeLeaseTimeToLiveResponse(
            await b.leaseTimeToLive(int64Bigint(r.message, 'ID'), boolField(r.message, 'keys')),
          ),
        LeaseLeases: async () => encodeLeaseLeasesResponse(await b.leaseLeases()),
      },
      {
        LeaseKeepAlive: (call: StreamCall) => this.#leaseKeepAlive(call),
      },
    );
    this.#addAdminServices();
  }

  /** Cluster and Maintenance: membership (single member for now) and operator requests. */
  #addAdminServices(): void {
    const b = this.#backend;
    this.#addService('Cluster', {
      MemberList: async () => {
        const response = await b.memberList();
        return {
          // etcd's Cluster service leaves the revision out of its headers; clients see zero.
          header: encodeHeader({ ...response.header, revision: 0 }),
          members: response.members.map(encodeMember),
        };
      },
      MemberAdd: b.memberAdd
        ? async (r) => {
            const peerUrls = stringList(r.message, 'peerURLs');
            const response = await b.memberAdd!(peerUrls, boolField(r.message, 'isLearner'));
            return {
              header: encodeHeader({ ...response.header, revision: 0 }),
              member: encodeMember(response.member),
              members: response.members.map(encodeMember),
            };
          }
        : unimplemented('MemberAdd'),
      MemberRemove: b.memberRemove
        ? async (r) => encodeMemberList(await b.memberRemove!(uint64Bigint(r.message, 'ID')))
        : unimplemented('MemberRemove'),
      MemberUpdate: b.memberUpdate
        ? async (r) =>
            encodeMemberList(
              await b.memberUpdate!(
                uint64Bigint(r.message, 'ID'),
                stringList(r.message, 'peerURLs'),
              ),
            )
        : unimplemented('MemberUpdate'),
      MemberPromote: b.memberPromote
        ? async (r) => encodeMemberList(await b.memberPromote!(uint64Bigint(r.message, 'ID')))
        : unimplemented('MemberPromote'),
    });
    this.#addService(
      'Maintenance',
      {
        Status: async () => encodeStatusResponse(await b.status()),
        HashKV: async (r) =>
          encodeHashKvResponse(await b.hashKv(int64Number(r.message, 'revision'))),
        Alarm: (r) => this.#alarm(r),
        // LMDB reuses freed pages itself, so there is nothing to defragment; answer like etcd does.
        Defragment: async () => ({ header: encodeHeader((await b.status()).header) }),
        Hash: unimplemented('Hash'),
        MoveLeader: b.moveLeader
          ? async (r) => ({
              header: encodeHeader(
                (await b.moveLeader!(uint64Bigint(r.message, 'targetID'))).header,
              ),
            })
          : unimplemented('MoveLeader'),
      },
      { Snapshot: (call: StreamCall) => this.#snapshot(call) },
    );
  }

  /** Registers one etcd service; methods missing from the handlers answer UNIMPLEMENTED. */
  #addService(
    name: string,
    handlers: Record<string, UnaryHandler>,
    streamHandlers: Record<string, StreamHandler> = {},
  ): void {
    const service = this.#root.lookupService(`etcdserverpb.${name}`);
    for (const method of service.methodsArray) {
      method.resolve();
      const streaming = Boolean(method.requestStream || method.responseStream);
      const stream = streamHandlers[method.name];
      // Streaming methods without a handler are left out: the server answers UNIMPLEMENTED.
      if (streaming && !stream) continue;
      const requestType = method.resolvedRequestType!;
      const responseType = method.resolvedResponseType!;
      const path = `/etcdserverpb.${name}/${method.name}`;
      const codec: MethodCodec<Decoded, PbMessage> = {
        decode: (buffer) => ({
          message: requestType.decode(buffer) as unknown as PbMessage,
          wireBytes: buffer.length,
        }),
        encode: (value) => responseType.encode(value).finish(),
      };
      if (stream) {
        const serverStreaming = !method.requestStream;
        this.#server.addStream(path, codec, stream, serverStreaming);
        this.#streams.set(path, { handler: stream, requestType, responseType });
        continue;
      }
      const handler = handlers[method.name] ?? unimplemented(`${name}.${method.name}`);
      this.#server.addUnary(path, codec, this.#wrap(`${name}.${method.name}`, handler));
      this.#unary.set(path, { handler, requestType, responseType });
    }
  }

  /** Runs a handler with the in-flight limit and turns every failure into a gRPC status. */
  #wrap<Req, Res>(
    methodName: string,
    handler: (request: Req) => Promise<Res>,
  ): (request: Req) => Promise<Res> {
    return async (request) => {
      if (this.#inflight >= this.#inflightMax) throw toServiceError(etcdErrors.tooManyRequests());
      this.#inflight++;
      const started = performance.now();
      try {
        const response = await handler(request);
        this.#onHandled?.(methodName, GrpcCode.ok, (performance.now() - started) / 1000);
        return response;
      } catch (error) {
        if (!(error instanceof EtcdError)) {
          this.#log.error({ err: error, method: methodName }, 'etcd API request failed');
        }
        const status = toServiceError(error);
        this.#onHandled?.(methodName, status.code, (performance.now() - started) / 1000);
        throw status;
      } finally {
        this.#inflight--;
      }
    };
  }

  /**
   * Serves a keep-alive stream: each request renews one lease and gets one answer, in order.
   * Renewals run concurrently (a cluster answers one only once it is replicated, which takes up
   * to a renewal flush period), and their answers are written in request order; at most
   * keepAliveQueueMax are outstanding per stream.
   */
  #leaseKeepAlive(call: StreamCall): void {
    const queue: Promise<PbMessage>[] = [];
    let busy = false;
    let ended = false;
    let failed = false;
    const fail = (error: unknown) => {
      ended = true;
      failed = true;
      queue.length = 0;
      call.emit('error', toServiceError(error));
    };
    const pump = async () => {
      if (busy) return;
      busy = true;
      while (queue.length > 0 && !failed) {
        try {
          const response = await queue[0]!;
          if (failed) break;
          queue.shift();
          call.write(response);
        } catch (error) {
          if (!(error instanceof EtcdError)) {
            this.#log.error({ err: error }, 'lease keep-alive failed');
          }
          fail(error);
        }
      }
      busy = false;
      if (ended && !failed) call.end();
    };
    const renew = async (id: bigint) =>
      encodeLeaseKeepAliveResponse(await this.#backend.leaseKeepAlive(id));
    call.on('data', (request: Decoded) => {
      if (ended) return;
      if (queue.length >= keepAliveQueueMax) {
        fail(etcdErrors.tooManyRequests());
        return;
      }
      let id: bigint;
      try {
        id = int64Bigint(request.message, 'ID');
      } catch (error) {
        fail(error);
        return;
      }
      const response = renew(id);
      // Failures are handled in order by the pump; this only keeps them from being unhandled.
      response.catch(() => {});
      queue.push(response);
      void pump();
    });
    call.on('end', () => {
      ended = true;
      if (!busy && !failed) call.end();
    });
    call.on('error', () => {
      ended = true;
    });
  }

  /**
   * Streams a snapshot of the store, waiting for the client to drain before each next chunk so
   * that at most one chunk is buffered per stream. etcdctl checks what etcd appends to a snapshot
   * (a SHA-256 of everything before it, after a body whose length is a multiple of 512 bytes), so
   * the stream ends with a trailer: zero padding, the body's real length as a big-endian u64
   * ending on a 512-byte boundary, then the SHA-256 of all preceding bytes.
   */
  #snapshot(call: StreamCall): void {
    const snapshot = this.#backend.snapshot();
    let cancelled = false;
    call.on('cancelled', () => {
      cancelled = true;
    });
    const hash = createHash('sha256');
    const header = encodeHeader(this.#backend.header(snapshot.revision));
    const send = async (blob: Uint8Array) => {
      hash.update(blob);
      if (call.write({ header, remainingBytes: 0, blob }) || cancelled) return;
      // A cancelled call never drains: wait for whichever comes first.
      await Promise.race([once(call, 'drain'), once(call, 'cancelled')]);
    };
    const run = async () => {
      let bodyBytes = 0;
      for await (const chunk of snapshot.chunks) {
        if (cancelled) return;
        bodyBytes += chunk.length;
        await send(chunk);
      }
      const trailer = Buffer.alloc(snapshotTrailerBytes(bodyBytes));
      trailer.writeBigUInt64BE(BigInt(bodyBytes), trailer.length - 8);
      await send(trailer);
      call.write({ header, remainingBytes: 0, blob: hash.digest() });
    };
    run()
      .then(
        () => call.end(),
        (error: unknown) => {
          this.#log.error({ err: error }, 'snapshot stream failed');
          call.emit('error', toServiceError(error));
        },
      )
      .finally(() => snapshot.release());
  }

  /** Writes travel through raft in etcd, which refuses proposals above --max-request-bytes. */
  #checkSize(request: Decoded): void {
    if (request.wireBytes > this.#maxRequestBytes) throw etcdErrors.requestTooLarge();
  }

  async #range(request: Decoded): Promise<PbMessage> {
    const decoded = decodeRangeRequest(request.message);
    checkRangeRequest(decoded);
    return encodeRangeResponse(await this.#backend.range(decoded));
  }

  async #put(request: Decoded): Promise<PbMessage> {
    const decoded = decodePutRequest(request.message);
    checkPutRequest(decoded);
    this.#checkSize(request);
    return encodePutResponse(await this.#backend.put(decoded));
  }

  async #deleteRange(request: Decoded): Promise<PbMessage> {
    const decoded = decodeDeleteRangeRequest(request.message);
    checkDeleteRangeRequest(decoded);
    this.#checkSize(request);
    return encodeDeleteRangeResponse(await this.#backend.deleteRange(decoded));
  }

  async #txn(request: Decoded): Promise<PbMessage> {
    const decoded = decodeTxnRequest(request.message);
    checkTxnRequest(decoded, this.#txnOpsMax);
    // A read-only txn is served like a range (no proposal), so only writes are size-limited.
    if (hasWrites(decoded)) this.#checkSize(request);
    const { hasEmptyOp: _ignored, ...txn } = decoded;
    return encodeTxnResponse(await this.#backend.txn(txn));
  }

  async #alarm(request: Decoded): Promise<PbMessage> {
    const action = request.message.action;
    if (this.#backend.alarm) {
      const response = await this.#backend.alarm(
        typeof action === 'number' ? action : 0,
        uint64Bigint(request.message, 'memberID'),
        typeof request.message.alarm === 'number' ? request.message.alarm : 0,
      );
      return {
        header: encodeHeader(response.header),
        alarms: response.alarms.map((a) => ({
          memberID: toLong(a.memberId, true),
          alarm: a.alarm,
        })),
      };
    }
    if (action !== undefined && action !== 0) {
      throw new EtcdError(GrpcCode.unimplemented, 'shoal: alarms cannot be raised or cleared yet');
    }
    // shoal raises no alarms yet (no space quota, no corruption check), so the list is empty.
    return { header: encodeHeader((await this.#backend.status()).header), alarms: [] };
  }
}

/** Padding plus the 8-byte length that bring a snapshot body to a multiple of 512 bytes. */
export function snapshotTrailerBytes(bodyBytes: number): number {
  const withLength = bodyBytes + 8;
  return 8 + ((512 - (withLength % 512)) % 512);
}

function hasWrites(txn: ReturnType<typeof decodeTxnRequest>): boolean {
  return [...txn.success, ...txn.failure].some(
    (op) =>
      op.type === 'put' ||
      op.type === 'deleteRange' ||
      (op.type === 'txn' && hasWrites(op.request as ReturnType<typeof decodeTxnRequest>)),
  );
}

function toServiceError(error: unknown): GrpcStatus & Error {
  if (error instanceof EtcdError) {
    return Object.assign(new Error(error.message), { code: error.code, details: error.message });
  }
  const message = error instanceof Error ? error.message : String(error);
  return Object.assign(new Error(message), { code: GrpcCode.unknown, details: message });
}

function stringList(message: PbMessage, field: string): string[] {
  const value = message[field];
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw invalidArgument(`${field} must be a list of strings`);
  }
  return value as string[];
}

function encodeMemberList(response: MemberListResponse): PbMessage {
  // etcd's Cluster service leaves the revision out of its headers; clients see zero.
  return {
    header: encodeHeader({ ...response.header, revision: 0 }),
    members: response.members.map(encodeMember),
  };
}
