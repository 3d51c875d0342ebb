/**
 * Cluster benchmark (`npm run bench:cluster`): a 3-member shoal cluster and a 3-member etcd 3.4
 * cluster, each started as child processes with the same flags on this machine, driven by the same
 * gRPC load generator (etcd's own API, 256-byte values): puts at 1, 16 and 128 concurrent
 * requests, then linearizable and serializable gets at 128. Requests go to the leader's client
 * URL for puts (as etcd's benchmark tool does by default with one endpoint) and round-robin over
 * all members for gets. Prints a table and writes bench/results/cluster.md.
 *
 * Environment: CLUSTER_BENCH_SECONDS (per configuration, default 5), CLUSTER_BENCH_SKIP_ETCD=1.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { freePorts } from '../src/cli/ports.js';
import { loadEtcdRoot } from '../src/server/etcd/codec.js';

const seconds = Number(process.env.CLUSTER_BENCH_SECONDS ?? 5);
const root = fileURLToPath(new URL('..', import.meta.url));
const protos = loadEtcdRoot();
const PutRequest = protos.lookupType('etcdserverpb.PutRequest');
const RangeRequest = protos.lookupType('etcdserverpb.RangeRequest');
const StatusRequest = protos.lookupType('etcdserverpb.StatusRequest');
const StatusResponse = protos.lookupType('etcdserverpb.StatusResponse');

interface Node {
  name: string;
  client: number;
  peer: number;
}

type Kind = 'shoal' | 'etcd';

function startCluster(kind: Kind, dir: string, nodes: Node[]): ChildProcess[] {
  const initial = nodes.map((n) => `${n.name}=http://127.0.0.1:${n.peer}`).join(',');
  return nodes.map((n) => {
    const flags = [
      `--name=${n.name}`,
      `--data-dir=${join(dir, n.name)}`,
      `--listen-client-urls=http://127.0.0.1:${n.client}`,
      `--advertise-client-urls=http://127.0.0.1:${n.client}`,
      `--listen-peer-urls=http://127.0.0.1:${n.peer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${n.peer}`,
      `--initial-cluster=${initial}`,
      '--initial-cluster-state=new',
    ];
    const [command, args] =
      kind === 'etcd'
        ? ['etcd', [...flags, '--log-level=error']]
        : [
            process.execPath,
            [join(root, 'bin', 'shoal.mjs'), 'start', ...flags, '--log-level=warn'],
          ];
    return spawn(command, args as string[], {
      stdio: 'ignore',
      env: {
        ...process.env,
        SHOAL_LOG_LEVEL: 'warn',
        NODE_OPTIONS: process.env.CLUSTER_BENCH_NODE_OPTIONS ?? '',
      },
    });
  });
}

function client(port: number): grpc.Client {
  return new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}

function call(c: grpc.Client, path: string, bytes: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    c.makeUnaryRequest(
      path,
      (b: Uint8Array) => Buffer.from(b),
      (b: Buffer) => b,
      bytes,
      { deadline: Date.now() + 10_000 },
      (error, value) => (error ? reject(error) : resolve(value!)),
    );
  });
}

async function leaderPort(nodes: Node[]): Promise<number> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    for (const n of nodes) {
      const c = client(n.client);
      try {
        const bytes = await call(
          c,
          '/etcdserverpb.Maintenance/Status',
          StatusRequest.encode({}).finish(),
        );
        const status = StatusResponse.toObject(StatusResponse.decode(bytes), { longs: String }) as {
          leader?: string;
          header?: { memberId?: string };
        };
        if (status.leader && status.leader !== '0' && status.leader === status.header?.memberId)
          return n.client;
      } catch {
        // not up yet
      } finally {
        c.close();
      }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('no leader');
}

interface Result {
  ops: number;
  errors: number;
  p50: number;
  p99: number;
}

async function drive(
  ports: number[],
  concurrency: number,
  request: (i: number) => [string, Uint8Array],
): Promise<Result> {
  const clients = ports.map(client);
  const latencies: number[] = [];
  let errors = 0;
  let i = 0;
  const end = performance.now() + seconds * 1000;
  const worker = async (w: number) => {
    const c = clients[w % clients.length]!;
    while (performance.now() < end) {
      const [path, bytes] = request(i++);
      const started = performance.now();
      try {
        await call(c, path, bytes);
        latencies.push(performance.now() - started);
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  for (const c of clients) c.close();
  latencies.sort((a, b) => a - b);
  const pick = (f: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * f))] ?? Number.NaN;
  return { ops: latencies.length / seconds, errors, p50: pick(0.5), p99: pick(0.99) };
}

async function benchKind(kind: Kind): Promise<string[]> {
  const dir = fs.mkdtempSync(join(os.tmpdir(), `bench-${kind}-`));
  const ports = await freePorts(6);
  const nodes = [0, 1, 2].map((i) => ({
    name: `n${i}`,
    client: ports[i * 2]!,
    peer: ports[i * 2 + 1]!,
  }));
  const children = startCluster(kind, dir, nodes);
  const rows: string[] = [];
  try {
    const leader = await leaderPort(nodes);
    const value = Buffer.alloc(256, 0x61);
    const put = (i: number): [string, Uint8Array] => [
      '/etcdserverpb.KV/Put',
      PutRequest.encode({ key: Buffer.from(`bench/${i % 100_000}`), value }).finish(),
    ];
    for (const concurrency of [1, 16, 128]) {
      const r = await drive([leader], concurrency, put);
      rows.push(
        `| ${kind} | put | ${concurrency} | ${r.ops.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.errors} |`,
      );
      process.stdout.write(`${rows.at(-1)}\n`);
    }
    for (const serializable of [false, true]) {
      const get = (i: number): [string, Uint8Array] => [
        '/etcdserverpb.KV/Range',
        RangeRequest.encode({ key: Buffer.from(`bench/${i % 1000}`), serializable }).finish(),
      ];
      const r = await drive(
        nodes.map((n) => n.client),
        128,
        get,
      );
      rows.push(
        `| ${kind} | get ${serializable ? 'serializable' : 'linearizable'} | 128 | ${r.ops.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.errors} |`,
      );
      process.stdout.write(`${rows.at(-1)}\n`);
    }
  } finally {
    for (const child of children) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

const header =
  '| system | operation | concurrency | ops/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|---|';
process.stdout.write(`${header}\n`);
const rows = [...(await benchKind('shoal'))];
if (process.env.CLUSTER_BENCH_SKIP_ETCD !== '1') rows.push(...(await benchKind('etcd')));
const report = `# Cluster benchmark\n\n3 members on one machine (${os.cpus().length} cores, shared: noisy), ${seconds} s per row, 256-byte values.\n\n${header}\n${rows.join('\n')}\n`;
fs.writeFileSync(join(root, 'bench', 'results', 'cluster.md'), report);
