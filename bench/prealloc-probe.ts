/**
 * How a background segment preallocation affects WAL writes on the same disk: times small O_DSYNC
 * writes (one WAL batch each) while a 64 MiB segment is prepared, paced or not.
 *   tsx bench/prealloc-probe.ts
 */
import fs from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { writeAt } from '../src/storage/fs-async.js';
import { prepareSegment, SEGMENT_OPEN_FLAGS } from '../src/storage/segment.js';

async function run(paced: boolean): Promise<void> {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'shoal-prealloc-'));
  try {
    const fd = fs.openSync(join(dir, 'wal'), SEGMENT_OPEN_FLAGS | fs.constants.O_CREAT);
    const batch = Buffer.alloc(512, 7);
    const latencies: number[] = [];
    let done = false;
    const started = performance.now();
    const prep = prepareSegment(dir, 2, 64 * 1024 * 1024, { paced }).then((segment) => {
      done = true;
      fs.closeSync(segment.fd);
    });
    for (let i = 0; !done; i++) {
      const t = performance.now();
      await writeAt(fd, batch, (i % 1000) * 512);
      latencies.push(performance.now() - t);
    }
    await prep;
    const took = performance.now() - started;
    latencies.sort((a, b) => a - b);
    const at = (q: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))]!;
    console.log(
      `${paced ? 'paced  ' : 'unpaced'} prealloc ${took.toFixed(0)} ms; ${latencies.length} WAL writes meanwhile: p50 ${at(0.5).toFixed(2)} p99 ${at(0.99).toFixed(2)} max ${at(1).toFixed(2)} ms`,
    );
    fs.closeSync(fd);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

for (let round = 0; round < 3; round++) {
  await run(false);
  await run(true);
}
