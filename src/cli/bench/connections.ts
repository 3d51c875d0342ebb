/**
 * grpc-js channels for the streaming parts of the load generator (watch-latency) and for probes:
 * `conns` separate HTTP/2 connections spread round-robin over
 * the endpoints, each a grpc-js Client with a private subchannel pool (grpc-js would otherwise share
 * one connection between clients with the same target and options). Requests and responses pass
 * through as raw Buffers: the generator encodes them itself (wire.ts), so grpc-js does no codec work.
 * Unary calls of put/range/txn runs go through h2-unary.ts instead, which costs far less per call.
 */
import * as grpc from '@grpc/grpc-js';

/** How long connecting to every endpoint may take before the run fails with a clear error. */
export const connectTimeoutMs = 10_000;
/** Largest response the generator accepts (range responses of many keys). */
export const responseBytesMax = 64 * 1024 * 1024;

export const methodPaths = {
  put: '/etcdserverpb.KV/Put',
  range: '/etcdserverpb.KV/Range',
  txn: '/etcdserverpb.KV/Txn',
  watch: '/etcdserverpb.Watch/Watch',
} as const;

export const passThrough = (buffer: Buffer): Buffer => buffer;

/** "http://127.0.0.1:2379" or "127.0.0.1:2379" -> "127.0.0.1:2379". */
export function endpointTarget(endpoint: string): string {
  const trimmed = endpoint.trim();
  if (trimmed.startsWith('https://')) {
    throw new Error(`${endpoint}: TLS endpoints are not supported by shoal bench yet`);
  }
  return trimmed.replace(/^http:\/\//, '').replace(/\/+$/, '');
}

export async function openConnections(
  endpoints: readonly string[],
  connCount: number,
): Promise<grpc.Client[]> {
  if (endpoints.length === 0) throw new Error('no endpoints given');
  const clients: grpc.Client[] = [];
  for (let i = 0; i < connCount; i++) {
    const target = endpointTarget(endpoints[i % endpoints.length]!);
    clients.push(
      new grpc.Client(target, grpc.credentials.createInsecure(), {
        'grpc.use_local_subchannel_pool': 1,
        'grpc.max_receive_message_length': responseBytesMax,
        // No channelz bookkeeping (per-call counters the generator never reads) and no
        // transparent retries, which would hide failed requests inside the measured latency.
        'grpc.enable_channelz': 0,
        'grpc.enable_retries': 0,
      }),
    );
  }
  const deadline = Date.now() + connectTimeoutMs;
  try {
    await Promise.all(
      clients.map(
        (client) =>
          new Promise<void>((resolve, reject) => {
            client.waitForReady(deadline, (error) => {
              if (error)
                reject(
                  new Error(
                    `cannot connect to ${client.getChannel().getTarget()}: ${error.message}`,
                  ),
                );
              else resolve();
            });
          }),
      ),
    );
  } catch (error) {
    closeConnections(clients);
    throw error;
  }
  return clients;
}

export function closeConnections(clients: readonly grpc.Client[]): void {
  for (const client of clients) client.close();
}

/** One unary call with pre-encoded request bytes; the callback gets the raw response bytes. */
export function unaryCall(
  client: grpc.Client,
  path: string,
  request: Buffer,
  callback: (error: grpc.ServiceError | null, response?: Buffer) => void,
): void {
  client.makeUnaryRequest(path, passThrough, passThrough, request, callback);
}

/** The gRPC status name of an error ("UNAVAILABLE"), or "UNKNOWN" for anything else. */
export function statusName(error: grpc.ServiceError | Error): string {
  const code = (error as grpc.ServiceError).code;
  return typeof code === 'number' ? (grpc.status[code] ?? `CODE_${code}`) : 'UNKNOWN';
}
