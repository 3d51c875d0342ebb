/**
 * `shoal bench put|range|txn|watch-latency`: a load generator for the etcd v3 gRPC API (so it
 * measures shoal and etcd alike), modelled on etcd's own benchmark tool, or with `--protocol
 * native` for shoal's native protocol through ShoalClient (bench/native.ts). It prints throughput, a
 * latency histogram and percentiles, or one JSON object with `--json`; long runs report progress on
 * stderr. The generator lives in src/cli/bench/.
 */
import { type Command, Option } from 'commander';
import { runNativeBench, runNativeWatchLatency } from './bench/native.js';
import { formatResult } from './bench/report.js';
import { type BenchCommand, type BenchResult, runBench } from './bench/runner.js';
import { runWatchLatency } from './bench/watch-latency.js';

interface CommonFlags {
  endpoints?: string;
  protocol: 'grpc' | 'native';
  conns: string;
  clients: string;
  total: string;
  keySize: string;
  valSize: string;
  rate: string;
  json?: boolean;
  quiet?: boolean;
}

interface KvFlags extends CommonFlags {
  keySpaceSize: string;
  sequentialKeys?: boolean;
  consistency: 'l' | 's';
  seed: string;
}

interface WatchFlags extends CommonFlags {
  streams: string;
  watchersPerStream: string;
}

/** Exit status for a usage error (bad flag value). */
const exitUsage = 2;

function addCommonOptions(command: Command, defaults: { total: string; rate: string }): Command {
  return command
    .option(
      '--endpoints <list>',
      'comma-separated endpoints (host:port or http://host:port): client URLs for grpc ' +
        '(default 127.0.0.1:2379), peer URLs for native (default 127.0.0.1:2380)',
    )
    .addOption(
      new Option(
        '--protocol <protocol>',
        "client protocol: etcd's gRPC API, or shoal's native protocol (ShoalClient)",
      )
        .choices(['grpc', 'native'])
        .default('grpc'),
    )
    .option(
      '--conns <n>',
      'number of connections (native: clients, one connection per member)',
      '1',
    )
    .option('--clients <n>', 'number of concurrent clients (each keeps one request in flight)', '1')
    .option('--total <n>', 'total number of requests', defaults.total)
    .option('--key-size <bytes>', 'key size in bytes (keys are zero-padded decimal numbers)', '8')
    .option('--val-size <bytes>', 'value size in bytes', '8')
    .option('--rate <n>', 'requests per second for the whole run (0 = unlimited)', defaults.rate)
    .option('--json', 'print one JSON object instead of the text report')
    .option('--quiet', 'no progress on stderr');
}

function integer(flag: string, text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || !Number.isInteger(value))
    throw new RangeError(`${flag} must be an integer, got "${text}"`);
  return value;
}

function progressReporter(quiet: boolean | undefined) {
  if (quiet) return undefined;
  return (done: number, total: number, elapsedSec: number) => {
    const line = `${done}/${total} (${((done / total) * 100).toFixed(0)}%) in ${elapsedSec.toFixed(0)} s`;
    if (process.stderr.isTTY) process.stderr.write(`\r${line}   `);
    else process.stderr.write(`${line}\n`);
  };
}

/** The endpoints to use: the flag's, or the local default of the protocol. */
function endpointsOf(flags: CommonFlags): string[] {
  const list =
    flags.endpoints ?? (flags.protocol === 'native' ? '127.0.0.1:2380' : '127.0.0.1:2379');
  return list.split(',');
}

async function execute(flags: CommonFlags, run: () => Promise<BenchResult>): Promise<void> {
  let result: BenchResult;
  try {
    result = await run();
  } catch (error) {
    process.stderr.write(`shoal bench: ${(error as Error).message}\n`);
    process.exit(error instanceof RangeError ? exitUsage : 1);
  }
  if (!flags.quiet && process.stderr.isTTY) process.stderr.write('\n');
  process.stdout.write(flags.json ? `${JSON.stringify(result)}\n` : formatResult(result));
  if (result.failed > 0) process.exitCode = 1;
}

function registerKvCommand(bench: Command, name: BenchCommand, description: string): void {
  const command = bench.command(name).description(description);
  if (name === 'range')
    command.argument('[key]', 'key to read (default: the first key put writes)');
  addCommonOptions(command, { total: '10000', rate: '0' })
    .option('--key-space-size <n>', 'number of distinct keys', '1')
    .option('--sequential-keys', 'use keys in order instead of at random')
    .addOption(
      new Option('--consistency <l|s>', 'linearizable or serializable reads')
        .choices(['l', 's'])
        .default('l'),
    )
    .option('--seed <n>', 'seed for the random key choice', '1')
    .action(async (...args: unknown[]) => {
      const key = name === 'range' ? (args[0] as string | undefined) : undefined;
      const flags = (name === 'range' ? args[1] : args[0]) as KvFlags;
      const generator = flags.protocol === 'native' ? runNativeBench : runBench;
      await execute(flags, () =>
        generator({
          command: name,
          endpoints: endpointsOf(flags),
          conns: integer('--conns', flags.conns),
          clients: integer('--clients', flags.clients),
          total: integer('--total', flags.total),
          keySize: integer('--key-size', flags.keySize),
          valSize: integer('--val-size', flags.valSize),
          keySpaceSize: integer('--key-space-size', flags.keySpaceSize),
          sequentialKeys: flags.sequentialKeys === true,
          consistency: flags.consistency,
          rate: Number(flags.rate),
          ...(key === undefined ? {} : { rangeKey: Buffer.from(key) }),
          seed: integer('--seed', flags.seed),
          onProgress: progressReporter(flags.quiet),
        }),
      );
    });
}

export function registerBench(program: Command): void {
  const bench = program
    .command('bench')
    .description(
      "load generator for the etcd v3 gRPC API (shoal or etcd) or shoal's native protocol",
    );
  registerKvCommand(bench, 'put', 'put keys (random in --key-space-size, or --sequential-keys)');
  registerKvCommand(
    bench,
    'range',
    'read one key, linearizable (--consistency l) or serializable (s)',
  );
  registerKvCommand(bench, 'txn', 'transactions with one put each and no compares');
  const watch = bench.command('watch-latency').description('time from a put to its watch events');
  addCommonOptions(watch, { total: '100', rate: '100' })
    .option('--streams <n>', 'number of watch streams', '10')
    .option('--watchers-per-stream <n>', 'watchers on each stream', '10')
    .action(async (flags: WatchFlags) => {
      const generator = flags.protocol === 'native' ? runNativeWatchLatency : runWatchLatency;
      await execute(flags, () =>
        generator({
          endpoints: endpointsOf(flags),
          conns: integer('--conns', flags.conns),
          streams: integer('--streams', flags.streams),
          watchersPerStream: integer('--watchers-per-stream', flags.watchersPerStream),
          total: integer('--total', flags.total),
          rate: Number(flags.rate),
          keySize: integer('--key-size', flags.keySize),
          valSize: integer('--val-size', flags.valSize),
          onProgress: progressReporter(flags.quiet),
        }),
      );
    });
}
