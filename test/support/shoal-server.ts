/**
 * Starts shoal's etcd gRPC front end in-process on a free port for tests and the comparison
 * harness. The backend defaults to the in-memory test double; pass the MVCC-store backend to test
 * the real thing.
 */
import { pino } from 'pino';
import type { EtcdBackend } from '../../src/server/etcd/backend.js';
import { EtcdGrpcServer, type EtcdServerOptions } from '../../src/server/etcd/server.js';
import { MemoryBackend } from './memory-backend.js';

export interface RunningShoal {
  endpoint: string;
  port: number;
  backend: EtcdBackend;
  server: EtcdGrpcServer;
  close(): Promise<void>;
}

export async function startShoal(
  options: Partial<EtcdServerOptions> & { backend?: EtcdBackend; port?: number } = {},
): Promise<RunningShoal> {
  const backend = options.backend ?? new MemoryBackend();
  const server = new EtcdGrpcServer({
    logger: pino({ level: process.env.SHOAL_LOG_LEVEL ?? 'silent' }),
    ...options,
    backend,
  });
  const port = await server.listen('127.0.0.1', options.port ?? 0);
  const endpoint = `http://127.0.0.1:${port}`;
  if (backend instanceof MemoryBackend) backend.setClientUrl(endpoint);
  return { endpoint, port, backend, server, close: () => server.close() };
}
