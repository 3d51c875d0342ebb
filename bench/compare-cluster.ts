/**
 * Three-member clusters for `npm run bench:compare`: etcd 3.4 or shoal members as child processes on
 * loopback with free ports, temporary data directories and identical member flags. A cluster is
 * ready when every member accepts a put; `leaderFirst` orders the endpoints so that one-connection
 * runs talk to the leader. Every started process and directory is tracked so that `stopAll` (called
 * on normal exit, on Ctrl-C and on SIGTERM) leaves nothing behind. Members log at `warn` (to
 * `<dir>/<name>.log`); MEMBER_LOG_LEVEL=info in the environment shows more (snapshots taken, ...).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { closeConnections, openConnections, unaryCall } from '../src/cli/bench/connections.js';
import type { BenchOptions } from '../src/cli/bench/runner.js';
import { decimalKey, encodePutRequest, scanFields } from '../src/cli/bench/wire.js';
import { MEMBER_NODE_FLAGS } from '../src/cli/node-flags.js';
import { freePorts } from '../src/cli/ports.js';

export type SystemKind = 'etcd' | 'shoal';

export const memberCount = 3;
export const heartbeatIntervalMs = 100;
export const electionTimeoutMs = 1000;
/** etcd 3.4's default; probes may set PROBE_SNAPSHOT_COUNT to see a cluster without snapshots. */
export const snapshotCount = Number(process.env.PROBE_SNAPSHOT_COUNT ?? 100_000);
/** How long a fresh cluster may take until every member accepts writes. */
export const clusterReadyTimeoutMs = 60_000;
/** How long a member may take to exit after SIGTERM before it is killed. */
export const memberStopTimeoutMs = 10_000;

const root = fileURLToPath(new URL('..', import.meta.url));

export interface Cluster {
  kind: SystemKind;
  dir: string;
  endpoints: string[];
  /** Peer URLs as host:port (shoal's native protocol is served there). */
  peerEndpoints: string[];
  children: ChildProcess[];
}

const liveClusters = new Set<Cluster>();
/** Set once cleanup began (Ctrl-C): no new cluster may start after that. */
let shuttingDown = false;

export interface StartOptions {
  /** Extra node flags for shoal members (e.g. --cpu-prof), ignored for etcd. */
  nodeFlags?: string[];
}

export async function startCluster(kind: SystemKind, options: StartOptions = {}): Promise<Cluster> {
  if (shuttingDown) throw new Error('shutting down: not starting another cluster');
  const dir = fs.mkdtempSync(join(os.tmpdir(), `shoal-compare-${kind}-`));
  // Registered before the first await, so cleanup finds the directory whatever happens next.
  const cluster: Cluster = { kind, dir, endpoints: [], peerEndpoints: [], children: [] };
  liveClusters.add(cluster);
  const ports = await freePorts(2 * memberCount);
  if (shuttingDown) {
    await stopCluster(cluster);
    throw new Error('shutting down: not starting another cluster');
  }
  const names = Array.from({ length: memberCount }, (_, i) => `m${i + 1}`);
  const peerUrl = (i: number) => `http://127.0.0.1:${ports[2 * i + 1]}`;
  const clientUrl = (i: number) => `http://127.0.0.1:${ports[2 * i]}`;
  const initialCluster = names.map((name, i) => `${name}=${peerUrl(i)}`).join(',');
  names.forEach((name, i) => {
    const flags = [
      `--name=${name}`,
      `--data-dir=${join(dir, name)}`,
      `--listen-client-urls=${clientUrl(i)}`,
      `--advertise-client-urls=${clientUrl(i)}`,
      `--listen-peer-urls=${peerUrl(i)}`,
      `--initial-advertise-peer-urls=${peerUrl(i)}`,
      `--initial-cluster=${initialCluster}`,
      '--initial-cluster-state=new',
      `--heartbeat-interval=${heartbeatIntervalMs}`,
      `--election-timeout=${electionTimeoutMs}`,
      `--snapshot-count=${snapshotCount}`,
      `--log-level=${process.env.MEMBER_LOG_LEVEL ?? 'warn'}`,
    ];
    const log = fs.openSync(join(dir, `${name}.log`), 'a');
    const [command, args] =
      kind === 'etcd'
        ? ['etcd', flags]
        : [
            process.execPath,
            [
              ...MEMBER_NODE_FLAGS,
              ...(options.nodeFlags ?? []),
              process.env.SHOAL_ENTRY ?? join(root, 'bin', 'shoal.mjs'),
              'start',
              ...flags,
            ],
          ];
    const child = spawn(command, args, { stdio: ['ignore', log, log], cwd: dir });
    fs.closeSync(log);
    cluster.children.push(child);
    cluster.endpoints.push(`127.0.0.1:${ports[2 * i]}`);
    cluster.peerEndpoints.push(`127.0.0.1:${ports[2 * i + 1]}`);
  });
  try {
    await waitUntilWritable(cluster);
  } catch (error) {
    const logs = names.map((name) => `--- ${name}\n${tail(join(dir, `${name}.log`))}`).join('\n');
    await stopCluster(cluster);
    throw new Error(`${kind} cluster did not become ready: ${(error as Error).message}\n${logs}`);
  }
  return cluster;
}

function tail(path: string): string {
  try {
    return fs.readFileSync(path, 'utf8').slice(-1500);
  } catch {
    return '(no log)';
  }
}

/** Retries one put through every member until all accept it (a leader exists and forwards work). */
async function waitUntilWritable(cluster: Cluster): Promise<void> {
  const deadline = Date.now() + clusterReadyTimeoutMs;
  const put = encodePutRequest(Buffer.from('compare-ready'), Buffer.from('1')).buffer;
  for (const endpoint of cluster.endpoints) {
    for (;;) {
      const exited = cluster.children.find((child) => child.exitCode !== null);
      if (exited) throw new Error(`a member exited with status ${exited.exitCode}`);
      if (Date.now() > deadline)
        throw new Error(`${endpoint} did not accept a put within ${clusterReadyTimeoutMs} ms`);
      const ok = await tryUnary(endpoint, '/etcdserverpb.KV/Put', put).then(
        () => true,
        () => false,
      );
      if (ok) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

async function tryUnary(endpoint: string, path: string, request: Buffer): Promise<Buffer> {
  const [connection] = await openConnections([endpoint], 1);
  try {
    return await new Promise<Buffer>((resolve, reject) =>
      unaryCall(connection!, path, request, (error, response) =>
        error ? reject(error) : resolve(response!),
      ),
    );
  } finally {
    closeConnections([connection!]);
  }
}

/** Maintenance.Status: this member's id (header.member_id = 2) and the leader's id (leader = 4). */
async function memberStatus(endpoint: string): Promise<{ memberId: bigint; leaderId: bigint }> {
  const response = await tryUnary(endpoint, '/etcdserverpb.Maintenance/Status', Buffer.alloc(0));
  let memberId = 0n;
  let leaderId = 0n;
  scanFields(response, (field, wireType, _value, start, end) => {
    if (field === 1 && wireType === 2) {
      scanFields(response.subarray(start, end), (inner, _t, _v, varintStart, varintEnd) => {
        if (inner === 2)
          memberId = readUvarint(response.subarray(start, end).subarray(varintStart, varintEnd));
      });
    }
    if (field === 4) leaderId = readUvarint(response.subarray(start, end));
  });
  return { memberId, leaderId };
}

/** Exact 64-bit varint (member ids use all 64 bits, beyond a double's precision). */
function readUvarint(bytes: Uint8Array): bigint {
  let value = 0n;
  for (let i = 0; i < bytes.length; i++) value |= BigInt(bytes[i]! & 0x7f) << BigInt(7 * i);
  return value;
}

/** The endpoints with the current leader's first (unchanged when the leader cannot be found). */
export async function leaderFirst(
  cluster: Cluster,
): Promise<{ endpoints: string[]; leaderIndex: number }> {
  for (let i = 0; i < cluster.endpoints.length; i++) {
    const status = await memberStatus(cluster.endpoints[i]!).catch(() => undefined);
    if (status && status.memberId !== 0n && status.memberId === status.leaderId) {
      const rest = cluster.endpoints.filter((_, j) => j !== i);
      return { endpoints: [cluster.endpoints[i]!, ...rest], leaderIndex: i };
    }
  }
  return { endpoints: [...cluster.endpoints], leaderIndex: -1 };
}

/** Writes the key the range cells read (the first key the put cells write). */
export async function seedRangeKey(
  cluster: Cluster,
  keySize: number,
  valSize: number,
): Promise<void> {
  const put = encodePutRequest(decimalKey(keySize, 0), Buffer.alloc(valSize, 0x61)).buffer;
  await tryUnary(cluster.endpoints[0]!, '/etcdserverpb.KV/Put', put);
}

/** Clock ticks per second in /proc/<pid>/stat (100 on every common Linux build). */
const procClockTicksPerSec = 100;

/**
 * CPU seconds (user + system) each member process has used so far, from /proc; NaN where it cannot
 * be read (not Linux, or the process is gone). Used to put a CPU cost on every request.
 */
/**
 * The load the probes run: `total` linearizable requests (puts unless `command` says range) over
 * 100,000 sequential 8-byte keys with 256-byte values, bench:compare's cell shape.
 */
export function probeLoad(
  command: 'put' | 'range',
  endpoints: string[],
  conns: number,
  clients: number,
  total: number,
): BenchOptions {
  return {
    command,
    endpoints,
    conns,
    clients,
    total,
    keySize: 8,
    valSize: 256,
    keySpaceSize: 100_000,
    sequentialKeys: true,
    consistency: 'l',
    rate: 0,
    seed: 1,
  };
}

export function memberCpuSec(cluster: Cluster): number[] {
  return cluster.children.map((child) => {
    try {
      const stat = fs.readFileSync(`/proc/${child.pid}/stat`, 'utf8');
      // Fields after the parenthesized command name; utime and stime are fields 14 and 15.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) / procClockTicksPerSec;
    } catch {
      return Number.NaN;
    }
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), memberStopTimeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/**
 * Freezes every member (SIGSTOP), so a cluster waiting for its turn uses no CPU at all while the
 * other one is measured. All members stop and resume together, so none sees the others go silent.
 */
export function pauseCluster(cluster: Cluster): void {
  for (const child of cluster.children) if (child.exitCode === null) child.kill('SIGSTOP');
}

export function resumeCluster(cluster: Cluster): void {
  for (const child of cluster.children) if (child.exitCode === null) child.kill('SIGCONT');
}

/** Waits until some member reports itself leader; endpoints ordered leader first. */
export async function waitForLeader(
  cluster: Cluster,
  timeoutMs = clusterReadyTimeoutMs,
): Promise<{ endpoints: string[]; leaderIndex: number }> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const found = await leaderFirst(cluster);
    if (found.leaderIndex >= 0) return found;
    if (performance.now() > deadline) throw new Error('no leader after resuming the cluster');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function stopCluster(cluster: Cluster, keepDir = false): Promise<void> {
  resumeCluster(cluster); // a stopped process would not act on SIGTERM
  await Promise.all(cluster.children.map(stopChild));
  if (!keepDir) fs.rmSync(cluster.dir, { recursive: true, force: true });
  liveClusters.delete(cluster);
}

/** Last-resort cleanup from a synchronous 'exit' handler: kill what is left, remove directories. */
export function killAllSync(): void {
  for (const cluster of liveClusters) {
    for (const child of cluster.children) if (child.exitCode === null) child.kill('SIGKILL');
    fs.rmSync(cluster.dir, { recursive: true, force: true });
  }
  liveClusters.clear();
}

export async function stopAll(): Promise<void> {
  shuttingDown = true;
  await Promise.all([...liveClusters].map((cluster) => stopCluster(cluster)));
}
