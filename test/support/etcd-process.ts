/**
 * Starts a real etcd (the reference the comparison tests hold shoal to) on free local ports with a
 * throwaway data directory, waits until it serves clients, and removes everything on stop.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from '../../src/cli/ports.js';

/** How long a fresh single-member etcd may take to elect itself and serve (slow CI machines). */
export const etcdStartTimeoutMs = 30_000;

/** True when both the etcd server and etcdctl binaries are on PATH. */
export function etcdInstalled(): boolean {
  const found = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
  return found('etcd') && found('etcdctl');
}

export interface RunningEtcd {
  /** host:port, without a scheme (see the harness notes on :authority). */
  endpoint: string;
  clientUrl: string;
  stop(): Promise<void>;
}

export interface EtcdOptions {
  maxRequestBytes?: number;
  extraArgs?: string[];
}

export async function startEtcd(options: EtcdOptions = {}): Promise<RunningEtcd> {
  const dataDir = mkdtempSync(join(tmpdir(), 'shoal-etcd-'));
  const [clientPort, peerPort] = await freePorts(2);
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name=compat',
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${clientUrl}`,
    `--advertise-client-urls=${clientUrl}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=compat=${peerUrl}`,
    '--logger=zap',
    '--log-outputs=stderr',
    ...(options.maxRequestBytes ? [`--max-request-bytes=${options.maxRequestBytes}`] : []),
    ...(options.extraArgs ?? []),
  ];
  const child = spawn('etcd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const cleanup = () => rmSync(dataDir, { recursive: true, force: true });
  try {
    await waitForReady(child);
  } catch (error) {
    child.kill('SIGKILL');
    cleanup();
    throw error;
  }
  return {
    endpoint: `127.0.0.1:${clientPort}`,
    clientUrl,
    stop: async () => {
      await stopChild(child);
      cleanup();
    },
  };
}

/** Resolves when etcd logs that it serves clients; rejects if it exits or takes too long. */
function waitForReady(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let log = '';
    const timer = setTimeout(() => {
      reject(new Error(`etcd not ready after ${etcdStartTimeoutMs} ms:\n${log.slice(-2000)}`));
    }, etcdStartTimeoutMs);
    child.stderr?.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      if (/serving client (traffic|requests)/.test(log)) {
        clearTimeout(timer);
        // Keep draining stderr so etcd never blocks on a full pipe.
        log = '';
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`etcd exited with ${code} before serving:\n${log.slice(-2000)}`));
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
