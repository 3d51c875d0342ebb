/**
 * WAL benchmark (`npm run bench:wal`): appends of 256-byte entries through DiskStorage with group
 * commit at 1, 16 and 256 concurrent appenders, reporting entries/s, fdatasyncs/s and the p50/p99
 * latency from save() to durability; and, in the same run, the disk's raw floor: a loop of one
 * 4 KiB write plus one fdatasync on a preallocated file. Writes bench/results/wal.md.
 *
 * Environment: WAL_BENCH_SECONDS (per configuration, default 5), WAL_BENCH_DIR (default
 * bench/results/tmp, on the same file system as the repository).
 */
import fs from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { EntryType } from '../src/raft/types.js';
import { DiskStorage } from '../src/storage/index.js';

const seconds = Number(process.env.WAL_BENCH_SECONDS ?? 5);
const root = fileURLToPath(new URL('..', import.meta.url));
const workDir = process.env.WAL_BENCH_DIR ?? join(root, 'bench', 'results', 'tmp');
const entryBytes = 256;
const rawWriteBytes = 4096;
const rawIterations = 1000;

function percentile(sorted: Float64Array, fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))]!;
}

function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

interface LatencySummary {
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  count: number;
}

function summarize(samples: readonly number[]): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  const mean = samples.reduce((a, b) => a + b, 0) / Math.max(1, samples.length);
  return {
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    meanMs: mean,
    count: samples.length,
  };
}

/** The floor: 4 KiB pwrite + fdatasync in a loop on a preallocated (real zeros) file. */
function rawFdatasync(iterations: number, into: number[]): void {
  const path = join(workDir, 'raw.bin');
  fs.writeFileSync(path, Buffer.alloc(rawWriteBytes * iterations));
  const fd = fs.openSync(path, 'r+');
  fs.fdatasyncSync(fd);
  const block = Buffer.alloc(rawWriteBytes, 0xab);
  for (let i = 0; i < iterations; i++) {
    const start = nowMs();
    fs.writeSync(fd, block, 0, block.length, i * rawWriteBytes);
    fs.fdatasyncSync(fd);
    into.push(nowMs() - start);
  }
  fs.closeSync(fd);
  fs.rmSync(path);
}

interface AppendResult {
  appenders: number;
  entriesPerSecond: number;
  fdatasyncsPerSecond: number;
  entriesPerFdatasync: number;
  p50Ms: number;
  p99Ms: number;
}

async function appendRun(
  appenders: number,
  runSeconds: number,
  latencies: number[],
): Promise<AppendResult> {
  const dir = join(workDir, `wal-${appenders}`);
  fs.rmSync(dir, { recursive: true, force: true });
  const storage = await DiskStorage.open(dir, { logger: pino({ level: 'warn' }) });
  const data = new Uint8Array(entryBytes).fill(7);
  const first = latencies.length;
  let next = storage.lastIndex() + 1;
  let running = true;
  const statsBefore = storage.walStats();
  const started = nowMs();
  const appender = async () => {
    while (running) {
      const index = next++;
      const start = nowMs();
      await storage.save(null, [{ index, term: 1, type: EntryType.Normal, data }]);
      latencies.push(nowMs() - start);
    }
  };
  const loops = Array.from({ length: appenders }, appender);
  await new Promise((resolve) => setTimeout(resolve, runSeconds * 1000));
  running = false;
  await Promise.all(loops);
  const elapsedSeconds = (nowMs() - started) / 1000;
  const stats = storage.walStats();
  await storage.close();
  fs.rmSync(dir, { recursive: true, force: true });
  const summary = summarize(latencies.slice(first));
  const syncs = stats.fdatasyncs - statsBefore.fdatasyncs;
  return {
    appenders,
    entriesPerSecond: summary.count / elapsedSeconds,
    fdatasyncsPerSecond: syncs / elapsedSeconds,
    entriesPerFdatasync: summary.count / syncs,
    p50Ms: summary.p50Ms,
    p99Ms: summary.p99Ms,
  };
}

function format(value: number, digits = 2): string {
  return value.toLocaleString('en-US', { maximumFractionDigits: digits });
}

function machine(): string {
  const cpus = os.cpus();
  return `${cpus[0]?.model ?? 'unknown cpu'} × ${cpus.length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Linux ${os.release()}, Node ${process.version}`;
}

/**
 * One appender, interleaved with the raw floor in rounds, so that both see the same background
 * load on a shared machine; latencies are pooled over the rounds.
 */
async function singleAppenderRounds(raw: number[]): Promise<AppendResult> {
  const rounds = 5;
  const latencies: number[] = [];
  let entries = 0;
  let syncsPerSecond = 0;
  for (let round = 0; round < rounds; round++) {
    rawFdatasync(rawIterations / rounds, raw);
    const result = await appendRun(1, seconds / rounds, latencies);
    entries += result.entriesPerSecond / rounds;
    syncsPerSecond += result.fdatasyncsPerSecond / rounds;
  }
  const summary = summarize(latencies);
  return {
    appenders: 1,
    entriesPerSecond: entries,
    fdatasyncsPerSecond: syncsPerSecond,
    entriesPerFdatasync: entries / syncsPerSecond,
    p50Ms: summary.p50Ms,
    p99Ms: summary.p99Ms,
  };
}

async function main(): Promise<void> {
  fs.mkdirSync(workDir, { recursive: true });
  const raw: number[] = [];
  const runs: AppendResult[] = [await singleAppenderRounds(raw)];
  for (const appenders of [16, 256]) runs.push(await appendRun(appenders, seconds, []));
  const floor = summarize(raw);
  const lines = [
    '# WAL benchmark',
    '',
    `Date: ${new Date().toISOString()}  `,
    `Machine: ${machine()}  `,
    `Command: \`npm run bench:wal\` (${seconds} s per configuration, ${entryBytes}-byte entries, one entry per save, default options: 64 MiB segments)  `,
    `Directory: ${workDir}`,
    '',
    '## Raw disk floor (4 KiB pwrite + fdatasync, synchronous loop, interleaved with the 1-appender run)',
    '',
    '| samples | p50 ms | p99 ms | mean ms | syncs/s |',
    '| --- | --- | --- | --- | --- |',
    `| ${floor.count} | ${format(floor.p50Ms, 3)} | ${format(floor.p99Ms, 3)} | ${format(floor.meanMs, 3)} | ${format(1000 / floor.meanMs, 0)} |`,
    '',
    '## Group commit appends',
    '',
    '| appenders | entries/s | fdatasyncs/s | entries per fdatasync | p50 ms | p99 ms | p50 / raw p50 |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...runs.map(
      (r) =>
        `| ${r.appenders} | ${format(r.entriesPerSecond, 0)} | ${format(r.fdatasyncsPerSecond, 0)} | ${format(r.entriesPerFdatasync, 1)} | ${format(r.p50Ms, 3)} | ${format(r.p99Ms, 3)} | ${format(r.p50Ms / floor.p50Ms, 2)} |`,
    ),
    '',
    'Targets: ≥ 100,000 entries/s at 256 appenders; p50 at 1 appender ≤ 1.5 × the raw fdatasync p50.',
    '',
  ];
  const report = lines.join('\n');
  fs.writeFileSync(join(root, 'bench', 'results', 'wal.md'), report);
  console.log(report);
}

await main();
