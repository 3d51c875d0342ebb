/**
 * `npm run bench:compare`: shoal against etcd 3.4 on the same machine with the same load generator
 * (`shoal bench`, in process). It starts a 3-member etcd cluster and a 3-member shoal cluster and
 * keeps both, but only one runs at a time: the other is frozen with SIGSTOP (no CPU, no timers)
 * and resumed for its turn. Every cell of the matrix (put, linearizable range, serializable range
 * at 1, 16 and 256 concurrent clients, 256-byte values) runs `--rounds` times (2 by default, 1
 * with --quick), alternating etcd, shoal, etcd, shoal, so both systems meet the same machine within
 * seconds of each other; the report takes each system's best round's throughput per cell (other
 * work on a shared machine only ever slows a run; single runs of one system differed by up to 40 %
 * within an hour), p50 and p99 over the requests of all rounds together, and lists every round. Results go to bench/results/compare.{md,json,svg} with the shoal/etcd
 * ratio in every cell.
 *
 * Each cell first runs its own load, unmeasured, for about `--warmup-seconds` (5 by default, 1
 * with --quick) and at least `--warmup-requests` (10000; 1000 with --quick), so both systems are measured in steady state: a
 * member's JavaScript needs several thousand requests before V8 has optimised its hot paths, and
 * the load generator (also JavaScript) warms up the same way. The measured run's --total comes from
 * the warm-up's throughput so that it lasts about `--seconds` (3 by default, 1 with --quick).
 *
 *   npm run bench:compare [-- --quick] [-- --systems etcd,etcd] [-- --profile [--profile-clients N]]
 *
 * `--systems a,b` chooses the baseline and candidate (etcd,etcd is the sanity check: ratios near 1).
 * `--profile` instead runs only the put cells (or the one with N clients) on shoal members under
 * `node --cpu-prof` and writes the leader's and a follower's top self-time functions to
 * bench/results/compare-profile.md. Child processes and temporary directories are
 * removed on exit and on Ctrl-C.
 */
import fs from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LatencyHistogram } from '../src/cli/bench/histogram.js';
import { runNativeBench } from '../src/cli/bench/native.js';
import { type BenchOptions, type BenchResult, runBench } from '../src/cli/bench/runner.js';
import { type ChartCell, renderChart } from './compare-chart.js';
import {
  type Cluster,
  killAllSync,
  leaderFirst,
  memberCpuSec,
  pauseCluster,
  resumeCluster,
  type SystemKind,
  seedRangeKey,
  startCluster,
  stopAll,
  stopCluster,
  waitForLeader,
} from './compare-cluster.js';
import { type SampleWindowUs, summarizeProfile } from './compare-profile.js';

const resultsDir = fileURLToPath(new URL('./results/', import.meta.url));
const keySize = 8;
const valSize = 256;
const clientCounts = [1, 16, 256] as const;
/** Keys the put cells cycle through (sequential), so the store grows to a realistic size. */
const keySpaceSize = 100_000;
/** Bounds on a cell's request count, whatever the pilot measured. */
const cellTotalMin = 200;
const cellTotalMax = 2_000_000;
/**
 * Requests each warm-up runs at least, however long that takes: V8 optimises a function after
 * enough calls, not enough time, and a member at one client needs about 6000 puts to reach its
 * steady rate (measured: 358, 547, 662, 638, 658 req/s in consecutive runs of 3000).
 */
const WARMUP_REQUESTS_DEFAULT = 10_000;

/** How long each cell warms up (unmeasured) and then runs (measured). */
interface CellTiming {
  seconds: number;
  warmupSeconds: number;
  /** Requests each warm-up runs at least (see WARMUP_REQUESTS_DEFAULT). */
  warmupRequests: number;
}

interface CellSpec {
  label: string;
  /** The etcd gRPC API (both systems) or shoal's native protocol (shoal only). */
  protocol?: 'grpc' | 'native';
  command: 'put' | 'range';
  consistency: 'l' | 's';
  clients: number;
}

/** A cell's result plus the CPU the cluster's members spent on it. */
interface CellResult extends BenchResult {
  /** CPU seconds per member (m1..m3) during the cell; SystemRun.leaderIndex says which one led. */
  memberCpuSec: number[];
  /** When the measured run started and ended (after the warm-up), on the monotonic clock in µs. */
  measuredUs: SampleWindowUs;
  /** Snapshots the members took during the measured run (from their /metrics; NaN if unread). */
  snapshots: number;
  /** Bytes the machine's disks wrote during the measured run (all processes; NaN if unread). */
  diskWrittenBytes: number;
}

/**
 * Bytes written so far by the machine's block devices (loop, ram and zram devices left out), from
 * /sys/block/<dev>/stat (sectors of 512 bytes); NaN where that is not readable. A round that met
 * the kernel writing back a large pile of dirty pages shows it here.
 */
function diskWrittenBytesSoFar(): number {
  try {
    let sectors = 0;
    for (const device of fs.readdirSync('/sys/block')) {
      if (/^(loop|ram|zram)/.test(device)) continue;
      const fields = fs.readFileSync(`/sys/block/${device}/stat`, 'utf8').trim().split(/\s+/);
      sectors += Number(fields[6]);
    }
    return sectors * 512;
  } catch {
    return Number.NaN;
  }
}

/** Each system's count of snapshots taken, as its members' /metrics report it. */
const SNAPSHOT_COUNT_METRIC: Record<SystemKind, RegExp> = {
  shoal: /^shoal_snapshot_duration_seconds_count(?:\{[^}]*\})? (\d+)/m,
  etcd: /^etcd_debugging_snap_save_total_duration_seconds_count(?:\{[^}]*\})? (\d+)/m,
};

/** Snapshots taken so far by all members together (NaN when a member's metrics are unreadable). */
async function snapshotsTaken(cluster: Cluster): Promise<number> {
  const counts = await Promise.all(
    cluster.endpoints.map(async (endpoint) => {
      try {
        const text = await (await fetch(`http://${endpoint}/metrics`)).text();
        // No line yet means no snapshot yet (a histogram with no observation prints none).
        return Number(SNAPSHOT_COUNT_METRIC[cluster.kind].exec(text)?.[1] ?? 0);
      } catch {
        return Number.NaN;
      }
    }),
  );
  return counts.reduce((a, b) => a + b, 0);
}

interface SystemRun {
  name: string;
  kind: SystemKind;
  leaderIndex: number;
  /** CPU the idle cluster uses (all members summed), in percent of one core. */
  idleCpuPercent: number;
  results: CellResult[];
  /** shoal only: the put cells again over the native protocol (nativeMatrix order). */
  nativeResults?: CellResult[];
  /** Every round's throughput per cell (matrix order, then native order). */
  roundsPerSec: number[][];
  /** Every round's own p99 per cell (same order). */
  roundsP99Ms: number[][];
  /** Failed requests per cell over all its rounds (same order). */
  failedPerCell: number[];
  /** Snapshots the members took during each round's measured run, per cell (same order). */
  roundsSnapshots: number[][];
  /** Disk bytes written during each round's measured run (see CellResult.diskWrittenBytes). */
  roundsDiskBytes?: number[][];
  /** Times the leader had moved when the cluster was resumed for a cell (0 when it never did). */
  leaderChanges: number;
}

function matrix(): CellSpec[] {
  const cells: CellSpec[] = [];
  for (const [label, command, consistency] of [
    ['put', 'put', 'l'],
    ['range-l', 'range', 'l'],
    ['range-s', 'range', 's'],
  ] as const) {
    for (const clients of clientCounts)
      cells.push({ label: `${label} ×${clients}`, command, consistency, clients });
  }
  return cells;
}

/** The put cells over shoal's native protocol (ShoalClient), compared with etcd's gRPC puts. */
function nativeMatrix(): CellSpec[] {
  return clientCounts.map((clients) => ({
    label: `put ×${clients}`,
    protocol: 'native' as const,
    command: 'put' as const,
    consistency: 'l' as const,
    clients,
  }));
}

/** One connection per client up to one per member, then more connections for 256 clients. */
function connsFor(clients: number): number {
  return clients === 1 ? 1 : clients <= 16 ? 3 : 6;
}

function cellOptions(spec: CellSpec, endpoints: string[], total: number): BenchOptions {
  return {
    command: spec.command,
    endpoints,
    conns: connsFor(spec.clients),
    clients: spec.clients,
    total,
    keySize,
    valSize,
    keySpaceSize,
    sequentialKeys: true,
    consistency: spec.consistency,
    rate: 0,
    seed: 1,
  };
}

async function runCell(
  spec: CellSpec,
  cluster: Cluster,
  endpoints: string[],
  timing: CellTiming,
  who = '',
): Promise<CellResult> {
  const run = spec.protocol === 'native' ? runNativeBench : runBench;
  const sized = (throughputPerSec: number, seconds: number): number =>
    Math.round(
      Math.min(cellTotalMax, Math.max(cellTotalMin, spec.clients * 5, throughputPerSec * seconds)),
    );
  // A short pilot sizes the warm-up; the warm-up (same load, results discarded) sizes the cell.
  const pilot = await run(cellOptions(spec, endpoints, Math.max(cellTotalMin, spec.clients * 4)));
  const warmupTotal = Math.max(
    sized(pilot.throughputPerSec, timing.warmupSeconds),
    timing.warmupRequests,
  );
  const warmup = await run(cellOptions(spec, endpoints, warmupTotal));
  const total = sized(warmup.throughputPerSec, timing.seconds);
  const snapshotsBefore = await snapshotsTaken(cluster);
  const cpuBefore = memberCpuSec(cluster);
  const diskBefore = diskWrittenBytesSoFar();
  const startUs = monotonicUs();
  const bench = await run(cellOptions(spec, endpoints, total));
  const endUs = monotonicUs();
  const diskAfter = diskWrittenBytesSoFar();
  const cpuAfter = memberCpuSec(cluster);
  // A snapshot still being written when the run ended is counted by neither read.
  const snapshotsAfter = await snapshotsTaken(cluster);
  const result: CellResult = {
    ...bench,
    memberCpuSec: cpuAfter.map((after, i) => after - cpuBefore[i]!),
    measuredUs: { startUs, endUs },
    snapshots: snapshotsAfter - snapshotsBefore,
    diskWrittenBytes: diskAfter - diskBefore,
  };
  // Spread copies only enumerable fields; the pooling across rounds needs the full histogram.
  Object.defineProperty(result, 'latencyHistogram', { value: bench.latencyHistogram });
  process.stderr.write(
    `  ${who.padEnd(10)} ${`${spec.label}${spec.protocol === 'native' ? ' native' : ''}`.padEnd(20)} ${result.throughputPerSec.toFixed(0).padStart(7)} req/s  p50 ${result.latency.p50Ms.toFixed(2)} ms  p99 ${result.latency.p99Ms.toFixed(2)} ms  (${result.succeeded}/${total} ok in ${result.durationSec.toFixed(1)} s, generator ${cpuPerRequestUs(result)} µs CPU/req, members ${clusterCpuPerRequestUs(result)} µs CPU/req, disk wrote ${(result.diskWrittenBytes / 1e6).toFixed(0)} MB)\n`,
  );
  return result;
}

/** One system's cluster, started once and frozen (SIGSTOP) whenever it is not being measured. */
interface Contender {
  name: string;
  kind: SystemKind;
  cluster: Cluster;
  idleCpuPercent: number;
}

async function prepare(name: string, kind: SystemKind): Promise<Contender> {
  process.stderr.write(`starting a ${memberLabel(kind)} cluster for "${name}"...\n`);
  const cluster: Cluster = await startCluster(kind);
  try {
    await seedRangeKey(cluster, keySize, valSize);
    await waitForLeader(cluster);
    const idleCpuPercent = await measureIdleCpuPercent(cluster);
    process.stderr.write(
      `  idle cluster: ${idleCpuPercent.toFixed(1)} % of a core (all members)\n`,
    );
    pauseCluster(cluster);
    return { name, kind, cluster, idleCpuPercent };
  } catch (error) {
    await stopCluster(cluster);
    throw error;
  }
}

/** Runs `work` with only `system`'s cluster running, its endpoints ordered leader first. */
async function onTurn<T>(
  system: Contender,
  work: (endpoints: string[], leaderIndex: number) => Promise<T>,
): Promise<T> {
  resumeCluster(system.cluster);
  try {
    const { endpoints, leaderIndex } = await waitForLeader(system.cluster);
    return await work(endpoints, leaderIndex);
  } finally {
    pauseCluster(system.cluster);
  }
}

/**
 * Every cell, `rounds` times, alternating the systems (a, b, a, b) so that both see the same
 * machine within seconds of each other; then each cell's summary per system (bestOfRounds).
 */
async function runMatrix(
  systems: Contender[],
  timing: CellTiming,
  rounds: number,
): Promise<SystemRun[]> {
  const cells = systems.map(() => matrix().map((): CellResult[] => []));
  const leaders = systems.map((): number[] => []);
  for (const [i, spec] of matrix().entries()) {
    for (let round = 1; round <= rounds; round++) {
      for (const [s, system] of systems.entries()) {
        const result = await onTurn(system, (endpoints, leaderIndex) => {
          leaders[s]!.push(leaderIndex);
          return runCell(spec, system.cluster, endpoints, timing, `${system.name} ${round}`);
        });
        cells[s]![i]!.push(result);
      }
    }
  }
  // shoal's native-protocol puts; the native client finds the leader itself from the peer URLs.
  const native = systems.map((system) =>
    system.kind === 'shoal' ? nativeMatrix().map((): CellResult[] => []) : undefined,
  );
  for (const [i, spec] of nativeMatrix().entries()) {
    for (let round = 1; round <= rounds; round++) {
      for (const [s, system] of systems.entries()) {
        const rows = native[s];
        if (rows === undefined) continue;
        rows[i]!.push(
          await onTurn(system, () =>
            runCell(spec, system.cluster, system.cluster.peerEndpoints, timing, system.name),
          ),
        );
      }
    }
  }
  return systems.map((system, s) => bestOfRounds(system, leaders[s]!, cells[s]!, native[s]));
}

/**
 * Each cell's best round (highest throughput, with that round's CPU). Noise from other work on a
 * shared machine only ever slows a run, so the best of alternating rounds is the fairest single
 * throughput for both systems. Latencies are pooled instead: p50 and p99 over every request of
 * every round, since one round's p99 rests on a few dozen requests and moved by 2x between rounds
 * of the same system. Every round's throughput and p99 are kept alongside.
 */
function bestOfRounds(
  system: Contender,
  leaders: number[],
  cells: CellResult[][],
  native: CellResult[][] | undefined,
): SystemRun {
  const best = (rounds: CellResult[]): CellResult => {
    const top = rounds.reduce((a, b) => (b.throughputPerSec > a.throughputPerSec ? b : a));
    const pooled = new LatencyHistogram();
    for (const round of rounds) if (round.latencyHistogram) pooled.merge(round.latencyHistogram);
    return pooled.count > 0 ? { ...top, latency: pooled.summaryMs() } : top;
  };
  return {
    name: system.name,
    kind: system.kind,
    leaderIndex: leaders[0] ?? -1,
    leaderChanges: leaders.filter((leader, i) => i > 0 && leader !== leaders[i - 1]).length,
    idleCpuPercent: system.idleCpuPercent,
    results: cells.map(best),
    nativeResults: native?.map(best),
    roundsP99Ms: [...cells, ...(native ?? [])].map((rounds) =>
      rounds.map((cell) => cell.latency.p99Ms),
    ),
    roundsPerSec: [...cells, ...(native ?? [])].map((rounds) =>
      rounds.map((cell) => cell.throughputPerSec),
    ),
    failedPerCell: [...cells, ...(native ?? [])].map((rounds) =>
      rounds.reduce((sum, cell) => sum + cell.failed, 0),
    ),
    roundsSnapshots: [...cells, ...(native ?? [])].map((rounds) =>
      rounds.map((cell) => cell.snapshots),
    ),
    roundsDiskBytes: [...cells, ...(native ?? [])].map((rounds) =>
      rounds.map((cell) => cell.diskWrittenBytes),
    ),
  };
}

/** The monotonic clock (the one `--cpu-prof` timestamps use), in µs. */
function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** How long the idle cluster's CPU use is sampled before the matrix. */
const idleSampleMs = 2000;

async function measureIdleCpuPercent(cluster: Cluster): Promise<number> {
  const before = memberCpuSec(cluster);
  await new Promise((resolve) => setTimeout(resolve, idleSampleMs));
  const after = memberCpuSec(cluster);
  const usedSec = after.reduce((sum, value, i) => sum + value - before[i]!, 0);
  return (usedSec / (idleSampleMs / 1000)) * 100;
}

function memberLabel(kind: SystemKind): string {
  return kind === 'etcd' ? '3-member etcd 3.4' : '3-member shoal';
}

function ratio(candidate: number, baseline: number): string {
  return baseline > 0 ? (candidate / baseline).toFixed(2) : 'n/a';
}

function cpuPerRequestUs(result: BenchResult): string {
  return ((result.generatorCpuSec * 1e6) / Math.max(1, result.succeeded)).toFixed(0);
}

/** Members' CPU per request, all members summed, in µs (NaN when /proc is unreadable). */
function clusterCpuPerRequestUs(result: CellResult): string {
  const totalSec = result.memberCpuSec.reduce((a, b) => a + b, 0);
  return ((totalSec * 1e6) / Math.max(1, result.succeeded)).toFixed(0);
}

/** Every round's throughput for cell `i` (matrix order, then the native cells). */
/** Every round of cell `i` as "req/s (p99 ms)". */
function roundsCell(run: SystemRun, i: number): string {
  const p99s = run.roundsP99Ms?.[i] ?? [];
  const snapshots = run.roundsSnapshots?.[i] ?? [];
  const disk = run.roundsDiskBytes?.[i] ?? [];
  return (run.roundsPerSec?.[i] ?? [])
    .map((perSec, round) => {
      const taken = snapshots[round] ?? 0;
      const mark = taken > 0 ? `, ${taken} snap` : Number.isNaN(taken) ? ', snap ?' : '';
      const bytes = disk[round];
      const written =
        bytes === undefined || Number.isNaN(bytes) ? '' : `, ${(bytes / 1e6).toFixed(0)} MB`;
      return `${perSec.toFixed(0)} (${p99s[round]?.toFixed(1) ?? '?'}${written}${mark})`;
    })
    .join(', ');
}

function markdownTable(baseline: SystemRun, candidate: SystemRun): string {
  const b = baseline.name;
  const c = candidate.name;
  const rows = [
    `| cell | ${b} req/s | ${c} req/s | ratio ${c}/${b} | ${b} p50 ms | ${c} p50 ms | ${b} p99 ms | ${c} p99 ms | ratio p99 ${c}/${b} | errors ${b}/${c} (all rounds) | members CPU µs/req ${b}/${c} | generator CPU µs/req ${b}/${c} | every round's req/s (p99 ms) ${b} / ${c} |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|',
  ];
  matrix().forEach((spec, i) => {
    const x = baseline.results[i]!;
    const y = candidate.results[i]!;
    rows.push(
      `| ${spec.label} | ${x.throughputPerSec.toFixed(0)} | ${y.throughputPerSec.toFixed(0)} | ${ratio(y.throughputPerSec, x.throughputPerSec)} | ${x.latency.p50Ms.toFixed(2)} | ${y.latency.p50Ms.toFixed(2)} | ${x.latency.p99Ms.toFixed(2)} | ${y.latency.p99Ms.toFixed(2)} | ${ratio(y.latency.p99Ms, x.latency.p99Ms)} | ${baseline.failedPerCell[i]}/${candidate.failedPerCell[i]} | ${clusterCpuPerRequestUs(x)}/${clusterCpuPerRequestUs(y)} | ${cpuPerRequestUs(x)}/${cpuPerRequestUs(y)} | ${roundsCell(baseline, i)} / ${roundsCell(candidate, i)} |`,
    );
  });
  return rows.join('\n');
}

/** shoal's native-protocol puts against the baseline's gRPC puts (same cells, same generator loop). */
function nativeTable(baseline: SystemRun, candidate: SystemRun): string {
  const native = candidate.nativeResults;
  if (native === undefined) return '';
  const b = baseline.name;
  const rows = [
    `### ${candidate.name} over its native protocol (shoal/client) vs ${b} over gRPC`,
    '',
    `| cell | ${b} gRPC req/s | ${candidate.name} native req/s | ratio | ${b} p99 ms | native p99 ms | errors (all rounds) | generator CPU µs/req ${b}/native | every round's req/s (p99 ms) ${b} / native |`,
    '|---|---:|---:|---:|---:|---:|---|---|---|',
  ];
  nativeMatrix().forEach((spec, i) => {
    const grpcIndex = matrix().findIndex((m) => m.label === spec.label);
    const x = baseline.results[grpcIndex]!;
    const y = native[i]!;
    rows.push(
      `| ${spec.label} | ${x.throughputPerSec.toFixed(0)} | ${y.throughputPerSec.toFixed(0)} | ${ratio(y.throughputPerSec, x.throughputPerSec)} | ${x.latency.p99Ms.toFixed(2)} | ${y.latency.p99Ms.toFixed(2)} | ${candidate.failedPerCell[matrix().length + i]} | ${cpuPerRequestUs(x)}/${cpuPerRequestUs(y)} | ${roundsCell(baseline, grpcIndex)} / ${roundsCell(candidate, matrix().length + i)} |`,
    );
  });
  return `${rows.join('\n')}\n`;
}

function writeResults(
  baseline: SystemRun,
  candidate: SystemRun,
  timing: CellTiming & { rounds: number },
  suffix: string,
): void {
  const { seconds, warmupSeconds, rounds } = timing;
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const load = os
    .loadavg()
    .map((v) => v.toFixed(1))
    .join(' / ');
  const machine = `${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), load average at the end ${load}`;
  const md = [
    `# ${candidate.name} vs ${baseline.name}: 3-member clusters, same load generator`,
    '',
    `- Date: ${date}`,
    `- Machine: ${machine}. The load generator shares the machine with the clusters under test.`,
    `- Matrix: put, linearizable range (range-l), serializable range (range-s) at 1, 16 and 256 concurrent clients; ${valSize}-byte values, ${keySize}-byte keys; puts cycle over ${keySpaceSize} sequential keys; ranges read one key. Each cell first runs its own load unmeasured for about ${warmupSeconds} s and at least ${timing.warmupRequests} requests (the same for both systems: V8 needs several thousand requests to optimise a member's hot paths and the generator's), then about ${seconds} s measured (total chosen from the warm-up's throughput). Both clusters stay up, but only the one being measured runs: the other is frozen (SIGSTOP). Every cell runs ${rounds} times, alternating (${baseline.name}, ${candidate.name}, ${baseline.name}, ...); each cell shows each system's best round's throughput (other work on the shared machine only ever slows a run) and p50/p99 over the requests of all its rounds together (one round's p99 rests on a few dozen requests), and the last column lists every round's throughput and own p99, the megabytes the machine's disk wrote during its measured run ("N MB", all processes, from /sys/block) and the snapshots the members took during it ("N snap", from their /metrics). Connections: 1 (to the leader) for 1 client, 3 for 16, 6 for 256, spread over all members starting with the leader.`,
    `- Members: --heartbeat-interval=100 --election-timeout=1000 --snapshot-count=100000, data in a temp dir.`,
    `- Command: \`npm run bench:compare${suffix ? ` -- ${suffix}` : ''}\``,
    '',
    markdownTable(baseline, candidate),
    '',
    nativeTable(baseline, candidate),
    `Leader changes seen between cells: ${baseline.name} ${baseline.leaderChanges}, ${candidate.name} ${candidate.leaderChanges} (the ×1 cells talk to the leader, found again before every cell). Idle cluster CPU (all three members, before the matrix): ${baseline.name} ${baseline.idleCpuPercent.toFixed(1)} % of a core, ${candidate.name} ${candidate.idleCpuPercent.toFixed(1)} %. "members CPU µs/req" is the CPU all members used during the cell divided by its requests (from /proc); "generator CPU" is the load generator's own.`,
    '',
  ].join('\n');
  fs.mkdirSync(resultsDir, { recursive: true });
  const base = join(resultsDir, 'compare');
  fs.writeFileSync(
    `${base}.json`,
    `${JSON.stringify({ date, machine, seconds, warmupSeconds, rounds, baseline, candidate }, null, 2)}\n`,
  );
  fs.writeFileSync(`${base}-latest.md`, md);
  const cells: ChartCell[] = matrix().map((spec, i) => ({
    label: spec.label,
    baseline: {
      throughputPerSec: baseline.results[i]!.throughputPerSec,
      p99Ms: baseline.results[i]!.latency.p99Ms,
    },
    candidate: {
      throughputPerSec: candidate.results[i]!.throughputPerSec,
      p99Ms: candidate.results[i]!.latency.p99Ms,
    },
  }));
  const subtitle = `${candidate.name} vs ${baseline.name}, 3 members each, ${date}, ${os.cpus().length} shared cores`;
  fs.writeFileSync(
    `${base}.svg`,
    renderChart(cells, { baseline: baseline.name, candidate: candidate.name }, subtitle),
  );
  process.stdout.write(`${md}\nwrote ${base}-latest.md, ${base}.json and ${base}.svg\n`);
}

interface Args extends CellTiming {
  /** Alternating rounds (baseline, candidate, baseline, ...); see bestOfRounds for the summary. */
  rounds: number;
  systems: [SystemKind, SystemKind];
  profile: boolean;
  /** With --profile: only the put cell with this many clients. */
  profileClients?: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    seconds: 3,
    warmupSeconds: 5,
    warmupRequests: WARMUP_REQUESTS_DEFAULT,
    rounds: 2,
    systems: ['etcd', 'shoal'],
    profile: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick') {
      args.seconds = 1;
      args.warmupSeconds = 1;
      args.warmupRequests = 1000;
      args.rounds = 1;
    } else if (arg === '--warmup-seconds') args.warmupSeconds = Number(argv[++i]);
    else if (arg === '--rounds') args.rounds = Number(argv[++i]);
    else if (arg === '--warmup-requests') args.warmupRequests = Number(argv[++i]);
    else if (arg === '--profile') args.profile = true;
    else if (arg === '--profile-clients') args.profileClients = Number(argv[++i]);
    else if (arg === '--seconds') args.seconds = Number(argv[++i]);
    else if (arg === '--systems') {
      const [a, b] = (argv[++i] ?? '').split(',');
      const valid = (kind: string | undefined): kind is SystemKind =>
        kind === 'etcd' || kind === 'shoal';
      if (!valid(a) || !valid(b))
        throw new Error('--systems takes two of etcd|shoal, e.g. etcd,shoal');
      args.systems = [a, b];
    } else throw new Error(`unknown argument ${arg}`);
  }
  if (!(args.seconds > 0)) throw new Error('--seconds must be positive');
  if (!(args.warmupSeconds >= 0)) throw new Error('--warmup-seconds must be 0 or more');
  if (!(args.warmupRequests >= 0)) throw new Error('--warmup-requests must be 0 or more');
  if (!Number.isInteger(args.rounds) || args.rounds < 1)
    throw new Error('--rounds must be a positive integer');
  return args;
}

/** The put cells only, on a shoal cluster whose members run under `node --cpu-prof`. */
async function profileShoalPuts(timing: CellTiming, clients: number | undefined): Promise<void> {
  const profileDir = fs.mkdtempSync(join(os.tmpdir(), 'shoal-compare-prof-'));
  try {
    process.stderr.write('starting a 3-member shoal cluster under node --cpu-prof...\n');
    const cluster = await startCluster('shoal', {
      nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`],
    });
    let leaderPid: number | undefined;
    let followerPid: number | undefined;
    let window: SampleWindowUs | undefined;
    const cells = matrix().filter(
      (cell) => cell.command === 'put' && (clients === undefined || cell.clients === clients),
    );
    try {
      const { endpoints, leaderIndex } = await leaderFirst(cluster);
      leaderPid = leaderIndex >= 0 ? cluster.children[leaderIndex]!.pid : undefined;
      followerPid =
        leaderIndex >= 0
          ? cluster.children[(leaderIndex + 1) % cluster.children.length]!.pid
          : undefined;
      // The profile's timestamps are on the monotonic clock hrtime reads, so the summary can
      // leave out the member's start-up (module loading through tsx) and the warm-ups.
      const measured: SampleWindowUs[] = [];
      for (const spec of cells) {
        measured.push((await runCell(spec, cluster, endpoints, timing)).measuredUs);
      }
      window = { startUs: measured[0]!.startUs, endUs: measured[measured.length - 1]!.endUs };
    } finally {
      await stopCluster(cluster);
    }
    const summary = [
      '# CPU profile of shoal members under put load',
      '',
      `- Date: ${new Date().toISOString()}; ${cells.map((cell) => cell.label).join(', ')} (256-byte values), about ${timing.seconds} s each after a ${timing.warmupSeconds} s warm-up; ${os.cpus().length} shared cores, load average ${os.loadavg()[0]!.toFixed(1)}.`,
      `- Command: \`npm run bench:compare -- ${process.argv.slice(2).join(' ')}\``,
      '',
      summarizeProfile(profileDir, leaderPid, window, 'leader'),
      ...(followerPid === undefined
        ? []
        : [summarizeProfile(profileDir, followerPid, window, 'follower')]),
    ].join('\n');
    fs.mkdirSync(resultsDir, { recursive: true });
    fs.writeFileSync(join(resultsDir, 'compare-profile.md'), summary);
    process.stdout.write(summary);
  } finally {
    fs.rmSync(profileDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.profile) return profileShoalPuts(args, args.profileClients);
  const [baseKind, candKind] = args.systems;
  const names = baseKind === candKind ? [`${baseKind}`, `${candKind}-2`] : [baseKind, candKind];
  const systems: Contender[] = [];
  try {
    systems.push(await prepare(names[0]!, baseKind));
    systems.push(await prepare(names[1]!, candKind));
    const [baseline, candidate] = await runMatrix(systems, args, args.rounds);
    writeResults(baseline!, candidate!, args, process.argv.slice(2).join(' '));
  } finally {
    await Promise.all(systems.map((system) => stopCluster(system.cluster)));
  }
}

process.on('exit', killAllSync);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    process.stderr.write(`\n${signal}: stopping the clusters...\n`);
    stopAll().finally(() => process.exit(130));
  });
}

main().catch(async (error) => {
  process.stderr.write(`bench:compare failed: ${(error as Error).stack ?? error}\n`);
  await stopAll();
  process.exit(1);
});
