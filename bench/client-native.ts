/**
 * Benchmark of ShoalClient's cheap path over the native protocol: puts (256-byte values) and
 * point reads (linearizable and serializable) with N concurrent callers against one member's
 * native service on the single-member MVCC backend (group commit with fsync), all in one process.
 * Run with `npm run bench:client`; figures on the shared 2-core machine are noisy.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { ShoalClient } from '../src/client/index.js';
import type { PutRequest, RangeRequest } from '../src/client/protocol.js';
import { MvccStore } from '../src/kv/index.js';
import { SingleMemberBackend } from '../src/server/etcd/mvcc-backend.js';
import { startNativeServer } from '../src/server/native/index.js';

const KEYS = 1_000;
const OPS_PER_CASE = 20_000;

async function run(label: string, concurrency: number, op: (i: number) => Promise<unknown>) {
  let next = 0;
  const latenciesMs: number[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < OPS_PER_CASE) {
        const i = next++;
        const t = performance.now();
        await op(i);
        latenciesMs.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latenciesMs.sort((a, b) => a - b);
  const p = (q: number) => latenciesMs[Math.floor(q * (latenciesMs.length - 1))]!.toFixed(2);
  process.stdout.write(
    `${label.padEnd(28)} c=${String(concurrency).padStart(3)}  ${Math.round(OPS_PER_CASE / seconds)
      .toString()
      .padStart(7)} ops/s  p50 ${p(0.5)} ms  p99 ${p(0.99)} ms\n`,
  );
}

const directory = mkdtempSync(join(tmpdir(), 'shoal-bench-client-'));
const logger = pino({ level: 'silent' });
const store = MvccStore.open({ path: join(directory, 'kv.mdb'), logger });
const backend = new SingleMemberBackend({
  store,
  clusterId: 1n,
  memberId: 1n,
  name: 'bench',
  peerUrls: [],
  clientUrls: [],
});
const server = await startNativeServer({ backend, logger });
const client = new ShoalClient({ endpoints: [server.address] });
try {
  await client.leaderEndpoint();
  const value = randomBytes(256);
  const puts: PutRequest[] = Array.from({ length: KEYS }, (_, i) => ({
    key: Buffer.from(`/bench/key-${i}`),
    value,
  }));
  const reads: RangeRequest[] = puts.map((p) => ({ key: p.key }));
  const serializable: RangeRequest[] = puts.map((p) => ({ key: p.key, serializable: true }));
  for (const concurrency of [1, 16, 128]) {
    await run('putRequest', concurrency, (i) => client.putRequest(puts[i % KEYS]!));
  }
  for (const concurrency of [1, 16, 128]) {
    await run('rangeRequest (linearizable)', concurrency, (i) =>
      client.rangeRequest(reads[i % KEYS]!),
    );
  }
  await run('rangeRequest (serializable)', 128, (i) =>
    client.rangeRequest(serializable[i % KEYS]!),
  );
  await run('put (strings)', 128, (i) => client.put(`/bench/key-${i % KEYS}`, 'value'));
} finally {
  await client.close();
  await server.close();
  backend.close();
  await store.close();
  rmSync(directory, { recursive: true, force: true });
}
