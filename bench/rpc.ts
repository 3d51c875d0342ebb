/**
 * Echo benchmark: shoal RPC against @grpc/grpc-js over one connection each, in the same run.
 *
 * The servers run in a child process and the clients in this one, as they would between members. Both echo raw bytes (shoal's raw payload path, grpc-js
 * generic service with identity Buffer serializers), so the figures compare the transports, not
 * the encoders. For each payload size and concurrency, `concurrency` callers loop issuing calls
 * back to back for a fixed time; we report calls/s and latency percentiles.
 *
 *   npm run bench:rpc                       # default: 3 s per case and system, in 3 rounds
 *   BENCH_SECONDS=6 BENCH_ROUNDS=5 npm run bench:rpc
 */

import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { defineService, oneWay, RpcClient, RpcServer, unary } from '../src/rpc/index.js';

const benchService = defineService({
  name: 'bench',
  methods: { echo: unary<Uint8Array, Uint8Array>(), notify: oneWay<Uint8Array>() },
});
const GRPC_PATH = '/bench.Bench/Echo';
const identity = (value: Buffer) => value;
const grpcDefinition: grpc.ServiceDefinition = {
  echo: {
    path: GRPC_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

const PAYLOAD_BYTES = [64, 4096];
const CONCURRENCY = [1, 16, 256];
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

/** The round with the median throughput (its latencies come with it). */
function median(results: Result[]): Result {
  const sorted = [...results].sort((a, b) => a.callsPerSecond - b.callsPerSecond);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function serve(): Promise<void> {
  const rpc = new RpcServer({ logger: pino({ level: 'warn' }) });
  rpc.addService(benchService, {
    echo: (request) => request,
    // The one-way benchmark measures the transport; the handler does nothing.
    notify: () => {},
  });
  const shoal = await rpc.listen({ port: 0, host: '127.0.0.1' });
  const server = new grpc.Server();
  server.addService(grpcDefinition, {
    echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) =>
      callback(null, call.request),
  });
  const grpcPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) =>
      error ? reject(error) : resolve(port),
    ),
  );
  process.send!({ shoalPort: shoal.port, grpcPort });
}

type Call = (payload: Buffer) => Promise<unknown>;

interface Result {
  callsPerSecond: number;
  p50Us: number;
  p99Us: number;
}

async function measure(
  call: Call,
  payloadBytes: number,
  concurrency: number,
  seconds: number,
): Promise<Result> {
  const payload = Buffer.alloc(payloadBytes, 7);
  const latenciesUs: number[] = [];
  const endAt = performance.now() + seconds * 1000;
  let calls = 0;
  const start = performance.now();
  const worker = async () => {
    while (performance.now() < endAt) {
      const t0 = performance.now();
      await call(payload);
      latenciesUs.push((performance.now() - t0) * 1000);
      calls++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedS = (performance.now() - start) / 1000;
  latenciesUs.sort((a, b) => a - b);
  const at = (q: number) =>
    latenciesUs[Math.min(latenciesUs.length - 1, Math.floor(q * latenciesUs.length))]!;
  return { callsPerSecond: calls / elapsedS, p50Us: at(0.5), p99Us: at(0.99) };
}

/**
 * One-way throughput, the raft traffic pattern: bursts of 1000 fire-and-forget messages, with an
 * echo call after each burst to wait until the server has taken them (calls on one connection are
 * handled in order), for BENCH_SECONDS.
 */
async function measureOneWay(client: RpcClient, _port: number): Promise<number> {
  const stub = client.stub(benchService);
  const payload = Buffer.alloc(64, 1);
  const endAt = performance.now() + SECONDS * 1000;
  const start = performance.now();
  let sent = 0;
  while (performance.now() < endAt) {
    for (let i = 0; i < 1000; i++) stub.notify(payload);
    sent += 1000;
    await stub.echo(payload);
  }
  return sent / ((performance.now() - start) / 1000);
}

function format(result: Result): string {
  return `${Math.round(result.callsPerSecond).toString().padStart(8)} calls/s  p50 ${result.p50Us.toFixed(0).padStart(6)} us  p99 ${result.p99Us.toFixed(0).padStart(7)} us`;
}

async function main(): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), ['serve'], { execArgv: ['--import', 'tsx'] });
  const ports = await new Promise<{ shoalPort: number; grpcPort: number }>((resolve) =>
    child.once('message', (message) => resolve(message as { shoalPort: number; grpcPort: number })),
  );
  const client = new RpcClient(`127.0.0.1:${ports.shoalPort}`, { logger: pino({ level: 'warn' }) });
  const stub = client.stub(benchService);
  const grpcClient = new grpc.Client(
    `127.0.0.1:${ports.grpcPort}`,
    grpc.credentials.createInsecure(),
  );
  const shoalCall: Call = (payload) => stub.echo(payload);
  const grpcCall: Call = (payload) =>
    new Promise((resolve, reject) =>
      grpcClient.makeUnaryRequest(GRPC_PATH, identity, identity, payload, (error, value) =>
        error ? reject(error) : resolve(value),
      ),
    );
  // Warm both paths (JIT, connection setup) before measuring.
  await measure(shoalCall, 64, 16, 0.5);
  await measure(grpcCall, 64, 16, 0.5);
  console.log(
    `shoal RPC vs @grpc/grpc-js echo, one connection each, ${SECONDS} s per case in ${ROUNDS} rounds (median round shown)`,
  );
  const rows: string[] = [];
  for (const payloadBytes of PAYLOAD_BYTES) {
    for (const concurrency of CONCURRENCY) {
      const shoalRounds: Result[] = [];
      const grpcRounds: Result[] = [];
      // Alternate the two in short rounds so a burst of load from other processes on this shared
      // machine hits both, then report the median round of each.
      for (let round = 0; round < ROUNDS; round++) {
        shoalRounds.push(await measure(shoalCall, payloadBytes, concurrency, SECONDS / ROUNDS));
        grpcRounds.push(await measure(grpcCall, payloadBytes, concurrency, SECONDS / ROUNDS));
      }
      const shoal = median(shoalRounds);
      const grpcResult = median(grpcRounds);
      const ratio = shoal.callsPerSecond / grpcResult.callsPerSecond;
      const label = `${String(payloadBytes).padStart(4)} B x ${String(concurrency).padStart(3)}`;
      console.log(`${label}  shoal ${format(shoal)}`);
      console.log(
        `${' '.repeat(label.length)}  grpc  ${format(grpcResult)}  shoal/grpc ${ratio.toFixed(2)}x`,
      );
      rows.push(
        `| ${payloadBytes} B | ${concurrency} | ${Math.round(shoal.callsPerSecond)} | ${shoal.p50Us.toFixed(0)} | ${shoal.p99Us.toFixed(0)} | ${Math.round(grpcResult.callsPerSecond)} | ${grpcResult.p50Us.toFixed(0)} | ${grpcResult.p99Us.toFixed(0)} | ${ratio.toFixed(2)}x |`,
      );
    }
  }
  const oneWay = await measureOneWay(client, ports.shoalPort);
  console.log(
    `one-way 64 B, shoal only (grpc has no one-way call): ${Math.round(oneWay).toString()} messages/s`,
  );
  console.log('\nmarkdown:');
  console.log(
    '| payload | concurrency | shoal calls/s | shoal p50 us | shoal p99 us | grpc calls/s | grpc p50 us | grpc p99 us | shoal/grpc |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const row of rows) console.log(row);
  grpcClient.close();
  await client.close();
  child.kill();
}

if (process.argv[2] === 'serve') await serve();
else await main();
