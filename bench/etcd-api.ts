/**
 * Throughput and latency of the etcd API: puts and linearizable ranges through gRPC from concurrent
 * clients, against shoal's single-member server (LMDB MVCC store, group commit) and, when installed,
 * a real single-member etcd for reference. The client is the same for both, so the difference is
 * the servers'. shoal runs in its own process, like etcd, so it does not share the client's CPU
 * thread. Figures on a shared machine are noisy; compare runs on the same machine only.
 *   npm run bench:etcd-api -- [opsPerPhase=4000] [inFlight=32] [valueBytes=256]
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { EtcdTestClient } from '../test/support/etcd-client.js';
import { etcdInstalled, startEtcd } from '../test/support/etcd-process.js';

const opsPerPhase = Number(process.argv[2] ?? 4000);
const inFlight = Number(process.argv[3] ?? 32);
const valueBytes = Number(process.argv[4] ?? 256);
const channels = 4;

interface PhaseResult {
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

async function phase(
  clients: EtcdTestClient[],
  run: (client: EtcdTestClient, i: number) => Promise<unknown>,
): Promise<PhaseResult> {
  const latencies: number[] = [];
  let next = 0;
  const start = performance.now();
  const worker = async (w: number) => {
    const client = clients[w % clients.length]!;
    while (next < opsPerPhase) {
      const i = next++;
      const t0 = performance.now();
      await run(client, i);
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, (_, w) => worker(w)));
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
  return {
    opsPerSecond: Math.round(opsPerPhase / seconds),
    p50Ms: +at(0.5).toFixed(2),
    p99Ms: +at(0.99).toFixed(2),
  };
}

async function measure(name: string, address: string): Promise<void> {
  const clients = Array.from({ length: channels }, () => new EtcdTestClient(address));
  const value = Buffer.alloc(valueBytes, 'v');
  const key = (i: number) => Buffer.from(`bench/${String(i % 1000).padStart(4, '0')}`);
  try {
    await clients[0]!.put({ key: key(0), value }); // Warm the connection up.
    const put = await phase(clients, (c, i) => c.put({ key: key(i), value }));
    const range = await phase(clients, (c, i) => c.range({ key: key(i) }));
    const prefix = await phase(clients, (c) =>
      c.range({ key: Buffer.from('bench/'), rangeEnd: Buffer.from('bench0'), limit: 100 }),
    );
    console.log(
      JSON.stringify({
        server: name,
        opsPerPhase,
        inFlight,
        valueBytes,
        put,
        range,
        rangeLimit100: prefix,
      }),
    );
  } finally {
    for (const c of clients) c.close();
  }
}

// shoal in a child process (the same entry point as `npm run etcd:dev`).
const shoal = spawn(process.execPath, ['--import', 'tsx', 'test/support/start-server.ts'], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
try {
  const [line] = (await once(shoal.stdout!, 'data')) as [Buffer];
  const address = line.toString().trim().split('http://')[1]!;
  await measure('shoal', address);
} finally {
  shoal.kill('SIGINT');
}
if (etcdInstalled()) {
  const etcd = await startEtcd();
  try {
    await measure('etcd-3.4', etcd.endpoint);
  } finally {
    await etcd.stop();
  }
}
