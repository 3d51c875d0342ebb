/**
 * Lines a run-queue trace up with tail-probe's requests: for each request at or over p99, which
 * thread used most CPU during it (if over 30 % of the request) and whether a collection ran on a
 * member or in the client. Record, while tail-probe runs with SHOAL_TRACE_DIR=DIR:
 *   perf record -e sched:sched_switch -e sched:sched_waking -a -k CLOCK_MONOTONIC -m 4M \
 *     -o /dev/shm/sched.data -- sleep 40
 *   perf script -i /dev/shm/sched.data -F comm,tid,pid,cpu,time,event,trace > DIR/sched.txt
 * (the trace file on /dev/shm: written to the disk the WAL uses, it is itself part of the tail),
 * then `npx tsx bench/sched-report.ts DIR`. Members traced with bench/trace-preload.mjs
 * (SHOAL_TRACE_STEPS=0 records only their collections) add the collection column. This report
 * reads only sched_switch; the README's figures were recorded with sched_waking as well, and
 * leaving it out lowers the tracer's own share of the tail.
 */
import fs from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
if (dir === undefined) {
  console.error('usage: tsx bench/sched-report.ts DIR   (DIR/client.txt and DIR/sched.txt)');
  process.exit(2);
}

type Span = [start: number, end: number];
const requests: Span[] = [];
const roles = new Map<number, string>();
let clock: [ms: number, ns: bigint] | undefined;
const collections: Array<[start: number, end: number, who: string]> = [];
const clientLines = fs.readFileSync(join(dir, 'client.txt'), 'utf8').split('\n');
for (const line of clientLines) {
  const p = line.split(' ');
  if (p[0] === 'clock') clock = [Number(p[1]), BigInt(p[2]!)];
  else if (p[0] === 'member') roles.set(Number(p[1]), p[2]!);
  else if (p[0] === 'client') roles.set(Number(p[1]), 'client');
}
if (clock === undefined) {
  console.error(
    `${dir}/client.txt has no clock line: rerun bench/tail-probe.ts (a95a2df or later)`,
  );
  process.exit(2);
}
const [clockMs, clockNs] = clock;
/** The trace clock (performance.timeOrigin-based ms) to CLOCK_MONOTONIC seconds. */
const mono = (ms: number): number => Number(clockNs) / 1e9 + (ms - clockMs) / 1e3;
const followers = [...roles].filter(([, r]) => r === 'follower').map(([pid]) => pid);
const names = new Map<number, string>();
for (const [pid, role] of roles) {
  names.set(
    pid,
    role === 'leader' ? 'L' : role === 'client' ? 'C' : `F${followers.indexOf(pid) + 1}`,
  );
}
for (const line of clientLines) {
  const p = line.split(' ');
  if (p[0] === 'req') requests.push([mono(Number(p[1])), mono(Number(p[2]))]);
  else if (p[0] === 'gc') {
    const start = Number(p[3]);
    collections.push([mono(start), mono(start + Number(p[2])), 'C']);
  }
}
for (const file of fs.readdirSync(dir)) {
  const match = /^trace-(\d+)\.txt$/.exec(file);
  const who = match ? names.get(Number(match[1])) : undefined;
  if (who === undefined) continue;
  for (const line of fs.readFileSync(join(dir, file), 'utf8').split('\n')) {
    const p = line.split(' ');
    if (p[0] !== 'gc') continue;
    const start = Number(p[3]);
    collections.push([mono(start), mono(start + Number(p[2])), who]);
  }
}

// Running slices per thread, from sched_switch: [start, end] in seconds.
const pidOf = new Map<number, number>();
const commOf = new Map<number, string>();
const slices = new Map<number, Span[]>();
const onCpu = new Map<number, [tid: number, since: number]>();
const eventLine = /^\s*(.*?)\s+(\d+)\/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+sched:(\w+):\s*(.*)$/;
const schedText = fs.readFileSync(join(dir, 'sched.txt'), 'utf8');
for (const line of schedText.split('\n')) {
  const m = eventLine.exec(line);
  if (m === null) continue;
  const [, comm, pid, tid, cpu, time, event, rest] = m;
  pidOf.set(Number(tid), Number(pid));
  commOf.set(Number(tid), comm!);
  if (event !== 'sched_switch') continue;
  const at = Number(time);
  const running = onCpu.get(Number(cpu));
  if (running !== undefined) {
    const list = slices.get(running[0]) ?? [];
    list.push([running[1], at]);
    slices.set(running[0], list);
  }
  const next = Number(/next_pid=(\d+)/.exec(rest!)?.[1] ?? 0);
  onCpu.set(Number(cpu), [next, at]);
}

/** L, F1, F2 or C for a process's main thread, with "-thr" for its other threads. */
function threadName(tid: number): string {
  const pid = pidOf.get(tid) ?? tid;
  const name = names.get(pid);
  if (name !== undefined) return tid === pid ? name : `${name}-thr`;
  return tid === 0 ? 'idle' : (commOf.get(tid) ?? '?').split('/')[0]!;
}

const starts = new Map<number, number[]>();
for (const [tid, list] of slices) {
  list.sort((a, b) => a[0] - b[0]);
  starts.set(
    tid,
    list.map((s) => s[0]),
  );
}
/** First index whose value is > x. */
function upper(values: number[], x: number): number {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (values[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
/** CPU seconds each thread group ran within [s, e]. */
function ranDuring(s: number, e: number): Map<string, number> {
  const ran = new Map<string, number>();
  for (const [tid, list] of slices) {
    const begin = upper(starts.get(tid)!, s - 0.05);
    for (let i = begin; i < list.length && list[i]![0] < e; i++) {
      const overlap = Math.min(list[i]![1], e) - Math.max(list[i]![0], s);
      if (overlap > 0) ran.set(threadName(tid), (ran.get(threadName(tid)) ?? 0) + overlap);
    }
  }
  return ran;
}

const latencies = requests.map(([s, e]) => e - s).sort((a, b) => a - b);
const p99 = latencies[Math.floor(latencies.length * 0.99)]!;
const slow = requests.filter(([s, e]) => e - s >= p99);
const groups = new Map<string, number>();
for (const [s, e] of slow) {
  let top = 'none';
  let most = 0;
  for (const [name, seconds] of ranDuring(s, e)) {
    if (name !== 'idle' && seconds > most) [top, most] = [name, seconds];
  }
  if (most <= 0.3 * (e - s)) top = 'none';
  const collected = [...new Set(collections.filter(([a, b]) => a < e && b > s).map((c) => c[2]))];
  const key = `${top} / gc: ${collected.sort().join('+') || '-'}`;
  groups.set(key, (groups.get(key) ?? 0) + 1);
}
console.log(
  `${requests.length} requests, p50 ${(latencies[latencies.length >> 1]! * 1e3).toFixed(3)} ms, ` +
    `p99 ${(p99 * 1e3).toFixed(3)} ms; the ${slow.length} at or over p99, by the thread that ran ` +
    'most during them (over 30 % of the request, else "none") and the collections they overlap:',
);
for (const [key, count] of [...groups].sort((a, b) => b[1] - a[1])) {
  console.log(`  ${String(count).padStart(4)}  ${key}`);
}
