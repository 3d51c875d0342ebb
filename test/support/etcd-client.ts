/**
 * A minimal etcd v3 gRPC client for tests, generated at run time by @grpc/proto-loader from shoal's
 * .proto files. It deliberately shares no code with the server's protobufjs codecs, so a test that
 * talks through it checks the wire format from an independent decoder as well as the server.
 */
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const protoDir = join(import.meta.dirname, '..', '..', 'src', 'server', 'etcd', 'proto');

/** Messages as proto-loader hands them over: int64 as decimal strings, bytes as Buffer. */
export type Message = Record<string, unknown>;

type UnaryMethod = (
  request: Message,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response: Message) => void,
) => void;

type ServiceClient = grpc.Client & Record<string, UnaryMethod>;
type ServiceConstructor = new (
  address: string,
  credentials: grpc.ChannelCredentials,
) => ServiceClient;

let loaded: Record<string, ServiceConstructor> | undefined;

function services(): Record<string, ServiceConstructor> {
  if (loaded) return loaded;
  const definition = protoLoader.loadSync('rpc.proto', {
    includeDirs: [protoDir],
    longs: String,
    enums: Number,
    bytes: Buffer,
    defaults: true,
    oneofs: true,
  });
  const root = grpc.loadPackageDefinition(definition) as unknown as {
    etcdserverpb: Record<string, ServiceConstructor>;
  };
  loaded = root.etcdserverpb;
  return loaded;
}

/** Per-call bound, so a stuck server shows up as DEADLINE_EXCEEDED instead of a hung test. */
export const callDeadlineMs = 5_000;

export class EtcdTestClient {
  readonly #kv: ServiceClient;
  readonly #maintenance: ServiceClient;
  readonly #watch: ServiceClient;
  readonly #lease: ServiceClient;

  readonly #deadlineMs: number;

  /** `address` is host:port; every unary call gets `deadlineMs` to complete. */
  constructor(address: string, deadlineMs = callDeadlineMs) {
    this.#deadlineMs = deadlineMs;
    const s = services();
    const credentials = grpc.credentials.createInsecure();
    this.#kv = new s.KV!(address, credentials);
    this.#maintenance = new s.Maintenance!(address, credentials);
    this.#watch = new s.Watch!(address, credentials);
    this.#lease = new s.Lease!(address, credentials);
  }

  /** Downloads a Maintenance snapshot and returns the concatenated blobs. */
  snapshot(): Promise<Buffer> {
    const open = this.#maintenance.Snapshot as unknown as (
      request: Message,
    ) => grpc.ClientReadableStream<Message>;
    const stream = open.call(this.#maintenance, {});
    const blobs: Buffer[] = [];
    return new Promise((resolve, reject) => {
      stream.on('data', (response: Message) => blobs.push(response.blob as Buffer));
      stream.on('error', reject);
      stream.on('end', () => resolve(Buffer.concat(blobs)));
    });
  }

  /** Opens a Watch stream: write WatchRequests, read WatchResponses. */
  watch(): grpc.ClientDuplexStream<Message, Message> {
    const open = this.#watch.Watch as unknown as () => grpc.ClientDuplexStream<Message, Message>;
    return open.call(this.#watch);
  }

  #call(client: ServiceClient, method: string, request: Message): Promise<Message> {
    return new Promise((resolve, reject) => {
      const deadline = new Date(Date.now() + this.#deadlineMs);
      client[method]!.call(client, request, { deadline }, (error, response) =>
        error ? reject(error) : resolve(response),
      );
    });
  }

  range(request: Message): Promise<Message> {
    return this.#call(this.#kv, 'Range', request);
  }
  put(request: Message): Promise<Message> {
    return this.#call(this.#kv, 'Put', request);
  }
  deleteRange(request: Message): Promise<Message> {
    return this.#call(this.#kv, 'DeleteRange', request);
  }
  txn(request: Message): Promise<Message> {
    return this.#call(this.#kv, 'Txn', request);
  }
  compact(request: Message): Promise<Message> {
    return this.#call(this.#kv, 'Compact', request);
  }
  leaseGrant(request: Message): Promise<Message> {
    return this.#call(this.#lease, 'LeaseGrant', request);
  }

  /** One keep-alive on its own stream: resolves with the first response (bounded by the deadline). */
  leaseKeepAliveOnce(id: string): Promise<Message> {
    const open = this.#lease.LeaseKeepAlive as unknown as (
      options: grpc.CallOptions,
    ) => grpc.ClientDuplexStream<Message, Message>;
    const stream = open.call(this.#lease, { deadline: new Date(Date.now() + this.#deadlineMs) });
    return new Promise((resolve, reject) => {
      stream.once('data', (response: Message) => {
        resolve(response);
        stream.end();
        stream.cancel();
      });
      stream.on('error', reject);
      stream.write({ ID: id });
    });
  }

  status(): Promise<Message> {
    return this.#call(this.#maintenance, 'Status', {});
  }

  close(): void {
    this.#kv.close();
    this.#maintenance.close();
    this.#watch.close();
    this.#lease.close();
  }
}
