/**
 * Preload for a member (`node --import=bench/alloc-sample.mjs ...`): samples the JS heap
 * allocations of one window of its life, garbage included, and writes them as a .heapprofile
 * (Chrome DevTools' format; `npx tsx bench/alloc-report.ts FILE` summarises it).
 *
 * Node's own --heap-prof keeps only the samples still alive when it stops, which hides the
 * short-lived garbage that drives young-generation GC. This asks V8's sampling heap profiler to
 * keep the samples of objects collected by minor and major GCs as well.
 *
 * Environment: ALLOC_SAMPLE_DIR (where to write, required), ALLOC_SAMPLE_START_MS (default 16000:
 * past a probe's warm-up), ALLOC_SAMPLE_MS (window length, default 5000), ALLOC_SAMPLE_INTERVAL
 * (mean bytes between samples, default 4096), ALLOC_SAMPLE_MINOR=0 (drop the samples of objects the
 * young generation collected: what is left is what survived into the old generation),
 * ALLOC_SAMPLE_MAJOR=0 (with ALLOC_SAMPLE_MINOR=0: also drop what the old generation collected, leaving
 * only what was still alive when the window closed).
 */
import fs from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

const dir = process.env.ALLOC_SAMPLE_DIR;
if (dir) {
  const startMs = Number(process.env.ALLOC_SAMPLE_START_MS ?? 16_000);
  const windowMs = Number(process.env.ALLOC_SAMPLE_MS ?? 5_000);
  const interval = Number(process.env.ALLOC_SAMPLE_INTERVAL ?? 4096);
  const session = new Session();
  session.connect();
  const post = (method, params = {}) =>
    new Promise((resolve, reject) =>
      session.post(method, params, (error, result) => (error ? reject(error) : resolve(result))),
    );
  // A failure here must not become an unhandled rejection, which would stop the member under test.
  const failed = (error) => console.error(`alloc-sample: ${error?.message ?? error}`);
  setTimeout(() => {
    post('HeapProfiler.enable')
      .then(() =>
        post('HeapProfiler.startSampling', {
          samplingInterval: interval,
          includeObjectsCollectedByMajorGC: process.env.ALLOC_SAMPLE_MAJOR !== '0',
          includeObjectsCollectedByMinorGC: process.env.ALLOC_SAMPLE_MINOR !== '0',
        }),
      )
      .then(() => {
        setTimeout(() => {
          post('HeapProfiler.stopSampling')
            .then(({ profile }) => {
              fs.mkdirSync(dir, { recursive: true });
              const file = join(dir, `alloc-${process.pid}.heapprofile`);
              fs.writeFileSync(file, JSON.stringify(profile));
            })
            .catch(failed);
        }, windowMs).unref();
      })
      .catch(failed);
  }, startMs).unref();
}
