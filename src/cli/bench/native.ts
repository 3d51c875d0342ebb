/**
 * `shoal bench ... --protocol native`: the same closed-loop runs as the gRPC generator (runner.ts,
 * watch-latency.ts) over ShoalClient and shoal's native protocol (msgpack over shoal RPC, to the
 * members' peer ports). `--conns` ShoalClients each hold one connection per member; workers are
 * spread over them. Each worker owns one prepared request and rewrites its key bytes in place, and
 * puts and ranges go through the client's `putRequest`/`rangeRequest` fast paths (straight to the
 * known leader, or round-robin over members for serializable reads); txns use `txnRequest`.
 */
import { ShoalClient, ShoalError } from '../../client/index.js';
import type { PutRequest, RangeRequest, TxnRequest } from '../../client/protocol.js';
import {
  type BenchOptions,
  type BenchResult,
  type BenchWorker,
  measureRun,
  validateOptions,
} from './runner.js';
import type { WatchLatencyOptions } from './watch-latency.js';
import {
  timedPuts,
  validateWatchOptions,
  WatchTally,
  watchCreateTimeoutMs,
  withTimeout,
} from './watch-latency.js';
import { decimalKey, writeDecimalKey } from './wire.js';

/** Time one native request may take before it counts as failed (DEADLINE_EXCEEDED). */
export const nativeRequestTimeoutMs = 10_000;

function openClients(endpoints: readonly string[], count: number): ShoalClient[] {
  if (endpoints.length === 0) throw new Error('no endpoints given');
  return Array.from(
    { length: count },
    () => new ShoalClient({ endpoints, timeoutMs: nativeRequestTimeoutMs }),
  );
}

async function closeClients(clients: readonly ShoalClient[]): Promise<void> {
  await Promise.all(clients.map((client) => client.close()));
}

/** The status name a failed call counts under (the gRPC code name, like the gRPC generator). */
function codeOf(error: unknown): string {
  return error instanceof ShoalError ? error.code : 'UNKNOWN';
}

/** How long the generator waits for a leader before the run starts (a cluster just started). */
export const leaderWaitMs = 10_000;
const leaderPollMs = 100;

/** Finds the leader (and fails clearly when there is none) before the clock starts. */
async function connect(clients: readonly ShoalClient[], endpoints: readonly string[]) {
  const deadline = performance.now() + leaderWaitMs;
  for (const client of clients) {
    while ((await client.leaderEndpoint()) === undefined) {
      if (performance.now() >= deadline)
        throw new Error(
          `no leader found through ${endpoints.join(',')} within ${leaderWaitMs} ms (native protocol: use the members' peer URLs)`,
        );
      await new Promise((resolve) => setTimeout(resolve, leaderPollMs));
    }
  }
}

function nativeWorker(options: BenchOptions, client: ShoalClient): BenchWorker {
  const key = decimalKey(options.keySize, 0);
  const value = Buffer.alloc(options.valSize, 0x61);
  const setKey = (index: number) => writeDecimalKey(key, 0, options.keySize, index);
  const succeed = () => undefined;
  let call: () => Promise<unknown>;
  if (options.command === 'put') {
    const request: PutRequest = { key, value };
    call = () => client.putRequest(request);
  } else if (options.command === 'txn') {
    const request: TxnRequest = { success: [{ type: 'put', request: { key, value } }] };
    call = () => client.txnRequest(request);
  } else {
    const request: RangeRequest = { key: options.rangeKey ?? key };
    if (options.consistency === 's') request.serializable = true;
    call = () => client.rangeRequest(request);
  }
  return {
    setKey,
    send: (done) => {
      call().then(
        () => done(succeed()),
        (error: unknown) => done(codeOf(error)),
      );
    },
  };
}

/** `shoal bench put|range|txn --protocol native`. */
export async function runNativeBench(options: BenchOptions): Promise<BenchResult> {
  validateOptions(options);
  const clients = openClients(options.endpoints, options.conns);
  try {
    await connect(clients, options.endpoints);
    return await measureRun(options, (w) => nativeWorker(options, clients[w % clients.length]!));
  } finally {
    await closeClients(clients);
  }
}

/**
 * `shoal bench watch-latency --protocol native`: `streams` native watch streams on one key (the
 * native protocol has one watcher per stream, so streams x watchers-per-stream streams are opened),
 * then `total` serial puts at `rate`; each event is timed from its put's send time.
 */
export async function runNativeWatchLatency(options: WatchLatencyOptions): Promise<BenchResult> {
  validateWatchOptions(options);
  const clients = openClients(options.endpoints, options.conns);
  const cpuBefore = process.cpuUsage();
  const watches: Array<{ cancel(): void }> = [];
  try {
    await connect(clients, options.endpoints);
    const result = await measureWatch(options, clients, watches);
    const cpu = process.cpuUsage(cpuBefore);
    result.generatorCpuSec = (cpu.user + cpu.system) / 1e6;
    return result;
  } finally {
    for (const watch of watches) watch.cancel();
    await closeClients(clients);
  }
}

async function measureWatch(
  options: WatchLatencyOptions,
  clients: readonly ShoalClient[],
  watches: Array<{ cancel(): void }>,
): Promise<BenchResult> {
  const key = decimalKey(options.keySize, 0);
  const tally = new WatchTally(options);
  let onWatchFailure: (error: unknown) => void = () => {};
  const watchFailed = new Promise<never>((_, reject) => {
    onWatchFailure = reject;
  });
  watchFailed.catch(() => {});
  const started: Promise<number>[] = [];
  for (let w = 0; w < tally.watcherCount; w++) {
    const watch = clients[w % clients.length]!.watch(key);
    watches.push(watch);
    started.push(watch.started);
    // Puts are serial, so a watcher's n-th event belongs to the n-th put.
    void (async () => {
      let seen = 0;
      for await (const batch of watch) {
        for (let e = 0; e < batch.events.length; e++) tally.record(seen++);
      }
    })().catch((error: unknown) => onWatchFailure(error));
  }
  await withTimeout(
    Promise.race([Promise.all(started), watchFailed]),
    watchCreateTimeoutMs,
    'watchers were not all created',
  );
  const put: PutRequest = { key, value: Buffer.alloc(options.valSize, 0x61) };
  return timedPuts(options, tally, Promise.race([tally.allEvents, watchFailed]), async (i) => {
    try {
      await clients[i % clients.length]!.putRequest(put);
      return null;
    } catch (error) {
      return codeOf(error);
    }
  });
}
