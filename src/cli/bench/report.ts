/** Text rendering of a load-generator result, in the spirit of etcd's benchmark tool output. */
import type { BenchResult } from './runner.js';

const barWidthMax = 40;

function fixed(value: number, digits = 4): string {
  return value.toFixed(digits);
}

export function formatResult(result: BenchResult): string {
  const lines = [
    `Summary (${result.command}, ${result.clients} clients over ${result.conns} connections):`,
    `  Total:       ${fixed(result.durationSec)} s`,
    `  Requests:    ${result.succeeded} ok, ${result.failed} failed`,
    `  Throughput:  ${result.throughputPerSec.toFixed(1)} ${result.command === 'watch-latency' ? 'events' : 'requests'}/s`,
    `  Generator:   ${result.generatorCpuSec.toFixed(2)} s CPU (${((result.generatorCpuSec * 1e6) / Math.max(1, result.succeeded)).toFixed(0)} µs per request)`,
    `  Slowest:     ${fixed(result.latency.maxMs)} ms`,
    `  Fastest:     ${fixed(result.latency.minMs)} ms`,
    `  Average:     ${fixed(result.latency.meanMs)} ms`,
    '',
    'Latency histogram (ms, upper bound of each bin):',
  ];
  const largest = Math.max(1, ...result.histogram.map((bin) => bin.count));
  for (const bin of result.histogram) {
    const bar = '∎'.repeat(Math.round((bin.count / largest) * barWidthMax));
    lines.push(`  ${fixed(bin.upToMs).padStart(12)} [${String(bin.count).padStart(8)}]\t|${bar}`);
  }
  lines.push('', 'Latency distribution:');
  const { p50Ms, p90Ms, p99Ms, p999Ms, maxMs } = result.latency;
  for (const [label, value] of [
    ['50%', p50Ms],
    ['90%', p90Ms],
    ['99%', p99Ms],
    ['99.9%', p999Ms],
    ['max', maxMs],
  ] as const) {
    lines.push(`  ${label.padStart(6)} in ${fixed(value)} ms`);
  }
  const errorNames = Object.keys(result.errors);
  if (errorNames.length > 0) {
    lines.push('', 'Errors:');
    for (const name of errorNames) lines.push(`  ${name}: ${result.errors[name]}`);
  }
  return `${lines.join('\n')}\n`;
}
