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
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const topFunctionCount = 30;
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
function selfTimeUs(profile: CpuProfile): Map<number, number> {
  const self = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  return self;
}

export function summarizeCpuProfile(profile: CpuProfile, title: string): string {
  const self = selfTimeUs(profile);
  const totalUs = [...self.values()].reduce((a, b) => a + b, 0);
  const byFunction = new Map<string, number>();
  const bySource = new Map<string, number>();
  for (const node of profile.nodes) {
    const us = self.get(node.id) ?? 0;
    if (us === 0) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const source = sourceOf(url);
    const key = `${functionName || '(anonymous)'} — ${source}${url ? `:${lineNumber + 1}` : ''}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    bySource.set(source, (bySource.get(source) ?? 0) + us);
  }
  const pct = (us: number) => ((us / Math.max(1, totalUs)) * 100).toFixed(1);
  const top = (map: Map<string, number>, count: number) =>
    [...map].sort((a, b) => b[1] - a[1]).slice(0, count);
  const lines = [
    `## ${title}`,
    '',
    `Sampled ${(totalUs / 1e6).toFixed(1)} s of CPU profile (wall time covered ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s).`,
    '',
    '### Top functions by self time',
    '',
    '| self % | self ms | function — source:line |',
    '|---:|---:|---|',
    ...top(byFunction, topFunctionCount).map(
      ([key, us]) => `| ${pct(us)} | ${(us / 1000).toFixed(0)} | ${key} |`,
    ),
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
export function summarizeProfile(dir: string, pid: number | undefined): string {
  const files = fs.readdirSync(dir).filter((name) => name.endsWith('.cpuprofile'));
  if (files.length === 0)
    return `No .cpuprofile was written in ${dir} (did the members exit cleanly?).\n`;
  const chosen =
    files.find((name) => pid !== undefined && name.includes(`.${pid}.`)) ??
    files.sort((a, b) => fs.statSync(join(dir, b)).size - fs.statSync(join(dir, a)).size)[0]!;
  const profile = JSON.parse(fs.readFileSync(join(dir, chosen), 'utf8')) as CpuProfile;
  const which =
    pid !== undefined && chosen.includes(`.${pid}.`)
      ? `leader (pid ${pid})`
      : 'largest profile (leader unknown)';
  return summarizeCpuProfile(profile, `shoal ${which}: ${chosen}`);
}
