/**
 * Summarises a sampled heap profile (bench/alloc-sample.mjs): the functions that allocate most,
 * by their own allocations and with their callees.
 *   tsx bench/alloc-report.ts FILE.heapprofile [--seconds S] [--per-second N] [--top K]
 * With --per-second (requests per second during the window, from the probe's output) it also
 * prints the bytes allocated per request.
 */
import fs from 'node:fs';

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

const args = process.argv.slice(2);
const option = (name: string, fallback: number): number => {
  const at = args.indexOf(name);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const file = args[0];
if (file === undefined || file.startsWith('--')) {
  console.error(
    'usage: tsx bench/alloc-report.ts FILE.heapprofile [--seconds S] [--per-second N] [--top K]',
  );
  process.exit(2);
}
const seconds = option('--seconds', Number(process.env.ALLOC_SAMPLE_MS ?? 5000) / 1000);
const perSecond = option('--per-second', 0);
const top = option('--top', 25);

const { head } = JSON.parse(fs.readFileSync(file, 'utf8')) as { head: ProfileNode };
const own = new Map<string, number>();
const withCallees = new Map<string, number>();

function nameOf(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  return `${functionName || '(anonymous)'} ${url.split('/').pop() ?? ''}:${lineNumber + 1}`;
}

/** Depth-first, with the set of functions on the stack so recursion is counted once. */
function walk(node: ProfileNode, stack: Set<string>): number {
  const name = nameOf(node);
  own.set(name, (own.get(name) ?? 0) + node.selfSize);
  const fresh = !stack.has(name);
  if (fresh) stack.add(name);
  let total = node.selfSize;
  for (const child of node.children) total += walk(child, stack);
  if (fresh) {
    withCallees.set(name, (withCallees.get(name) ?? 0) + total);
    stack.delete(name);
  }
  return total;
}

const total = walk(head, new Set());
const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
console.log(`sampled ${mb(total)} MB in ${seconds} s: ${mb(total / seconds)} MB/s`);
if (perSecond > 0) {
  console.log(`${Math.round(total / seconds / perSecond)} bytes per request at ${perSecond} req/s`);
}
const print = (title: string, table: Map<string, number>) => {
  console.log(`\n${title}`);
  const rows = [...table].sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [name, bytes] of rows) {
    console.log(`${((bytes / total) * 100).toFixed(1).padStart(5)} %  ${name}`);
  }
};
print('own allocations', own);
print('with callees', withCallees);
