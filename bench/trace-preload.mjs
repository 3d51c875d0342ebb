// Records a member's trace steps (src/server/trace.ts) and V8's garbage collections to
// `$SHOAL_TRACE_DIR/trace-<pid>.txt`, one line per event: `step a b atMs`, and for a collection
// `gc kind durationMs startMs`. Load it into members with node's --import, e.g.
//   SHOAL_TRACE_DIR=/tmp/t PROBE_NODE_FLAGS="--import $PWD/bench/trace-preload.mjs" \
//     npx tsx bench/tail-probe.ts shoal 8000 6000
// (an absolute path: members run in their cluster's temporary directory), then read the files
// with `npx tsx bench/trace-report.ts /tmp/t`. With SHOAL_TRACE_STEPS=0 it records only the
// collections.
import diagnostics from 'node:diagnostics_channel';
import fs from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';

const dir = process.env.SHOAL_TRACE_DIR;
if (dir) {
  const file = `${dir}/trace-${process.pid}.txt`;
  let rows = [];
  const flush = () => {
    if (rows.length === 0) return;
    fs.appendFileSync(file, `${rows.join('\n')}\n`);
    rows = [];
  };
  // SHOAL_TRACE_STEPS=0 records the collections alone, without the cost of tracing every step.
  if (process.env.SHOAL_TRACE_STEPS !== '0') {
    diagnostics.subscribe('shoal.trace', (event) => {
      rows.push(`${event.step} ${event.a} ${event.b} ${event.atMs.toFixed(3)}`);
      if (rows.length >= 20_000) flush();
    });
  }
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const start = performance.timeOrigin + entry.startTime;
      rows.push(`gc ${entry.detail?.kind ?? 0} ${entry.duration.toFixed(3)} ${start.toFixed(3)}`);
    }
  }).observe({ entryTypes: ['gc'] });
  setInterval(flush, 1000).unref();
  process.on('exit', flush);
}
