/**
 * Starts shoal's etcd API in-process on a free port for tests and the comparison harness: the
 * single-member server on the real LMDB MVCC store, in a temporary data directory that `close()`
 * removes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { EtcdBackend } from '../../src/server/etcd/backend.js';
import {
  type SingleMemberServerOptions,
  startSingleMemberServer,
} from '../../src/server/etcd/single-member.js';

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
