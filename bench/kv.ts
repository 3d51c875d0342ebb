/**
 * Benchmark of the MVCC store's write path: applyBatch throughput of puts with 256-byte values at
 * several batch sizes, with fsync per batch (the default) and without (noSync), plus current and
 * historical point reads. Run with `npm run bench:kv`; figures on a shared machine are noisy.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { ApplyEntry } from '../src/kv/mvcc.js';
import { StoreHarness } from '../src/kv/testing.js';

const VALUE_BYTES = 256;
const KEY_SPACE = 100_000;

interface Case {
  batch: number;
  totalPuts: number;
  noSync: boolean;
}

const cases: Case[] = [
  { batch: 1, totalPuts: 2_000, noSync: false },
  { batch: 16, totalPuts: 20_000, noSync: false },
  { batch: 128, totalPuts: 100_000, noSync: false },
  { batch: 1024, totalPuts: 200_000, noSync: false },
  { batch: 1, totalPuts: 20_000, noSync: true },
  { batch: 128, totalPuts: 200_000, noSync: true },
  { batch: 1024, totalPuts: 200_000, noSync: true },
];

function keyOf(i: number): Buffer {
  return Buffer.from(`/registry/pods/ns-${i % 97}/pod-${(i * 7919) % KEY_SPACE}`);
}

async function runPuts(c: Case): Promise<string> {
  const harness = StoreHarness.open({ noSync: c.noSync });
  const value = randomBytes(VALUE_BYTES);
  let index = 1;
  const started = performance.now();
  for (let done = 0; done < c.totalPuts; done += c.batch) {
    const entries: ApplyEntry[] = [];
    for (let i = 0; i < c.batch; i++) {
      entries.push({ index: index++, request: { put: { key: keyOf(done + i), value } } });
    }
    harness.store.applyBatch(entries);
  }
  const seconds = (performance.now() - started) / 1000;
  const rate = Math.round(c.totalPuts / seconds);
  const batchMs = ((seconds * 1000) / (c.totalPuts / c.batch)).toFixed(2);
  const sizeMb = (harness.store.status().dbSizeBytes / 1e6).toFixed(1);
  await harness.close();
  return `| ${c.batch} | ${c.noSync ? 'noSync' : 'fsync'} | ${c.totalPuts} | ${rate} | ${batchMs} | ${sizeMb} |`;
}

async function runReads(): Promise<string[]> {
  const harness = StoreHarness.open({ noSync: true });
  const value = randomBytes(VALUE_BYTES);
  let index = 1;
  for (let done = 0; done < 200_000; done += 1000) {
    const entries: ApplyEntry[] = [];
    for (let i = 0; i < 1000; i++) {
      entries.push({ index: index++, request: { put: { key: keyOf(done + i), value } } });
    }
    harness.store.applyBatch(entries);
  }
  const lines: string[] = [];
  const reads = 100_000;
  for (const [label, revision] of [
    ['current', 0],
    ['historical (rev = current - 50k)', harness.store.revision - 50_000],
  ] as const) {
    const started = performance.now();
    for (let i = 0; i < reads; i++) harness.store.range({ key: keyOf(i * 13), revision });
    const rate = Math.round(reads / ((performance.now() - started) / 1000));
    lines.push(`| point read, ${label} | ${rate} reads/s |`);
  }
  const started = performance.now();
  const scans = 200;
  for (let i = 0; i < scans; i++) {
    harness.store.range({
      key: Buffer.from(`/registry/pods/ns-${i % 97}/`),
      rangeEnd: Buffer.from(`/registry/pods/ns-${i % 97}0`),
      limit: 100,
    });
  }
  const perScan = ((performance.now() - started) / scans).toFixed(2);
  lines.push(`| prefix range, limit 100 (count over ~1k keys) | ${perScan} ms/range |`);
  lines.push(...(await runMaintenance(harness)));
  await harness.close();
  return lines;
}

/** HashKV, snapshot + restore and compaction over the 200k-revision store built by runReads. */
async function runMaintenance(harness: StoreHarness): Promise<string[]> {
  const lines: string[] = [];
  const revisions = harness.store.revision;
  let started = performance.now();
  await harness.store.hashKv();
  lines.push(
    `| HashKV over ${revisions} revisions | ${(performance.now() - started).toFixed(0)} ms |`,
  );
  started = performance.now();
  const target = StoreHarness.open({ noSync: true });
  await target.store.restore(harness.store.snapshot().chunks);
  const megabytes = (harness.store.status().dbSizeBytes / 1e6).toFixed(0);
  lines.push(
    `| snapshot + restore (${megabytes} MB db) | ${(performance.now() - started).toFixed(0)} ms |`,
  );
  await target.close();
  started = performance.now();
  await harness.reopen();
  lines.push(
    `| reopen (builds the key index from ${harness.store.status().historyEntries} history entries) | ${(performance.now() - started).toFixed(0)} ms |`,
  );
  started = performance.now();
  harness.nextIndex = harness.store.appliedIndex + 1;
  harness.ok({ compaction: { revision: revisions - 1000 } });
  const applyMs = performance.now() - started;
  lines.push(
    `| Compaction request apply (${revisions - 1000} revisions) | ${applyMs.toFixed(1)} ms |`,
  );
  let steps = 0;
  let slowestStepMs = 0;
  started = performance.now();
  for (let more = true; more; steps++) {
    const stepStarted = performance.now();
    more = harness.store.compactStep();
    slowestStepMs = Math.max(slowestStepMs, performance.now() - stepStarted);
  }
  const totalMs = (performance.now() - started).toFixed(0);
  lines.push(
    `| physical compaction: ${steps} compactStep() calls | ${totalMs} ms total, slowest step ${slowestStepMs.toFixed(0)} ms |`,
  );
  return lines;
}

console.log('| batch | durability | puts | puts/s | ms/batch | db MB |');
console.log('|---|---|---|---|---|---|');
for (const c of cases) console.log(await runPuts(c));
console.log('');
console.log('| read | throughput |');
console.log('|---|---|');
for (const line of await runReads()) console.log(line);
