/**
 * Starts shoal's etcd gRPC front end in-process on a free port for tests and the comparison
 * harness. By default it runs on the real LMDB MVCC store (single member, no raft) in a temporary
 * directory that `close()` removes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { MvccStore } from '../../src/kv/index.js';
import type { EtcdBackend } from '../../src/server/etcd/backend.js';
import { SingleMemberBackend } from '../../src/server/etcd/mvcc-backend.js';
import { EtcdGrpcServer, type EtcdServerOptions } from '../../src/server/etcd/server.js';

export interface RunningShoal {
  endpoint: string;
  port: number;
  backend: EtcdBackend;
  server: EtcdGrpcServer;
  close(): Promise<void>;
}

export type ShoalOptions = Partial<Omit<EtcdServerOptions, 'backend'>> & {
  port?: number;
  /** Lets a test put a faulty layer in front of the real backend (to prove a checker fails). */
  wrapBackend?: (backend: EtcdBackend) => EtcdBackend;
};

export async function startShoal(options: ShoalOptions = {}): Promise<RunningShoal> {
  const logger = pino({ level: process.env.SHOAL_LOG_LEVEL ?? 'silent' });
  const port = options.port ?? 0;
  const directory = mkdtempSync(join(tmpdir(), 'shoal-etcdapi-'));
  const store = MvccStore.open({ path: join(directory, 'kv.mdb'), logger });
  const clientUrls: string[] = [];
  const backend = new SingleMemberBackend({
    store,
    clusterId: 0x5ea1c105e7a1b2c3n,
    memberId: 0x5ea1ab1e01d2e3f4n,
    name: 'shoal-test',
    peerUrls: ['http://127.0.0.1:2380'],
    clientUrls,
  });
  const { port: _port, wrapBackend, ...serverOptions } = options;
  const served = wrapBackend ? wrapBackend(backend) : backend;
  const server = new EtcdGrpcServer({ logger, ...serverOptions, backend: served });
  const bound = await server.listen('127.0.0.1', port);
  const endpoint = `http://127.0.0.1:${bound}`;
  clientUrls.push(endpoint);
  return {
    endpoint,
    port: bound,
    backend: served,
    server,
    close: async () => {
      await server.close();
      backend.close();
      await store.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
