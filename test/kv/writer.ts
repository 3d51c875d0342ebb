/**
 * Child process for the crash test: applies numbered batches to an MVCC store forever, printing
 * "committed <index>" after each applyBatch returns, until it is killed. Batch n puts nine keys
 * `b<n>-<i>` and the key `last` = n: as ten raft entries (indexes 10n-9 .. 10n), or, with the
 * argument `entry-batches`, as one raft entry (index n) carrying the ten puts as a batch.
 */
import { pino } from 'pino';
import { MvccStore } from '../../src/kv/mvcc.js';

const path = process.argv[2];
if (!path) throw new Error('usage: writer.ts <store path> [entry-batches]');
const entryBatches = process.argv[3] === 'entry-batches';
const store = MvccStore.open({ path, logger: pino({ level: 'silent' }) });
const value = Buffer.alloc(256, 1);
let batch = entryBatches ? store.appliedIndex : Math.floor(store.appliedIndex / 10);
for (;;) {
  batch += 1;
  if (entryBatches) {
    const puts = [];
    for (let i = 0; i < 9; i++) puts.push({ put: { key: Buffer.from(`b${batch}-${i}`), value } });
    puts.push({ put: { key: Buffer.from('last'), value: Buffer.from(String(batch)) } });
    store.applyBatch([{ index: batch, batch: puts }]);
    process.stdout.write(`committed ${batch}\n`);
    continue;
  }
  const entries = [];
  for (let i = 0; i < 9; i++) {
    entries.push({
      index: (batch - 1) * 10 + i + 1,
      request: { put: { key: Buffer.from(`b${batch}-${i}`), value } },
    });
  }
  entries.push({
    index: batch * 10,
    request: { put: { key: Buffer.from('last'), value: Buffer.from(String(batch)) } },
  });
  store.applyBatch(entries);
  process.stdout.write(`committed ${batch * 10}\n`);
}
