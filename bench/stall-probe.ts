/**
 * Are the slow puts of a concurrent run stalls (every in-flight request slow at once: GC, a
 * descheduled process, a slow fsync) or stragglers (one request slow while others finish)?
 * A 3-member cluster, C closed-loop clients on 3 connections to the leader, a warm-up, then N
 * timed puts; prints the slow requests (over 3x the median) grouped into overlapping episodes.
 *   tsx bench/stall-probe.ts [shoal|etcd] [clients] [warmup] [n]
 */

import fs from 'node:fs';
import { methodPaths } from '../src/cli/bench/connections.js';
import { H2UnaryConnection } from '../src/cli/bench/h2-unary.js';
import { encodePutRequest } from '../src/cli/bench/wire.js';
import { leaderFirst, type SystemKind, startCluster, stopCluster } from './compare-cluster.js';

const kind = (process.argv[2] ?? 'shoal') as SystemKind;
const clients = Number(process.argv[3] ?? 16);
const warmup = Number(process.argv[4] ?? 20000);
const n = Number(process.argv[5] ?? 20000);
const cluster = await startCluster(kind, {
  nodeFlags: (process.env.PROBE_NODE_FLAGS ?? '').split(' ').filter(Boolean),
});
try {
  const { endpoints } = await leaderFirst(cluster);
  const conns = await Promise.all(
    [0, 1, 2].map((c) =>
      H2UnaryConnection.connect(endpoints[process.env.PROBE_SPREAD ? c : 0]!, 10_000),
    ),
  );
  const value = Buffer.alloc(256, 0x61);
  // Run-queue waits of each member: [main thread, all other threads] ms, from schedstat.
  const sched = () =>
    cluster.children.map((c) => {
      let main = 0;
      let other = 0;
      let mainRun = 0;
      for (const task of fs.readdirSync(`/proc/${c.pid}/task`)) {
        const [run, wait] = fs
          .readFileSync(`/proc/${c.pid}/task/${task}/schedstat`, 'utf8')
          .split(' ')
          .map(Number);
        if (task === String(c.pid)) {
          main += wait! / 1e6;
          mainRun += run! / 1e6;
        } else other += wait! / 1e6;
      }
      return [main, other, mainRun, ...threadRuns(c.pid!)];
    });
  const names: string[] = [];
  function threadRuns(pid: number): number[] {
    // CPU ms per thread name (sum) in a fixed name order.
    const by = new Map<string, number>();
    for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
      const comm = fs.readFileSync(`/proc/${pid}/task/${task}/comm`, 'utf8').trim();
      const [run] = fs
        .readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8')
        .split(' ')
        .map(Number);
      const name = task === String(pid) ? 'main' : comm;
      by.set(name, (by.get(name) ?? 0) + run! / 1e6);
    }
    for (const k of by.keys()) if (!names.includes(k)) names.push(k);
    return names.map((k) => by.get(k) ?? 0);
  }
  let schedBefore: number[][] = [];
  let wallBefore = 0;
  let next = 0;
  const starts = new Float64Array(warmup + n);
  const ends = new Float64Array(warmup + n);
  const connOf = new Uint8Array(warmup + n);
  const worker = (w: number) =>
    new Promise<void>((resolve, reject) => {
      const one = () => {
        const i = next++;
        if (i === warmup) {
          schedBefore = sched();
          wallBefore = performance.now();
        }
        if (i >= warmup + n) return resolve();
        const key = Buffer.from(String(i % 100000).padStart(8, '0'));
        starts[i] = performance.now();
        connOf[i] = w % 3;
        conns[w % 3]!.call(methodPaths.put, encodePutRequest(key, value).buffer, (e) => {
          if (e) return reject(e);
          ends[i] = performance.now();
          one();
        });
      };
      one();
    });
  await Promise.all(Array.from({ length: clients }, (_, w) => worker(w)));
  const schedAfter = sched();
  const wallMs = performance.now() - wallBefore;
  console.log(
    `run-queue wait per second, ms (main thread / other threads), main thread busy %: ${schedAfter
      .map(
        (a, m) =>
          `${cluster.children[m]!.pid}: ${(((a[0]! - schedBefore[m]![0]!) / wallMs) * 1000).toFixed(0)}/${(((a[1]! - schedBefore[m]![1]!) / wallMs) * 1000).toFixed(0)} ${(((a[2]! - schedBefore[m]![2]!) / wallMs) * 100).toFixed(0)}%`,
      )
      .join('  ')}`,
  );
  schedAfter.forEach((a, m) => {
    const parts = names
      .map(
        (k, j) => [k, (((a[3 + j] ?? 0) - (schedBefore[m]![3 + j] ?? 0)) / wallMs) * 100] as const,
      )
      .filter(([, v]) => v >= 0.5)
      .map(([k, v]) => `${k} ${v.toFixed(0)}%`);
    console.log(`  member ${m} threads busy: ${parts.join(', ')}`);
  });
  const lat: number[] = [];
  for (let i = warmup; i < warmup + n; i++) lat.push(ends[i]! - starts[i]!);
  const sorted = [...lat].sort((a, b) => a - b);
  const p50 = sorted[Math.floor(n / 2)]!;
  const p99 = sorted[Math.floor(n * 0.99)]!;
  const t0 = starts[warmup]!;
  // Monotonic clock (as perf -k mono) of performance.now() == 0, in seconds.
  const monoOffsetSec = Number(process.hrtime.bigint()) / 1e9 - performance.now() / 1000;
  if (process.env.PROBE_GAPS_FILE) {
    const rows: string[] = [];
    const e = Array.from(ends.subarray(warmup)).sort((a, b) => a - b);
    for (let k = 1; k < e.length; k++) {
      const g = e[k]! - e[k - 1]!;
      if (g >= 4)
        rows.push(
          `${(monoOffsetSec + e[k - 1]! / 1000).toFixed(6)} ${(monoOffsetSec + e[k]! / 1000).toFixed(6)} ${g.toFixed(2)}`,
        );
    }
    fs.writeFileSync(process.env.PROBE_GAPS_FILE, `${rows.join('\n')}\n`);
  }
  const wall = ends[warmup + n - 1]! - t0;
  console.log(
    `${kind} x${clients} n=${n} rps=${Math.round((n / wall) * 1000)} p50=${p50.toFixed(2)} p99=${p99.toFixed(2)}`,
  );
  const byConn = [0, 1, 2].map((c) => {
    const l: number[] = [];
    for (let i = warmup; i < warmup + n; i++) if (connOf[i] === c) l.push(ends[i]! - starts[i]!);
    l.sort((a, b) => a - b);
    return `conn ${c}: n=${l.length} p50=${l[Math.floor(l.length / 2)]?.toFixed(2)} p99=${l[Math.floor(l.length * 0.99)]?.toFixed(2)}`;
  });
  console.log(byConn.join('  '));
  // Episodes: slow requests whose [start, end] intervals overlap.
  const slow = [];
  for (let i = warmup; i < warmup + n; i++) {
    if (ends[i]! - starts[i]! > 3 * p50) slow.push(i);
  }
  slow.sort((a, b) => starts[a]! - starts[b]!);
  const episodes: { from: number; to: number; count: number; max: number }[] = [];
  for (const i of slow) {
    const last = episodes.at(-1);
    if (last && starts[i]! <= last.to) {
      last.to = Math.max(last.to, ends[i]!);
      last.count++;
      last.max = Math.max(last.max, ends[i]! - starts[i]!);
    } else episodes.push({ from: starts[i]!, to: ends[i]!, count: 1, max: ends[i]! - starts[i]! });
  }
  // How many requests finished during each episode (a stall finishes none for a while).
  const endSorted = Array.from(ends.subarray(warmup)).sort((a, b) => a - b);
  const finishedIn = (a: number, b: number) => {
    let lo = 0;
    while (lo < endSorted.length && endSorted[lo]! < a) lo++;
    let hi = lo;
    while (hi < endSorted.length && endSorted[hi]! <= b) hi++;
    return hi - lo;
  };
  // The longest gaps between consecutive completions.
  const gaps: [number, number][] = [];
  for (let k = 1; k < endSorted.length; k++)
    gaps.push([endSorted[k]! - endSorted[k - 1]!, endSorted[k - 1]! - t0]);
  gaps.sort((a, b) => b[0] - a[0]);
  console.log(
    `slow: ${slow.length} in ${episodes.length} episodes; longest completion gaps (ms at): ${gaps
      .slice(0, 15)
      .map(([g, at]) => `${g.toFixed(1)}@${at.toFixed(0)}`)
      .join(' ')}`,
  );
  const gapSum = (min: number) => gaps.filter(([g]) => g >= min).reduce((s, [g]) => s + g, 0);
  console.log(
    `time in completion gaps >=2ms: ${gapSum(2).toFixed(0)} ms, >=5ms: ${gapSum(5).toFixed(0)} ms of ${wall.toFixed(0)} ms`,
  );
  for (const e of episodes.slice(0, 25)) {
    console.log(
      `  at ${(e.from - t0).toFixed(1)} for ${(e.to - e.from).toFixed(1)} ms: ${e.count} slow (max ${e.max.toFixed(1)}), ${finishedIn(e.from, e.to)} finished meanwhile`,
    );
  }
  if (kind === 'shoal') {
    for (const endpoint of endpoints) {
      const text = await (await fetch(`http://${endpoint}/metrics`)).text();
      const pick = text
        .split('\n')
        .filter((l) =>
          /^nodejs_(eventloop_lag_(max|p99|mean)_seconds|gc_duration_seconds_(sum|count))/.test(l),
        );
      console.log(
        `--- ${endpoint}${endpoint === endpoints[0] ? ' (leader)' : ''}: ${pick.map((l) => l.replace(/\{member="m\d"\}|nodejs_|_seconds/g, '')).join(' | ')}`,
      );
    }
  }
  for (const c of conns) c.close();
} finally {
  const keep = process.env.PROBE_KEEP_DIR !== undefined;
  await stopCluster(cluster, keep);
  if (keep) console.log(`kept ${cluster.dir}`);
}
