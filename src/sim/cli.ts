/**
 * `npm run sim -- --seed S` replays one seed (printing what it found); `npm run sim -- --seeds N
 * [--from F]` explores N seeds and prints every failing seed with the command that replays it.
 */
import { exploreSeed } from './explore.js';

function argument(name: string): number | null {
  const at = process.argv.indexOf(name);
  if (at < 0) return null;
  const value = Number(process.argv[at + 1]);
  if (!Number.isSafeInteger(value)) throw new Error(`${name} needs an integer`);
  return value;
}

const seed = argument('--seed');
const faultTicks = argument('--fault-ticks') ?? undefined;
const options = faultTicks === undefined ? {} : { faultTicks };
if (seed !== null) {
  const result = exploreSeed(seed, options);
  console.log(`seed ${seed}: ${result.description}`);
  if (result.ok) {
    console.log(`ok: ${result.ticks} ticks, ${result.committed} proposals committed`);
  } else {
    console.log(`FAILED at tick ${result.ticks}:\n${result.error}`);
    process.exit(1);
  }
} else {
  const count = argument('--seeds') ?? 100;
  const from = argument('--from') ?? 1;
  const started = Date.now();
  const failures: number[] = [];
  for (let s = from; s < from + count; s++) {
    const result = exploreSeed(s, options);
    if (!result.ok) {
      failures.push(s);
      const firstLine = result.error?.split('\n')[0] ?? '';
      console.log(`seed ${s} FAILED: ${firstLine}\n  replay: npm run sim -- --seed ${s}`);
    }
    if ((s - from + 1) % 100 === 0) {
      const seconds = ((Date.now() - started) / 1000).toFixed(0);
      console.log(`${s - from + 1}/${count} seeds, ${failures.length} failed, ${seconds}s`);
    }
  }
  console.log(
    `${count} seeds explored, ${failures.length} failed${failures.length ? `: ${failures.join(' ')}` : ''}`,
  );
  process.exit(failures.length === 0 ? 0 : 1);
}
