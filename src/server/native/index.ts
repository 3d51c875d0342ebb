/**
 * The member side of shoal's native client protocol. A member serves it on its peer RPC server
 * (member.ts registers it through `PeerTransport.addService`); `startNativeServer` runs it on a
 * server of its own, which is how the single-member tests serve the MVCC backend.
 */
import type { Logger } from 'pino';
import { nativeKv } from '../../client/protocol.js';
import { RpcServer } from '../../rpc/index.js';
import type { EtcdBackend } from '../etcd/backend.js';
import { createNativeKvService, type NativeKvService } from './service.js';

export { TXN_DEPTH_MAX } from './convert.js';
export {
  createNativeKvService,
  type NativeKvService,
  type NativeKvServiceOptions,
} from './service.js';

export interface NativeServerOptions {
  backend: EtcdBackend;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  logger?: Logger;
  /** See NativeKvServiceOptions.maxRequestBytes. */
  maxRequestBytes?: number;
}

export interface RunningNativeServer {
  /** host:port to give ShoalClient. */
  address: string;
  port: number;
  service: NativeKvService;
  close(): Promise<void>;
}

export async function startNativeServer(
  options: NativeServerOptions,
): Promise<RunningNativeServer> {
  const service = createNativeKvService({
    backend: options.backend,
    logger: options.logger,
    maxRequestBytes: options.maxRequestBytes,
  });
  const server = new RpcServer(options.logger === undefined ? {} : { logger: options.logger });
  server.addService(nativeKv, service.handlers);
  const host = options.host ?? '127.0.0.1';
  const { port } = await server.listen({ host, port: options.port ?? 0 });
  return { address: `${host}:${port}`, port, service, close: () => server.close() };
}
