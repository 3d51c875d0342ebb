/**
 * `shoal bench watch-latency`: how long a change takes to reach watchers. `streams` Watch streams
 * (spread over the connections) each watch one key with `watchersPerStream` watchers; then `total`
 * puts to that key are issued one at a time at `rate` per second, and every event a watcher
 * receives is timed from the moment its put was sent. Puts are serial, so the n-th event a watcher
 * sees belongs to the n-th put.
 */
import type * as grpc from '@grpc/grpc-js';
import {
  closeConnections,
  methodPaths,
  openConnections,
  passThrough,
  statusName,
  unaryCall,
} from './connections.js';
import { LatencyHistogram } from './histogram.js';
import type { BenchResult } from './runner.js';
import { histogramBinCount } from './runner.js';
import {
  decimalKey,
  encodePutRequest,
  encodeWatchCreateRequest,
  summarizeWatchResponse,
} from './wire.js';

export interface WatchLatencyOptions {
  endpoints: string[];
  conns: number;
  streams: number;
  watchersPerStream: number;
  /** Number of puts. */
  total: number;
  /** Puts per second. */
  rate: number;
  keySize: number;
  valSize: number;
  onProgress?: (done: number, total: number, elapsedSec: number) => void;
}

/** Bounds on the watch set-up and on how long events may lag behind the last put. */
export const watchStreamsMax = 10_000;
export const watchersPerStreamMax = 1000;
export const watchCreateTimeoutMs = 10_000;
export const eventDrainTimeoutMs = 10_000;

interface Watcher {
  eventsSeen: number;
}

/** Checks the watch-specific knobs (shared with the native generator). */
export function validateWatchOptions(options: WatchLatencyOptions): void {
  if (options.streams < 1 || options.streams > watchStreamsMax)
    throw new RangeError(`--streams must be in [1, ${watchStreamsMax}]`);
  if (options.watchersPerStream < 1 || options.watchersPerStream > watchersPerStreamMax) {
    throw new RangeError(`--watchers-per-stream must be in [1, ${watchersPerStreamMax}]`);
  }
  if (!(options.rate > 0)) throw new RangeError('watch-latency needs --rate > 0 (puts per second)');
}

export async function runWatchLatency(options: WatchLatencyOptions): Promise<BenchResult> {
  validateWatchOptions(options);
  const connections = await openConnections(options.endpoints, options.conns);
  const cpuBefore = process.cpuUsage();
  const streams: grpc.ClientDuplexStream<Buffer, Buffer>[] = [];
  try {
    const result = await measure(options, connections, streams);
    const cpu = process.cpuUsage(cpuBefore);
    result.generatorCpuSec = (cpu.user + cpu.system) / 1e6;
    return result;
  } finally {
    for (const stream of streams) stream.cancel();
    closeConnections(connections);
  }
}

async function measure(
  options: WatchLatencyOptions,
  connections: grpc.Client[],
  streams: grpc.ClientDuplexStream<Buffer, Buffer>[],
): Promise<BenchResult> {
  const key = decimalKey(options.keySize, 0);
  const tally = new WatchTally(options);
  const created = openWatchers(options, connections, streams, key, (watcher) =>
    tally.record(watcher.eventsSeen++),
  );
  await withTimeout(created, watchCreateTimeoutMs, 'watchers were not all created');
  const put = encodePutRequest(key, Buffer.alloc(options.valSize, 0x61));
  return timedPuts(
    options,
    tally,
    tally.allEvents,
    (i) =>
      new Promise<string | null>((resolve) =>
        unaryCall(connections[i % connections.length]!, methodPaths.put, put.buffer, (error) =>
          resolve(error ? statusName(error) : null),
        ),
      ),
  );
}

/**
 * What the watchers of a watch-latency run have seen, whatever the protocol. Puts are serial, so a
 * watcher's n-th event belongs to the n-th put; `putSentMs` holds each put's send time.
 */
export class WatchTally {
  readonly histogram = new LatencyHistogram();
  readonly putSentMs: number[] = [];
  readonly watcherCount: number;
  readonly expectedEvents: number;
  /** Resolves when every watcher has seen every put. */
  readonly allEvents: Promise<void>;
  private seen = 0;
  private onAllEvents = () => {};

  constructor(options: WatchLatencyOptions) {
    this.watcherCount = options.streams * options.watchersPerStream;
    this.expectedEvents = this.watcherCount * options.total;
    this.allEvents = new Promise<void>((resolve) => {
      this.onAllEvents = resolve;
    });
    if (this.expectedEvents === 0) this.onAllEvents();
  }

  /** A watcher saw its n-th event (counted from 0). */
  record(n: number): void {
    const sentMs = this.putSentMs[n];
    if (sentMs !== undefined) this.histogram.recordMs(performance.now() - sentMs);
    if (++this.seen === this.expectedEvents) this.onAllEvents();
  }

  get eventsSeen(): number {
    return this.seen;
  }
}

/**
 * The measured part of watch-latency, whatever the protocol: `total` serial puts at `rate` (each
 * put's send time recorded for the watchers), then a bounded wait for every event. `put` returns
 * an error name, or null when the put succeeded; `allEvents` is the tally's, or a race of it with
 * a watch failure.
 */
export async function timedPuts(
  options: WatchLatencyOptions,
  progress: WatchTally,
  allEvents: Promise<void>,
  put: (i: number) => Promise<string | null>,
): Promise<BenchResult> {
  const startMs = performance.now();
  const errors: Record<string, number> = {};
  let succeeded = 0;
  for (let i = 0; i < options.total; i++) {
    const waitMs = startMs + (i * 1000) / options.rate - performance.now();
    if (waitMs > 1) await new Promise((resolve) => setTimeout(resolve, waitMs));
    progress.putSentMs.push(performance.now());
    const error = await put(i);
    if (error !== null) {
      errors[error] = (errors[error] ?? 0) + 1;
      break; // A lost put would shift the event-to-put matching; stop instead of mis-timing.
    }
    succeeded++;
    if (i % Math.max(1, Math.round(options.rate)) === 0) {
      options.onProgress?.(i, options.total, (performance.now() - startMs) / 1000);
    }
  }
  if (succeeded === options.total) {
    await withTimeout(
      allEvents,
      eventDrainTimeoutMs,
      `only ${progress.eventsSeen} of ${progress.expectedEvents} events arrived`,
    );
  }
  const durationSec = (performance.now() - startMs) / 1000;
  return {
    command: 'watch-latency',
    endpoints: options.endpoints,
    conns: options.conns,
    clients: progress.watcherCount,
    total: options.total,
    succeeded,
    failed: options.total - succeeded,
    errors,
    durationSec,
    throughputPerSec: durationSec > 0 ? progress.eventsSeen / durationSec : 0,
    generatorCpuSec: 0,
    latency: progress.histogram.summaryMs(),
    histogram: progress.histogram.displayBins(histogramBinCount),
  };
}

/** Opens the streams and their watchers; resolves once every watcher is confirmed created. */
function openWatchers(
  options: WatchLatencyOptions,
  connections: grpc.Client[],
  streams: grpc.ClientDuplexStream<Buffer, Buffer>[],
  key: Buffer,
  onEvent: (watcher: Watcher) => void,
): Promise<void> {
  const create = encodeWatchCreateRequest(key);
  return new Promise((resolve, reject) => {
    let pending = options.streams * options.watchersPerStream;
    for (let s = 0; s < options.streams; s++) {
      const stream = connections[s % connections.length]!.makeBidiStreamRequest(
        methodPaths.watch,
        passThrough,
        passThrough,
      );
      streams.push(stream);
      const watchers = new Map<number, Watcher>();
      stream.on('data', (response: Buffer) => {
        const summary = summarizeWatchResponse(response);
        if (summary.canceled) return reject(new Error('the server canceled a watcher'));
        if (summary.created) {
          watchers.set(summary.watchId, { eventsSeen: 0 });
          if (--pending === 0) resolve();
          return;
        }
        const watcher = watchers.get(summary.watchId);
        if (watcher === undefined)
          return reject(new Error(`events for unknown watch id ${summary.watchId}`));
        for (let e = 0; e < summary.eventCount; e++) onEvent(watcher);
      });
      stream.on('error', (error: grpc.ServiceError) => {
        if (statusName(error) !== 'CANCELLED') reject(error);
      });
      for (let w = 0; w < options.watchersPerStream; w++) stream.write(create);
    }
  });
}

export function withTimeout<T>(
  promise: Promise<T>,
  timeoutMs: number,
  message: string,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
