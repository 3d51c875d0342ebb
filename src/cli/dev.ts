/**
 * `shoal dev` (what `npm start` runs): a local 3-member cluster in one command. Each member is a
 * child process running `shoal start` on free ports, with its data under one folder that is named
 * and printed (default: a new folder in the OS temp dir; `--data <dir>` to choose and reuse one).
 * It prints the endpoints and an etcdctl example; Ctrl-C (or SIGTERM) stops every member cleanly.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { MEMBER_NODE_FLAGS } from './node-flags.js';
import { freePorts } from './ports.js';

const MEMBERS = 3;
const STOP_GRACE_MS = 10_000;
const SHOAL_BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'shoal.mjs');

export interface DevMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  metricsUrl: string;
  dataDir: string;
}

export function registerDev(program: Command): void {
  program
    .command('dev')
    .description('run a local 3-member cluster (Ctrl-C stops it)')
    .option('--data <dir>', "folder for the members' data (default: a new temp folder)")
    .option('--log-level <level>', 'member log level', 'warn')
    .action(async (options: { data?: string; logLevel: string }) => {
      const dataRoot =
        options.data !== undefined
          ? resolve(options.data)
          : mkdtempSync(join(tmpdir(), 'shoal-dev-'));
      mkdirSync(dataRoot, { recursive: true });
      const members = await planCluster(dataRoot);
      const children = members.map((m) => startMember(m, members, options.logLevel));
      printBanner(dataRoot, members);
      let stopping = false;
      const stopAll = () => {
        if (stopping) return;
        stopping = true;
        process.stdout.write('\nstopping the cluster...\n');
        for (const child of children) child.kill('SIGTERM');
        const timer = setTimeout(() => {
          for (const child of children) child.kill('SIGKILL');
        }, STOP_GRACE_MS);
        timer.unref();
      };
      process.on('SIGINT', stopAll);
      process.on('SIGTERM', stopAll);
      await Promise.all(children.map((child) => new Promise((r) => child.once('exit', r))));
      process.stdout.write(`stopped; data kept in ${dataRoot}\n`);
    });
}

async function planCluster(dataRoot: string): Promise<DevMember[]> {
  const ports = await freePorts(MEMBERS * 3);
  return Array.from({ length: MEMBERS }, (_, i) => ({
    name: `shoal-${i + 1}`,
    clientUrl: `http://127.0.0.1:${ports[i * 3]}`,
    peerUrl: `http://127.0.0.1:${ports[i * 3 + 1]}`,
    metricsUrl: `http://127.0.0.1:${ports[i * 3 + 2]}`,
    dataDir: join(dataRoot, `shoal-${i + 1}`),
  }));
}

/** `shoal start` arguments for one member of a cluster of `members`. */
export function memberArgs(m: DevMember, members: readonly DevMember[], state = 'new'): string[] {
  return [
    'start',
    `--name=${m.name}`,
    `--data-dir=${m.dataDir}`,
    `--listen-client-urls=${m.clientUrl}`,
    `--advertise-client-urls=${m.clientUrl}`,
    `--listen-peer-urls=${m.peerUrl}`,
    `--initial-advertise-peer-urls=${m.peerUrl}`,
    `--initial-cluster=${members.map((x) => `${x.name}=${x.peerUrl}`).join(',')}`,
    `--initial-cluster-state=${state}`,
    `--listen-metrics-urls=${m.metricsUrl}`,
  ];
}

function startMember(m: DevMember, members: readonly DevMember[], logLevel: string): ChildProcess {
  const child = spawn(
    process.execPath,
    [...MEMBER_NODE_FLAGS, SHOAL_BIN, ...memberArgs(m, members), `--log-level=${logLevel}`],
    {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, SHOAL_LOG_LEVEL: logLevel },
    },
  );
  child.on('exit', (code, signal) => {
    if (code !== 0 && signal === null)
      process.stderr.write(`${m.name} exited with status ${code}\n`);
  });
  return child;
}

function printBanner(dataRoot: string, members: readonly DevMember[]): void {
  // etcdctl 3.4 sends the endpoint verbatim as the HTTP/2 :authority, and the gRPC server refuses
  // "http://host:port" there for some calls (endpoint status), so the example uses host:port.
  const endpoints = members.map((m) => m.clientUrl.replace(/^http:\/\//, '')).join(',');
  const lines = [
    'shoal dev: a local 3-member cluster',
    `data: ${dataRoot}`,
    ...members.map(
      (m) =>
        `  ${m.name}: client ${m.clientUrl}  peer ${m.peerUrl}  health ${m.metricsUrl}/health  metrics ${m.metricsUrl}/metrics`,
    ),
    '',
    'try:',
    `  ETCDCTL_API=3 etcdctl --endpoints=${endpoints} put hello world`,
    `  ETCDCTL_API=3 etcdctl --endpoints=${endpoints} get hello`,
    `  ETCDCTL_API=3 etcdctl --endpoints=${endpoints} endpoint status -w table`,
    `  ETCDCTL_API=3 etcdctl --endpoints=${endpoints} member list -w table`,
    '',
    'Ctrl-C stops every member.',
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
