/**
 * Child process for the crash test: applies numbered batches to an MVCC store forever, printing
 * "committed <index>" after each applyBatch returns, until it is killed. Batch n (raft indexes
 * 10n-9 .. 10n) puts ten keys `b<n>-<i>` and the key `last` = n.
 */
import { pino } from 'pino';
import { MvccStore } from '../../src/kv/mvcc.js';

const path = process.argv[2];
if (!path) throw new Error('usage: writer.ts <store path>');
const store = MvccStore.open({ path, logger: pino({ level: 'silent' }) });
const value = Buffer.alloc(256, 1);
let batch = Math.floor(store.appliedIndex / 10);
for (;;) {
  batch += 1;
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
