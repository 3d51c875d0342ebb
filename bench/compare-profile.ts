/**
 * Reads a V8 .cpuprofile (written by `node --cpu-prof`) and summarizes where the time went: the top
 * functions by self time, and self time grouped by source (shoal module or npm package or node
 * internals), as Markdown. Used by `npm run bench:compare -- --profile` for the shoal leader.
 */
import fs from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

/** Optional sample window in the profile's clock (microseconds, the same clock as hrtime). */
export interface SampleWindowUs {
  startUs: number;
  endUs: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const topFunctionCount = 30;
/** Functions whose callers are listed, and how many distinct caller chains each. */
const stackedFunctionCount = 8;
const callerChainsPerFunction = 3;
const callerChainDepth = 5;
const topSourceCount = 20;

/** Where a function lives, short: "src/server/member.ts", "@grpc/grpc-js", "node:internal/...". */
function sourceOf(url: string): string {
  if (url === '') return '(native / VM)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  const own = /\/(src\/.+|bin\/.+)$/.exec(url);
  if (own) return own[1]!;
  return url.replace(/^file:\/\//, '');
}

/** Self time in microseconds per profile node id, from the samples and their time deltas. */
function selfTimeUs(profile: CpuProfile, window?: SampleWindowUs): Map<number, number> {
  const self = new Map<number, number>();
  let timeUs = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const deltaUs = profile.timeDeltas[i] ?? 0;
    timeUs += deltaUs;
    if (window && (timeUs < window.startUs || timeUs > window.endUs)) continue;
    const id = profile.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + deltaUs);
  }
  return self;
}

function frameName(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  return `${functionName || '(anonymous)'} (${sourceOf(url)}${url ? `:${lineNumber + 1}` : ''})`;
}

/** For one function key, its heaviest caller chains (nearest caller first). */
function callerChains(
  profile: CpuProfile,
  self: Map<number, number>,
  keyOf: (node: ProfileNode) => string,
  key: string,
): Array<[string, number]> {
  const parent = new Map<number, ProfileNode>();
  for (const node of profile.nodes)
    for (const child of node.children ?? []) parent.set(child, node);
  const chains = new Map<string, number>();
  for (const node of profile.nodes) {
    const us = self.get(node.id) ?? 0;
    if (us === 0 || keyOf(node) !== key) continue;
    const frames: string[] = [];
    let caller = parent.get(node.id);
    while (
      caller &&
      frames.length < callerChainDepth &&
      caller.callFrame.functionName !== '(root)'
    ) {
      frames.push(frameName(caller));
      caller = parent.get(caller.id);
    }
    // Name the nearest shoal frame too, when the chain so far is all library internals.
    if (!frames.some((frame) => frame.includes('(src/'))) {
      while (caller && !caller.callFrame.url.includes('/src/')) caller = parent.get(caller.id);
      if (caller) frames.push(`… ${frameName(caller)}`);
    }
    const chain = frames.join(' ← ') || '(top level)';
    chains.set(chain, (chains.get(chain) ?? 0) + us);
  }
  return [...chains].sort((a, b) => b[1] - a[1]).slice(0, callerChainsPerFunction);
}

export function summarizeCpuProfile(
  profile: CpuProfile,
  title: string,
  window?: SampleWindowUs,
): string {
  const self = selfTimeUs(profile, window);
  const idleUs = profile.nodes
    .filter((node) => node.callFrame.functionName === '(idle)')
    .reduce((sum, node) => sum + (self.get(node.id) ?? 0), 0);
  const sampledUs = [...self.values()].reduce((a, b) => a + b, 0);
  // Percentages are of busy time: the leader idles while it waits for disks and peers.
  const totalUs = sampledUs - idleUs;
  const keyOf = (node: ProfileNode) => {
    const { functionName, url, lineNumber } = node.callFrame;
    return `${functionName || '(anonymous)'} — ${sourceOf(url)}${url ? `:${lineNumber + 1}` : ''}`;
  };
  const byFunction = new Map<string, number>();
  const bySource = new Map<string, number>();
  for (const node of profile.nodes) {
    const us = self.get(node.id) ?? 0;
    if (us === 0 || node.callFrame.functionName === '(idle)') continue;
    const source = sourceOf(node.callFrame.url);
    const key = keyOf(node);
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    bySource.set(source, (bySource.get(source) ?? 0) + us);
  }
  const pct = (us: number) => ((us / Math.max(1, totalUs)) * 100).toFixed(1);
  const top = (map: Map<string, number>, count: number) =>
    [...map].sort((a, b) => b[1] - a[1]).slice(0, count);
  const lines = [
    `## ${title}`,
    '',
    `Window: ${window ? `${((window.endUs - window.startUs) / 1e6).toFixed(1)} s of load (start-up excluded)` : 'whole process life'}; busy ${(totalUs / 1e6).toFixed(2)} s, idle ${(idleUs / 1e6).toFixed(2)} s (${((idleUs / Math.max(1, sampledUs)) * 100).toFixed(0)} % idle). Percentages below are of busy time.`,
    '',
    '### Top functions by self time',
    '',
    '| self % | self ms | function — source:line |',
    '|---:|---:|---|',
    ...top(byFunction, topFunctionCount).map(
      ([key, us]) => `| ${pct(us)} | ${(us / 1000).toFixed(0)} | ${key} |`,
    ),
    '',
    '### Who calls the heaviest functions (heaviest caller chains, nearest caller first)',
    '',
    ...top(byFunction, stackedFunctionCount).flatMap(([key, us]) => [
      `- **${key}** (${pct(us)} %)`,
      ...callerChains(profile, self, keyOf, key).map(
        ([chain, chainUs]) => `  - ${pct(chainUs)} %: ${chain}`,
      ),
    ]),
    '',
    '### Self time by source',
    '',
    '| self % | source |',
    '|---:|---|',
    ...top(bySource, topSourceCount).map(([source, us]) => `| ${pct(us)} | ${source} |`),
    '',
  ];
  return lines.join('\n');
}

/** Summarizes the profile written by process `pid` in `dir` (or the largest one when unknown). */
export function summarizeProfile(
  dir: string,
  pid: number | undefined,
  window?: SampleWindowUs,
  role = 'leader',
): string {
  const files = fs.readdirSync(dir).filter((name) => name.endsWith('.cpuprofile'));
  if (files.length === 0)
    return `No .cpuprofile was written in ${dir} (did the members exit cleanly?).\n`;
  const chosen =
    files.find((name) => pid !== undefined && name.includes(`.${pid}.`)) ??
    files.sort((a, b) => fs.statSync(join(dir, b)).size - fs.statSync(join(dir, a)).size)[0]!;
  const profile = JSON.parse(fs.readFileSync(join(dir, chosen), 'utf8')) as CpuProfile;
  const which =
    pid !== undefined && chosen.includes(`.${pid}.`)
      ? `${role} (pid ${pid})`
      : `largest profile (${role} unknown)`;
  return summarizeCpuProfile(profile, `shoal ${which}: ${chosen}`, window);
}
