/**
 * Starts shoal's etcd API in-process on a free port for tests and the comparison harness: the
 * single-member server on the real LMDB MVCC store, in a temporary data directory that `close()`
 * removes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { freePorts } from '../../src/cli/ports.js';
import { resolveConfig } from '../../src/server/config.js';
import type { EtcdBackend } from '../../src/server/etcd/backend.js';
import {
  type SingleMemberServerOptions,
  startSingleMemberServer,
} from '../../src/server/etcd/single-member.js';
import { Member } from '../../src/server/member.js';

export interface RunningShoal {
  endpoint: string;
  port: number;
  backend: EtcdBackend;
  close(): Promise<void>;
}

export type ShoalOptions = Partial<Omit<SingleMemberServerOptions, 'dataDir'>>;

export async function startShoal(options: ShoalOptions = {}): Promise<RunningShoal> {
  const dataDir = mkdtempSync(join(tmpdir(), 'shoal-etcdapi-'));
  try {
    const running = await startSingleMemberServer({
      name: 'shoal-test',
      peerUrls: ['http://127.0.0.1:2380'],
      logger: pino({ level: process.env.SHOAL_LOG_LEVEL ?? 'silent' }),
      port: 0,
      ...options,
      dataDir,
    });
    return {
      ...running,
      close: async () => {
        await running.close();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
}

export interface RunningShoalMember {
  endpoint: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Starts a real shoal member in-process: a one-member raft cluster with its WAL, raft driver and
 * MVCC store, serving the etcd API on a free port. The comparison tests use it so that what they
 * compare with etcd is the replicated write and read path, not the store alone.
 */
export async function startShoalMember(): Promise<RunningShoalMember> {
  const dataDir = mkdtempSync(join(tmpdir(), 'shoal-member-'));
  try {
    const [clientPort, peerPort] = await freePorts(2);
    const clientUrl = `http://127.0.0.1:${clientPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    const config = resolveConfig({
      name: 'shoal-test',
      dataDir,
      listenClientUrls: clientUrl,
      advertiseClientUrls: clientUrl,
      listenPeerUrls: peerUrl,
      initialAdvertisePeerUrls: peerUrl,
      initialCluster: `shoal-test=${peerUrl}`,
    });
    const member = await Member.start(config, {
      logger: pino({ level: process.env.SHOAL_LOG_LEVEL ?? 'silent' }),
    });
    return {
      endpoint: clientUrl,
      port: clientPort!,
      close: async () => {
        await member.stop();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
}
