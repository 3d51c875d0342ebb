/**
 * Quick put probe: a 3-member cluster (shoal or etcd), then put at the given client counts,
 * printing throughput, latency and CPU µs per request of each member (leader first).
 *   tsx bench/put-probe.ts [shoal|etcd] [total] [clients...]
 */

import fs from 'node:fs';
import { runNativeBench } from '../src/cli/bench/native.js';
import { runBench } from '../src/cli/bench/runner.js';
import {
  leaderFirst,
  memberCpuSec,
  pauseCluster,
  resumeCluster,
  type SystemKind,
  startCluster,
  stopCluster,
  waitForLeader,
} from './compare-cluster.js';

/** The fields of /proc/PID/stat after the command name: index 0 is field 3 (the state). */
function statFields(pid: number | undefined): string[] {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** [user, system] CPU seconds of each member. */
function cpuSplit(pids: (number | undefined)[]): [number, number][] {
  return pids.map((pid) => {
    const f = statFields(pid);
    return [Number(f[11]) / 100, Number(f[12]) / 100];
  });
}

/**
 * `value` of /proc/PID/task/TID/FILE summed over `pid`'s threads (or its main thread alone). A
 * thread that ends between the listing and the read counts nothing.
 */
function sumOverThreads(
  pid: number | undefined,
  file: string,
  value: (text: string) => number,
  mainOnly = false,
): number {
  let total = 0;
  for (const task of mainOnly ? [String(pid)] : fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      total += value(fs.readFileSync(`/proc/${pid}/task/${task}/${file}`, 'utf8'));
    } catch {
      // The thread is gone.
    }
  }
  return total;
}

/** Nanoseconds so far each process spent runnable but waiting for a CPU (schedstat field 2). */
function runQueueWaitNs(pids: (number | undefined)[], mainOnly = false): number[] {
  return pids.map((pid) =>
    sumOverThreads(pid, 'schedstat', (text) => Number(text.split(' ')[1]), mainOnly),
  );
}

/** Minor page faults so far of each member (field 10 of /proc/PID/stat). */
function minorFaults(pids: (number | undefined)[]): number[] {
  return pids.map((pid) => Number(statFields(pid)[7]));
}

/** [read, write] syscalls and bytes so far of each member (all its threads), from /proc/PID/io. */
function syscalls(pids: (number | undefined)[]): [number, number, number, number][] {
  return pids.map((pid) => {
    const io = fs.readFileSync(`/proc/${pid}/io`, 'utf8');
    const field = (name: string) =>
      Number(new RegExp(`${name}: (\\d+)`).exec(io)?.[1] ?? Number.NaN);
    return [field('syscr'), field('syscw'), field('rchar'), field('wchar')];
  });
}

/** Context switches (voluntary + involuntary) so far of each member, summed over its threads. */
function switches(pids: (number | undefined)[]): number[] {
  return pids.map((pid) =>
    sumOverThreads(pid, 'status', (status) => {
      let count = 0;
      for (const match of status.matchAll(/ctxt_switches:\s+(\d+)/g)) count += Number(match[1]);
      return count;
    }),
  );
}

/** CPU seconds so far of `pid`'s event loop thread and of its other threads, by their name. */
function threadCpu(pid: number | undefined): Map<string, number> {
  const byName = new Map<string, number>();
  for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
    const stat = fs.readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8');
    // Node names no thread of its own, so the event loop is told apart by its id (the pid).
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const name = task === String(pid) ? 'event loop' : `other ${comm}`;
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    byName.set(name, (byName.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) / 100);
  }
  return byName;
}

const kind = (process.argv[2] ?? 'shoal') as SystemKind;
const total = Number(process.argv[3] ?? 2000);
const counts = process.argv.slice(4).map(Number);
const profDir = process.env.PROBE_PROF_DIR;
// PROBE_ALLOC_DIR (shoal only): each member samples its heap allocations (garbage included) for one window;
// see bench/alloc-sample.mjs for the window's settings and bench/alloc-report.ts to read them.
const allocDir = kind === 'shoal' ? process.env.PROBE_ALLOC_DIR : undefined;
if (allocDir) process.env.ALLOC_SAMPLE_DIR = allocDir;
const cluster = await startCluster(kind, {
  nodeFlags: [
    ...(profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []),
    ...(allocDir ? [`--import=${new URL('./alloc-sample.mjs', import.meta.url).pathname}`] : []),
    ...(process.env.PROBE_NODE_FLAGS ?? '').split(' ').filter(Boolean),
  ],
});
try {
  const { endpoints, leaderIndex } = await leaderFirst(cluster);
  if (allocDir) {
    const pids = cluster.children.map((c, i) => `${c.pid}${i === leaderIndex ? ' (leader)' : ''}`);
    console.log(
      `allocation samples go to ${allocDir}/alloc-PID.heapprofile; members ${pids.join(', ')}`,
    );
  }
  const pauseMs = Number(process.env.PROBE_PAUSE_MS ?? 0);
  for (const clients of counts.length ? counts : [1, 16]) {
    if (pauseMs > 0) {
      // As bench:compare does between turns: freeze the whole cluster, then resume it.
      pauseCluster(cluster);
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
      resumeCluster(cluster);
      await waitForLeader(cluster);
    }
    const conns = Number(process.env.PROBE_CONNS ?? (clients === 1 ? 1 : 3));
    const n = clients === 1 ? total : total * 4;
    const cpuBefore = memberCpuSec(cluster);
    const splitBefore = cpuSplit(cluster.children.map((c) => c.pid));
    const sysBefore = syscalls(cluster.children.map((c) => c.pid));
    const faultsBefore = minorFaults(cluster.children.map((c) => c.pid));
    const switchesBefore = switches(cluster.children.map((c) => c.pid));
    const waitPids = [...cluster.children.map((c) => c.pid), process.pid];
    const waitBefore = runQueueWaitNs(waitPids);
    const mainWaitBefore = runQueueWaitNs(waitPids, true);
    const threadsBefore = cluster.children.map((c) => threadCpu(c.pid));
    const native = process.env.PROBE_PROTOCOL === 'native';
    const r = await (native ? runNativeBench : runBench)({
      command: (process.env.PROBE_CMD ?? 'put') as 'put' | 'range',
      endpoints: native
        ? cluster.peerEndpoints
        : process.env.PROBE_LEADER_ONLY !== undefined
          ? endpoints.slice(0, 1)
          : endpoints.slice(0, conns),
      conns,
      clients,
      total: n,
      keySize: 8,
      valSize: 256,
      keySpaceSize: Number(process.env.PROBE_KEY_SPACE ?? 100000),
      sequentialKeys: true,
      consistency: (process.env.PROBE_CONS ?? 'l') as 'l' | 's',
      rate: 0,
      seed: 1,
    });
    const cpu = memberCpuSec(cluster).map((c, i) => Math.round(((c - cpuBefore[i]!) * 1e6) / n));
    const ordered = [cpu[leaderIndex]!, ...cpu.filter((_, i) => i !== leaderIndex)];
    const split = cpuSplit(cluster.children.map((c) => c.pid)).map(
      ([u, s], i) =>
        `${Math.round(((u - splitBefore[i]![0]) * 1e6) / n)}u/${Math.round(((s - splitBefore[i]![1]) * 1e6) / n)}s`,
    );
    const sys = syscalls(cluster.children.map((c) => c.pid)).map(
      ([r, w, rb, wb], i) =>
        `${((r - sysBefore[i]![0]) / n).toFixed(2)}r/${((w - sysBefore[i]![1]) / n).toFixed(2)}w ` +
        `${Math.round((rb - sysBefore[i]![2]) / n)}B/${Math.round((wb - sysBefore[i]![3]) / n)}B`,
    );
    console.log(`  read/write syscalls and bytes per req per member: ${sys.join(' ')}`);
    const switched = switches(cluster.children.map((c) => c.pid)).map((count, i) =>
      ((count - switchesBefore[i]!) / n).toFixed(2),
    );
    console.log(`  context switches per req per member: ${switched.join(' ')}`);
    const waited = runQueueWaitNs(waitPids).map((ns, i) =>
      ((ns - waitBefore[i]!) / 1000 / n).toFixed(1),
    );
    console.log(
      `  µs per req waiting for a CPU (run queue), per member then the generator: ${waited.join(' ')}`,
    );
    const mainWaited = runQueueWaitNs(waitPids, true).map((ns, i) =>
      ((ns - mainWaitBefore[i]!) / 1000 / n).toFixed(1),
    );
    console.log(`  the same, main threads only: ${mainWaited.join(' ')}`);
    const faults = minorFaults(cluster.children.map((c) => c.pid)).map((count, i) =>
      ((count - faultsBefore[i]!) / n).toFixed(3),
    );
    console.log(`  minor page faults per req per member: ${faults.join(' ')}`);
    if (process.env.PROBE_THREADS !== undefined) {
      // Which threads the CPU went to: the event loop (node), libuv's pool, V8's GC helpers.
      cluster.children.forEach((c, i) => {
        const parts = [...threadCpu(c.pid)]
          .map(
            ([name, sec]) =>
              [name, ((sec - (threadsBefore[i]!.get(name) ?? 0)) * 1e6) / n] as const,
          )
          .filter(([, us]) => us >= 0.5)
          .map(([name, us]) => `${name} ${us.toFixed(1)}`);
        console.log(`  member ${i} µs/req by thread: ${parts.join(', ')}`);
      });
    }
    console.log(`  leader=${leaderIndex} user/sys µs/req per member: ${split.join(' ')}`);
    console.log(
      kind,
      `x${clients}`,
      `rps=${Math.round(r.throughputPerSec)}`,
      `p50=${r.latency.p50Ms} p99=${r.latency.p99Ms}`,
      `cpu µs/req leader,f,f=${ordered.join(',')} gen=${Math.round((r.generatorCpuSec * 1e6) / n)}`,
    );
  }
  if (process.env.PROBE_METRICS !== undefined && kind === 'shoal') {
    // Cumulative histograms of each member (leader first): WAL save, apply batch, gRPC handling.
    const order = [leaderIndex, ...[0, 1, 2].filter((i) => i !== leaderIndex)];
    for (const i of order) {
      const text = await (await fetch(`http://${cluster.endpoints[i]}/metrics`)).text();
      const pick = text
        .split('\n')
        .filter((l) =>
          /^(etcd_disk_wal_fsync_duration_seconds|shoal_apply_batch_duration_seconds|grpc_server_handling_seconds)_(bucket|count|sum)/.test(
            l,
          ),
        )
        .filter((l) => !/method="(?!Put)/.test(l));
      console.log(`--- member ${i}${i === leaderIndex ? ' (leader)' : ''}`);
      for (const l of pick) console.log(`  ${l}`);
    }
  }
} finally {
  if (process.env.PROBE_DISK !== undefined) {
    const { execSync } = await import('node:child_process');
    console.log(execSync(`du -a -m ${cluster.dir} | sort -n | tail -12`, { encoding: 'utf8' }));
  }
  const saveLogs = process.env.PROBE_SAVE_LOGS;
  if (saveLogs !== undefined) {
    fs.mkdirSync(saveLogs, { recursive: true });
    for (const name of ['m1', 'm2', 'm3']) {
      fs.copyFileSync(`${cluster.dir}/${name}.log`, `${saveLogs}/${name}.log`);
    }
  }
  if (process.env.PROBE_KEEP_LOGS !== undefined) {
    for (const name of ['m1', 'm2', 'm3']) {
      const log = fs.readFileSync(`${cluster.dir}/${name}.log`, 'utf8').split('\n');
      const notable = log.filter((l) => /snapshot|leader|election/i.test(l));
      const snaps = fs.readdirSync(`${cluster.dir}/${name}/snap`);
      console.log(`--- ${name}: ${notable.length} notable lines; snap/ holds ${snaps.join(' ')}`);
      for (const line of notable.slice(-12)) console.log(line.slice(0, 600));
    }
  }
  await stopCluster(cluster);
}
