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

/**
 * The floor: 4 KiB pwrite + fdatasync in a loop on a preallocated (real zeros) file, each write to
 * the next block. `sync` runs the calls on the main thread (writeSync + fdatasyncSync); otherwise
 * they go through libuv's threadpool like the WAL's own (fs.write + fs.fdatasync callbacks). The
 * file is made once and deleted at the end: deleting files between measurements would add the
 * file system's discard work to whatever is measured next.
 */
class RawFloor {
  private readonly path = join(workDir, 'raw.bin');
  private readonly fd: number;
  private readonly block = Buffer.alloc(rawWriteBytes, 0xab);
  private nextBlock = 0;

  constructor(private readonly blocks: number) {
    fs.writeFileSync(this.path, Buffer.alloc(rawWriteBytes * blocks));
    this.fd = fs.openSync(this.path, 'r+');
    fs.fdatasyncSync(this.fd);
  }

  async measure(iterations: number, into: number[], sync: boolean): Promise<void> {
    const { fd, block } = this;
    for (let i = 0; i < iterations; i++) {
      const position = (this.nextBlock++ % this.blocks) * rawWriteBytes;
      const start = nowMs();
      if (sync) {
        fs.writeSync(fd, block, 0, block.length, position);
        fs.fdatasyncSync(fd);
      } else {
        await new Promise<void>((resolve, reject) =>
          fs.write(fd, block, 0, block.length, position, (e) => (e ? reject(e) : resolve())),
        );
        await new Promise<void>((resolve, reject) =>
          fs.fdatasync(fd, (e) => (e ? reject(e) : resolve())),
        );
      }
      into.push(nowMs() - start);
    }
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

interface AppendResult {
  appenders: number;
  entriesPerSecond: number;
  fdatasyncsPerSecond: number;
  entriesPerFdatasync: number;
  p50Ms: number;
  p99Ms: number;
}

function openStorage(appenders: number): Promise<DiskStorage> {
  const dir = join(workDir, `wal-${appenders}`);
  fs.rmSync(dir, { recursive: true, force: true });
  return DiskStorage.open(dir, { logger: pino({ level: 'warn' }) });
}

/** Appends with `appenders` concurrent loops for `runSeconds`, pooling latencies into `latencies`. */
async function appendRun(
  storage: DiskStorage,
  appenders: number,
  runSeconds: number,
  latencies: number[],
): Promise<AppendResult> {
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
  const summary = summarize(latencies.slice(first));
  const syncs = storage.walStats().fdatasyncs - statsBefore.fdatasyncs;
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
async function singleAppenderRounds(
  floor: RawFloor,
  raw: number[],
  rawAsync: number[],
): Promise<AppendResult> {
  const rounds = 5;
  const latencies: number[] = [];
  const storage = await openStorage(1);
  let entries = 0;
  let syncsPerSecond = 0;
  for (let round = 0; round < rounds; round++) {
    await floor.measure(rawIterations / rounds, raw, true);
    await floor.measure(rawIterations / rounds, rawAsync, false);
    const result = await appendRun(storage, 1, seconds / rounds, latencies);
    entries += result.entriesPerSecond / rounds;
    syncsPerSecond += result.fdatasyncsPerSecond / rounds;
  }
  await storage.close();
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
  const loadBefore = os.loadavg()[0]!;
  const raw: number[] = [];
  const rawAsync: number[] = [];
  const rawFloor = new RawFloor(2 * rawIterations);
  const runs: AppendResult[] = [await singleAppenderRounds(rawFloor, raw, rawAsync)];
  rawFloor.close();
  for (const appenders of [16, 256]) {
    const storage = await openStorage(appenders);
    runs.push(await appendRun(storage, appenders, seconds, []));
    await storage.close();
  }
  fs.rmSync(workDir, { recursive: true, force: true });
  const floor = summarize(raw);
  const floorAsync = summarize(rawAsync);
  const lines = [
    '# WAL benchmark',
    '',
    `Date: ${new Date().toISOString()}  `,
    `Machine: ${machine()}  `,
    `Command: \`npm run bench:wal\` (${seconds} s per configuration, ${entryBytes}-byte entries, one entry per save, default options: 64 MiB segments)  `,
    `Directory: ${workDir}  `,
    `Load average (1 min) at start / end: ${format(loadBefore)} / ${format(os.loadavg()[0]!)} on ${os.cpus().length} cores (other work on the machine shows up as noise in every figure)`,
    '',
    '## Raw disk floor (4 KiB pwrite + fdatasync per iteration, interleaved with the 1-appender run)',
    '',
    '| loop | samples | p50 ms | p99 ms | mean ms | syncs/s |',
    '| --- | --- | --- | --- | --- | --- |',
    ...[
      ['writeSync + fdatasyncSync (main thread)', floor] as const,
      ['fs.write + fs.fdatasync (threadpool)', floorAsync] as const,
    ].map(
      ([name, f]) =>
        `| ${name} | ${f.count} | ${format(f.p50Ms, 3)} | ${format(f.p99Ms, 3)} | ${format(f.meanMs, 3)} | ${format(1000 / f.meanMs, 0)} |`,
    ),
    '',
    '## Group commit appends',
    '',
    '| appenders | entries/s | fdatasyncs/s | entries per fdatasync | p50 ms | p99 ms | p50 / sync raw p50 | p50 / threadpool raw p50 |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...runs.map(
      (r) =>
        `| ${r.appenders} | ${format(r.entriesPerSecond, 0)} | ${format(r.fdatasyncsPerSecond, 0)} | ${format(r.entriesPerFdatasync, 1)} | ${format(r.p50Ms, 3)} | ${format(r.p99Ms, 3)} | ${format(r.p50Ms / floor.p50Ms, 2)} | ${format(r.p50Ms / floorAsync.p50Ms, 2)} |`,
    ),
    '',
    'Targets: ≥ 100,000 entries/s at 256 appenders; p50 at 1 appender ≤ 1.5 × the raw fdatasync p50.',
    '',
    'Notes: latency is measured from the call to `save()` until its promise resolves (durable).',
    "Each WAL batch is one positional write plus one fdatasync through libuv's threadpool, so the",
    'threadpool raw loop is the like-for-like floor; the main-thread loop is the plain syscall loop.',
    'The 1-appender run alternates with both raw loops in 5 rounds so all see the same background load.',
    '',
  ];
  const report = lines.join('\n');
  fs.writeFileSync(join(root, 'bench', 'results', 'wal.md'), report);
  console.log(report);
}

await main();
