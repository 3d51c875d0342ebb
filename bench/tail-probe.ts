/**
 * Where the slow requests of a one-client put loop come from: a 3-member cluster (shoal or etcd),
 * a warm-up, then N timed puts; prints the slow ones (over 3x the median) with when they started,
 * so periodic causes (ticks, gossip, GC) show up as regular gaps.
 *   tsx bench/tail-probe.ts [shoal|etcd] [warmup] [n] [put|range]
 * With SHOAL_TRACE_DIR set (the members traced by bench/trace-preload.mjs into that directory) it
 * also writes client.txt there: each measured request's start and end and each of this process's
 * garbage collections, on the members' clock, so bench/trace-report.ts can split what the client
 * saw into the way to the leader, the leader, and the way back.
 */

import fs from 'node:fs';
import { join } from 'node:path';
import { type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import { connectTimeoutMs, endpointTarget } from '../src/cli/bench/connections.js';
import { H2UnaryConnection } from '../src/cli/bench/h2-unary.js';
import { encodePutRequest, encodeRangeRequest } from '../src/cli/bench/wire.js';
import { type SystemKind, startCluster, stopCluster, waitForLeader } from './compare-cluster.js';

const kind = (process.argv[2] ?? 'shoal') as SystemKind;
const warmup = Number(process.argv[3] ?? 8000);
const n = Number(process.argv[4] ?? 4000);
const command = process.argv[5] ?? 'put';
const cluster = await startCluster(kind, {
  nodeFlags: (process.env.PROBE_NODE_FLAGS ?? '').split(' ').filter(Boolean),
});
try {
  const { endpoints, leaderIndex } = await waitForLeader(cluster);
  // The load generator's own HTTP/2 client (as bench:compare and `shoal bench` use), not grpc-js:
  // grpc-js's per-call garbage made this process scavenge for 6-11 ms every 200 ms.
  const client = await H2UnaryConnection.connect(endpointTarget(endpoints[0]!), connectTimeoutMs);
  const value = Buffer.alloc(256, 0x61);
  const one = (i: number) =>
    new Promise<void>((resolve, reject) => {
      const key = Buffer.from(String(i % 100000).padStart(8, '0'));
      const req =
        command === 'put'
          ? encodePutRequest(key, value).buffer
          : encodeRangeRequest(key, false).buffer;
      client.call(
        command === 'put' ? '/etcdserverpb.KV/Put' : '/etcdserverpb.KV/Range',
        req,
        (e) => (e ? reject(e) : resolve()),
      );
    });
  for (let i = 0; i < warmup; i++) await one(i);
  const starts: number[] = [];
  const lat: number[] = [];
  // With SHOAL_TRACE_DIR (members traced by bench/trace-preload.mjs), each measured request's
  // start and end on the same clock as the members' traces, for bench/trace-report.ts.
  const traceDir = process.env.SHOAL_TRACE_DIR;
  const spans: string[] = [];
  const gcs = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const gcKind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
      spans.push(`gc ${gcKind ?? 0} ${entry.duration} ${performance.timeOrigin + entry.startTime}`);
    }
  });
  if (traceDir !== undefined) gcs.observe({ entryTypes: ['gc'] });
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    await one(warmup + i);
    const e = performance.now();
    starts.push(s - t0);
    lat.push(e - s);
    if (traceDir !== undefined) {
      spans.push(`req ${performance.timeOrigin + s} ${performance.timeOrigin + e}`);
    }
  }
  gcs.disconnect();
  if (traceDir !== undefined) {
    // A pair of readings of the trace clock and CLOCK_MONOTONIC (process.hrtime, the clock of
    // `perf sched record -k CLOCK_MONOTONIC`), and each member's pid, so a run-queue trace can be
    // lined up with the requests (bench/README, 2026-12-08 later section).
    spans.push(`clock ${performance.timeOrigin + performance.now()} ${process.hrtime.bigint()}`);
    for (const [i, child] of cluster.children.entries()) {
      spans.push(`member ${child.pid} ${i === leaderIndex ? 'leader' : 'follower'}`);
    }
    spans.push(`client ${process.pid}`);
    fs.writeFileSync(join(traceDir, 'client.txt'), `${spans.join('\n')}\n`);
  }
  const sorted = [...lat].sort((a, b) => a - b);
  const p50 = sorted[Math.floor(n / 2)]!;
  const p99 = sorted[Math.floor(n * 0.99)]!;
  console.log(
    `${kind} ${command} n=${n} p50=${p50.toFixed(3)} p99=${p99.toFixed(3)} total=${(performance.now() - t0).toFixed(0)}ms`,
  );
  const slow = lat.map((l, i) => [starts[i]!, l] as const).filter(([, l]) => l > 3 * p50);
  console.log(`slow (>3x p50): ${slow.length}`);
  let prev = 0;
  for (const [s, l] of slow.slice(0, 60)) {
    console.log(
      `  at ${s.toFixed(1)} ms (+${(s - prev).toFixed(1)}; mod100 ${(s % 100).toFixed(1)}) took ${l.toFixed(2)} ms`,
    );
    prev = s;
  }
  client.close();
} finally {
  await stopCluster(cluster, process.env.PROBE_KEEP_DIR !== undefined);
  if (process.env.PROBE_KEEP_DIR !== undefined) console.log(`kept ${cluster.dir}`);
}
