/**
 * Many measured runs on one long-lived 3-member cluster (shoal or etcd): a warm-up of 10,000
 * requests, then RUNS runs (3,000 requests at one client, 12,000 otherwise), printing each run's
 * throughput and p99. One cell of bench:compare runs for a few seconds on a fresh turn; this shows
 * how the same cell varies run to run as the cluster ages (GC, raft snapshots every
 * --snapshot-count entries, the kernel writing back the store's pages).
 *   tsx bench/runs-probe.ts [shoal|etcd] [clients]
 * Environment:
 *   RUNS=8            measured runs (default 5)
 *   PROBE_CMD=range   range instead of put (linearizable)
 *   PROBE_NODE_FLAGS  node flags for shoal members, e.g. "--trace-gc-nvp" or "--single-threaded-gc"
 *   WAL_METRICS=1     shoal: each run's WAL fsync time per member, scraped from /metrics
 *   MEMBER_LOG_LEVEL=info, SHOW_SNAPSHOTS=1   shoal: when each member took its snapshots
 *   SHOW_CPU=1        each run's CPU per request of each member
 *   KEEP_DIR=1        keep the cluster's directory (data and member logs) afterwards
 */

import fs from 'node:fs';
import { runBench } from '../src/cli/bench/runner.js';
import {
  leaderFirst,
  memberCpuSec,
  probeLoad,
  type SystemKind,
  startCluster,
  stopCluster,
} from './compare-cluster.js';

const kind = (process.argv[2] ?? 'shoal') as SystemKind;
const clients = Number(process.argv[3] ?? 1);
const runs = Number(process.env.RUNS ?? 5);
const cluster = await startCluster(kind, {
  nodeFlags: (process.env.PROBE_NODE_FLAGS ?? '').split(' ').filter(Boolean),
});

/** Sum and count of etcd_disk_wal_fsync_duration_seconds per member. */
async function walFsync(endpoints: string[]): Promise<{ sum: number; count: number }[]> {
  return Promise.all(
    endpoints.map(async (endpoint) => {
      const text = await (await fetch(`http://${endpoint}/metrics`)).text();
      const value = (name: string) =>
        Number(
          text
            .split('\n')
            .find((line) => line.startsWith(name))
            ?.split(' ')
            .pop() ?? Number.NaN,
        );
      return {
        sum: value('etcd_disk_wal_fsync_duration_seconds_sum'),
        count: value('etcd_disk_wal_fsync_duration_seconds_count'),
      };
    }),
  );
}

try {
  const { endpoints } = await leaderFirst(cluster);
  const conns = clients === 1 ? 1 : 3;
  const command = (process.env.PROBE_CMD ?? 'put') as 'put' | 'range';
  const options = (total: number) =>
    probeLoad(command, endpoints.slice(0, conns), conns, clients, total);
  await runBench(options(10_000));
  const results: string[] = [];
  for (let run = 0; run < runs; run++) {
    const scrape = process.env.WAL_METRICS !== undefined && kind === 'shoal';
    const before = scrape ? await walFsync(endpoints) : [];
    const startedAt = new Date().toISOString();
    const cpuBefore = memberCpuSec(cluster);
    const total = clients === 1 ? 3000 : 12_000;
    const result = await runBench(options(total));
    const cpu = memberCpuSec(cluster).map((c, m) =>
      Math.round(((c - cpuBefore[m]!) * 1e6) / total),
    );
    results.push(`${Math.round(result.throughputPerSec)}/${result.latency.p99Ms.toFixed(2)}`);
    if (process.env.SHOW_CPU !== undefined) {
      console.log(
        `run ${run} from ${startedAt}: ${Math.round(result.throughputPerSec)} req/s, p99 ${result.latency.p99Ms.toFixed(2)} ms, member CPU µs/req ${cpu.join(' ')} (m1 m2 m3)`,
      );
    }
    if (scrape) {
      const after = await walFsync(endpoints);
      const perMember = after.map(
        (a, m) =>
          `${((a.sum - before[m]!.sum) * 1000).toFixed(0)} ms in ${a.count - before[m]!.count}`,
      );
      console.log(`run ${run} from ${startedAt}: WAL fsync per member ${perMember.join(', ')}`);
    }
  }
  console.log(kind, `x${clients}`, 'req/s / p99 ms per run:', results.join(' '));
  if (process.env.SHOW_SNAPSHOTS !== undefined && kind === 'shoal') {
    for (const name of ['m1', 'm2', 'm3']) {
      const log = fs.readFileSync(`${cluster.dir}/${name}.log`, 'utf8');
      for (const line of log.split('\n').filter((l) => /snapshot/.test(l))) {
        if (!line.includes('snapshot taken')) {
          console.log(`${name}: ${line.slice(0, 300)}`);
          continue;
        }
        const entry = JSON.parse(line) as {
          time: number;
          index: number;
          checkpointBytes: number;
          checkpointMs?: number;
          writeMs?: number;
        };
        console.log(
          `${name} snapshot done at ${new Date(entry.time).toISOString()}: index ${entry.index}, checkpoint ${entry.checkpointBytes} bytes, made in ${entry.checkpointMs} ms, snapshot file written ${entry.writeMs} ms`,
        );
      }
    }
  }
} finally {
  await stopCluster(cluster, process.env.KEEP_DIR !== undefined);
  if (process.env.KEEP_DIR !== undefined) console.log(`cluster directory kept: ${cluster.dir}`);
}
