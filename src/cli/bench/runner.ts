/**
 * The closed-loop load generator behind `shoal bench put|range|txn`: `clients` workers share `conns`
 * gRPC connections (h2-unary.ts: the generator's own small HTTP/2 client, far lighter than grpc-js,
 * so that the generator disturbs the system it measures as little as it can); each worker keeps
 * exactly one request in flight and issues the next one from the previous one's callback, until
 * `total` requests were issued. Each worker owns one pre-encoded
 * request buffer and rewrites only its key bytes in place (the client copies a request into its
 * frames when called), so the hot path allocates little.
 * An optional `rate` paces the whole run to that many requests per second.
 */
import { connectTimeoutMs, endpointTarget, methodPaths, statusName } from './connections.js';
import { H2UnaryConnection } from './h2-unary.js';
import { LatencyHistogram, type LatencySummaryMs } from './histogram.js';
import {
  decimalKey,
  encodePutRequest,
  encodeRangeRequest,
  encodeTxnPutRequest,
  type RequestTemplate,
  writeDecimalKey,
} from './wire.js';

export type BenchCommand = 'put' | 'range' | 'txn';

export interface BenchOptions {
  command: BenchCommand;
  endpoints: string[];
  conns: number;
  clients: number;
  total: number;
  keySize: number;
  valSize: number;
  /** Keys are drawn from [0, keySpaceSize): at random, or in order with sequentialKeys. */
  keySpaceSize: number;
  sequentialKeys: boolean;
  /** 'l' linearizable or 's' serializable (range only). */
  consistency: 'l' | 's';
  /** Requests per second for the whole run; 0 means as fast as the server answers. */
  rate: number;
  /** Range only: the key to read (default: the first key `put` writes). */
  rangeKey?: Buffer;
  seed: number;
  /** Called about every second with the number of finished requests (progress display). */
  onProgress?: (done: number, total: number, elapsedSec: number) => void;
}

export interface BenchResult {
  command: string;
  endpoints: string[];
  conns: number;
  clients: number;
  total: number;
  succeeded: number;
  failed: number;
  /** Failed requests by gRPC status name. */
  errors: Record<string, number>;
  durationSec: number;
  throughputPerSec: number;
  /** CPU the generator process itself used during the run (user + system), to show its own cost. */
  generatorCpuSec: number;
  latency: LatencySummaryMs;
  histogram: Array<{ upToMs: number; count: number }>;
  /**
   * The full-precision histogram behind `latency`, for pooling several runs (bench:compare).
   * Not enumerable, so `--json` output stays small.
   */
  readonly latencyHistogram?: LatencyHistogram;
}

/** Bounds on the knobs, so a typo cannot ask for a million connections or a 1 GB value. */
export const connsMax = 1024;
export const clientsMax = 100_000;
export const valueBytesMax = 16 * 1024 * 1024;
export const keyBytesMax = 4096;
/** Display bins in the text histogram. */
export const histogramBinCount = 12;
const progressIntervalMs = 1000;

export function validateOptions(options: BenchOptions): void {
  const check = (ok: boolean, message: string) => {
    if (!ok) throw new RangeError(message);
  };
  const positiveInt = (value: number, max: number) =>
    Number.isInteger(value) && value >= 1 && value <= max;
  check(positiveInt(options.conns, connsMax), `--conns must be an integer in [1, ${connsMax}]`);
  check(
    positiveInt(options.clients, clientsMax),
    `--clients must be an integer in [1, ${clientsMax}]`,
  );
  check(positiveInt(options.total, Number.MAX_SAFE_INTEGER), '--total must be a positive integer');
  check(positiveInt(options.keySize, keyBytesMax), `--key-size must be in [1, ${keyBytesMax}]`);
  check(
    Number.isInteger(options.valSize) && options.valSize >= 0 && options.valSize <= valueBytesMax,
    `--val-size must be in [0, ${valueBytesMax}]`,
  );
  check(
    positiveInt(options.keySpaceSize, Number.MAX_SAFE_INTEGER),
    '--key-space-size must be a positive integer',
  );
  check(
    String(options.keySpaceSize - 1).length <= options.keySize,
    `--key-size ${options.keySize} is too small for --key-space-size ${options.keySpaceSize} (keys are zero-padded decimal)`,
  );
  check(Number.isFinite(options.rate) && options.rate >= 0, '--rate must be >= 0');
  check(options.consistency === 'l' || options.consistency === 's', '--consistency must be l or s');
}

/** A deterministic xorshift32 generator for key choice (seeded, so runs are repeatable). */
function xorshift32(seed: number): () => number {
  let state = seed >>> 0 || 0x9e3779b9;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x1_0000_0000;
  };
}

function makeTemplate(options: BenchOptions): RequestTemplate {
  const key = decimalKey(options.keySize, 0);
  // A constant, non-zero value: compressible data does not matter to etcd, and it is cheap.
  const value = Buffer.alloc(options.valSize, 0x61);
  if (options.command === 'put') return encodePutRequest(key, value);
  if (options.command === 'txn') return encodeTxnPutRequest(key, value);
  return encodeRangeRequest(options.rangeKey ?? key, options.consistency === 's');
}

interface RunState {
  issued: number;
  finished: number;
  succeeded: number;
  errors: Record<string, number>;
  startMs: number;
}

export async function runBench(options: BenchOptions): Promise<BenchResult> {
  validateOptions(options);
  const connections = await openUnaryConnections(options.endpoints, options.conns);
  try {
    const path = methodPaths[options.command];
    return await measureRun(options, (w) => {
      const template = makeTemplate(options);
      const connection = connections[w % connections.length]!;
      return {
        setKey: (index) =>
          writeDecimalKey(template.buffer, template.keyOffset, template.keyLength, index),
        send: (done) =>
          connection.call(path, template.buffer, (error) =>
            done(error ? statusName(error) : undefined),
          ),
      };
    });
  } finally {
    for (const connection of connections) connection.close();
  }
}

/** `conns` connections spread round-robin over the endpoints; all or none. */
async function openUnaryConnections(
  endpoints: readonly string[],
  conns: number,
): Promise<H2UnaryConnection[]> {
  if (endpoints.length === 0) throw new Error('no endpoints given');
  const attempts = Array.from({ length: conns }, (_, i) =>
    H2UnaryConnection.connect(endpointTarget(endpoints[i % endpoints.length]!), connectTimeoutMs),
  );
  const settled = await Promise.allSettled(attempts);
  const failure = settled.find((s) => s.status === 'rejected');
  if (failure !== undefined) {
    for (const s of settled) if (s.status === 'fulfilled') s.value.close();
    throw (failure as PromiseRejectedResult).reason;
  }
  return settled.map((s) => (s as PromiseFulfilledResult<H2UnaryConnection>).value);
}

/**
 * One closed-loop worker of a run, whatever the protocol: `setKey` rewrites the key of its one
 * prepared request in place (safe: the previous request was sent before its answer came back),
 * `send` issues that request and reports the failure's status name, or undefined on success.
 */
export interface BenchWorker {
  setKey(index: number): void;
  send(done: (errorCode: string | undefined) => void): void;
}

/** Drives the workers `makeWorker` builds and adds the generator's own CPU time to the result. */
export async function measureRun(
  options: BenchOptions,
  makeWorker: (workerIndex: number) => BenchWorker,
): Promise<BenchResult> {
  const cpuBefore = process.cpuUsage();
  const result = await drive(options, makeWorker);
  const cpu = process.cpuUsage(cpuBefore);
  result.generatorCpuSec = (cpu.user + cpu.system) / 1e6;
  return result;
}

function drive(
  options: BenchOptions,
  makeWorker: (workerIndex: number) => BenchWorker,
): Promise<BenchResult> {
  const histogram = new LatencyHistogram();
  const state: RunState = {
    issued: 0,
    finished: 0,
    succeeded: 0,
    errors: {},
    startMs: performance.now(),
  };
  const random = xorshift32(options.seed);
  const rewritesKey = options.command !== 'range';
  const workerCount = Math.min(options.clients, options.total);
  return new Promise((resolve) => {
    const progressTimer = setInterval(() => {
      options.onProgress?.(
        state.finished,
        options.total,
        (performance.now() - state.startMs) / 1000,
      );
    }, progressIntervalMs);
    progressTimer.unref();
    let idleWorkers = 0;
    const finishWorker = () => {
      idleWorkers++;
      if (idleWorkers < workerCount) return;
      clearInterval(progressTimer);
      resolve(buildResult(options, state, histogram));
    };
    for (let w = 0; w < workerCount; w++) {
      const worker = makeWorker(w);
      const next = (): void => {
        if (state.issued >= options.total) {
          finishWorker();
          return;
        }
        const sequence = state.issued++;
        if (rewritesKey) {
          worker.setKey(
            options.sequentialKeys
              ? sequence % options.keySpaceSize
              : Math.floor(random() * options.keySpaceSize),
          );
        }
        const delayMs =
          options.rate > 0
            ? state.startMs + (sequence * 1000) / options.rate - performance.now()
            : 0;
        if (delayMs > 1) setTimeout(send, delayMs);
        else send();
      };
      const send = (): void => {
        const sentMs = performance.now();
        worker.send((errorCode) => {
          state.finished++;
          // Failed requests are counted by status but kept out of the latency figures, where a
          // fast rejection would look like a fast answer.
          if (errorCode !== undefined) state.errors[errorCode] = (state.errors[errorCode] ?? 0) + 1;
          else {
            histogram.recordMs(performance.now() - sentMs);
            state.succeeded++;
          }
          next();
        });
      };
      next();
    }
  });
}

function buildResult(
  options: BenchOptions,
  state: RunState,
  histogram: LatencyHistogram,
): BenchResult {
  const durationSec = (performance.now() - state.startMs) / 1000;
  const failed = state.finished - state.succeeded;
  const result: BenchResult = {
    command:
      options.command === 'range'
        ? `range (${options.consistency === 's' ? 'serializable' : 'linearizable'})`
        : options.command,
    endpoints: options.endpoints,
    conns: options.conns,
    clients: options.clients,
    total: options.total,
    succeeded: state.succeeded,
    failed,
    errors: state.errors,
    durationSec,
    throughputPerSec: durationSec > 0 ? state.succeeded / durationSec : 0,
    generatorCpuSec: 0,
    latency: histogram.summaryMs(),
    histogram: histogram.displayBins(histogramBinCount),
  };
  Object.defineProperty(result, 'latencyHistogram', { value: histogram, enumerable: false });
  return result;
}
