/**
 * An A/B of member node flags (or of two builds) at one cell, with the tail in detail. Starts one
 * etcd cluster and one shoal cluster per entry of PROBE_FLAGS, then runs ROUNDS rounds; in each
 * round every cluster in turn is resumed, warmed up and measured while the others are paused
 * (SIGSTOP), so all see the same machine within seconds. Each round prints throughput, CPU per
 * put over all members and the latency at p90, p95, p97, p98, p99 and p99.5: whether a p99 gap
 * is a shifted distribution or a few slow requests shows between p98 and p99.5.
 *   tsx bench/flags-probe.ts
 * Environment:
 *   PROBE_FLAGS="|--max-semi-space-size=2"  shoal clusters, '|'-separated node flags added to
 *                       MEMBER_NODE_FLAGS for each (default one cluster with no extra flags)
 *   PROBE_ENTRIES="|/other/checkout/bin/shoal.mjs"  '|'-separated entry per shoal cluster
 *                       (SHOAL_ENTRY; empty: this checkout)
 *   PROBE_ETCD=0        no etcd cluster
 *   ROUNDS=4  CLIENTS=1  WARM=10000  MEAS=4000  requests per warm-up and per measured run
 */
import { runBench } from '../src/cli/bench/runner.js';
import {
  type Cluster,
  memberCpuSec,
  pauseCluster,
  probeLoad,
  resumeCluster,
  startCluster,
  stopCluster,
  waitForLeader,
} from './compare-cluster.js';

const flagSets = (process.env.PROBE_FLAGS ?? '').split('|');
const entries = (process.env.PROBE_ENTRIES ?? '').split('|');
const rounds = Number(process.env.ROUNDS ?? 4);
const clients = Number(process.env.CLIENTS ?? 1);
const warm = Number(process.env.WARM ?? 10_000);
const measured = Number(process.env.MEAS ?? 4_000);
const PERCENTILES = [90, 95, 97, 98, 99, 99.5];

interface Contender {
  label: string;
  cluster: Cluster;
}

const contenders: Contender[] = [];
const cpuTotal = (cluster: Cluster) => memberCpuSec(cluster).reduce((a, b) => a + b, 0);

try {
  if (process.env.PROBE_ETCD !== '0') {
    const cluster = await startCluster('etcd');
    pauseCluster(cluster);
    contenders.push({ label: 'etcd', cluster });
  }
  for (const [i, flags] of flagSets.entries()) {
    const entry = entries[i] ?? '';
    if (entry === '') delete process.env.SHOAL_ENTRY;
    else process.env.SHOAL_ENTRY = entry;
    const nodeFlags = flags.split(' ').filter(Boolean);
    const cluster = await startCluster('shoal', { nodeFlags });
    pauseCluster(cluster);
    contenders.push({ label: `shoal[${flags}]${entry === '' ? '' : ` ${entry}`}`, cluster });
  }
  const conns = clients === 1 ? 1 : clients <= 16 ? 3 : 6;
  const options = (endpoints: string[], total: number) =>
    probeLoad('put', endpoints, conns, clients, total);
  for (let round = 1; round <= rounds; round++) {
    for (const { label, cluster } of contenders) {
      resumeCluster(cluster);
      try {
        const { endpoints } = await waitForLeader(cluster);
        await runBench(options(endpoints, warm));
        const cpuBefore = cpuTotal(cluster);
        const result = await runBench(options(endpoints, measured));
        const cpuUs = ((cpuTotal(cluster) - cpuBefore) * 1e6) / Math.max(1, result.succeeded);
        const histogram = result.latencyHistogram;
        const tail = PERCENTILES.map((p) =>
          histogram === undefined ? '?' : (histogram.valueAtPercentileUs(p) / 1000).toFixed(2),
        );
        console.log(
          `round ${round} ${label}: ${Math.round(result.throughputPerSec)} req/s, ` +
            `members ${Math.round(cpuUs)} µs CPU/put, ms at p${PERCENTILES.join('/')}: ` +
            `${tail.join(' / ')}, max ${result.latency.maxMs}` +
            (result.failed > 0 ? `, ${result.failed} failed` : ''),
        );
      } finally {
        pauseCluster(cluster);
      }
    }
  }
} finally {
  for (const { cluster } of contenders) await stopCluster(cluster);
}
