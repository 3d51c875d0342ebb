/**
 * Runs the etcd API of one member without raft: opens the LMDB MVCC store in the data directory,
 * puts the single-member backend behind the gRPC front end, and listens. This is what `shoal start`
 * can serve until the raft driver exists, and what the process-level tests start.
 */
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Logger, pino } from 'pino';
import { MvccStore } from '../../kv/index.js';
import type { EtcdBackend } from './backend.js';
import { EtcdGateway, listenClientPort } from './gateway.js';
import { SingleMemberBackend } from './mvcc-backend.js';
import { EtcdGrpcServer, type EtcdServerOptions } from './server.js';

export interface SingleMemberServerOptions
  extends Partial<Omit<EtcdServerOptions, 'backend' | 'logger'>> {
  dataDir: string;
  /** Listen address; port 0 picks a free port. Defaults: 127.0.0.1 and etcd's 2379. */
  host?: string;
  port?: number;
  name?: string;
  peerUrls?: string[];
  /** The client URLs MemberList reports; defaults to the bound address. */
  advertiseClientUrls?: string[];
  logger?: Logger;
  /** Serve etcd's JSON gateway (/v3/...) on the client port next to gRPC; default true. */
  jsonGateway?: boolean;
  /** For tests: a layer in front of the real backend (fault injection). */
  wrapBackend?: (backend: EtcdBackend) => EtcdBackend;
}

export interface RunningSingleMember {
  port: number;
  /** http://host:port of the bound listener. */
  endpoint: string;
  backend: EtcdBackend;
  close(): Promise<void>;
}

/**
 * A stable 64-bit id from text: the same member name gives the same ids across restarts, as
 * etcd's ids are stable for a member. Zero is avoided because etcd treats it as "no member".
 */
export function idFromText(text: string): bigint {
  const id = createHash('sha256').update(text).digest().readBigUInt64BE(0);
  return id === 0n ? 1n : id;
}

export async function startSingleMemberServer(
  options: SingleMemberServerOptions,
): Promise<RunningSingleMember> {
  const logger = options.logger ?? pino({ name: 'shoal' });
  const name = options.name ?? 'default';
  const peerUrls = options.peerUrls ?? ['http://localhost:2380'];
  mkdirSync(options.dataDir, { recursive: true });
  const store = MvccStore.open({ path: join(options.dataDir, 'kv.mdb'), logger });
  const clientUrls: string[] = [...(options.advertiseClientUrls ?? [])];
  const backend = new SingleMemberBackend({
    store,
    clusterId: idFromText(`shoal-cluster:${name}=${peerUrls.join(',')}`),
    memberId: idFromText(`shoal-member:${name}:${peerUrls.join(',')}`),
    name,
    peerUrls,
    clientUrls,
    logger,
  });
  const served = options.wrapBackend ? options.wrapBackend(backend) : backend;
  const server = new EtcdGrpcServer({ ...options, logger, backend: served });
  const host = options.host ?? '127.0.0.1';
  let port: number;
  let closeListener = async (): Promise<void> => {};
  try {
    if (options.jsonGateway === false) {
      port = await server.listen(host, options.port ?? 2379);
    } else {
      // One port for gRPC and the JSON gateway, as etcd serves them.
      const gateway = new EtcdGateway(server, logger);
      const listening = await listenClientPort(server, gateway, host, options.port ?? 2379);
      port = listening.port;
      closeListener = listening.close;
    }
  } catch (error) {
    backend.close();
    await store.close();
    throw error;
  }
  const endpoint = `http://${host}:${port}`;
  if (clientUrls.length === 0) clientUrls.push(endpoint);
  logger.info({ endpoint, name, dataDir: options.dataDir }, 'etcd API serving (single member)');
  return {
    port,
    endpoint,
    backend: served,
    close: async () => {
      // GOAWAY first, so calls in flight can finish; then the port and what is left.
      await server.close(500);
      await closeListener();
      backend.close();
      await store.close();
    },
  };
}
