/**
 * Reads the traces bench/trace-preload.mjs wrote (one file per member) and prints:
 * - for a one-client put loop over gRPC (requests that do not overlap), where each put's time went
 *   on the leader and its followers, for all puts and for the slow ones (over 2.5x the median),
 *   and how often the leader's own WAL write rather than a follower's acknowledgement was last;
 * - for the slowest 1 % of those puts, how many overlap a garbage collection on the leader, on a
 *   follower only, or on no member;
 * - with DIR/client.txt (bench/tail-probe.ts writes it when SHOAL_TRACE_DIR is set), what the
 *   client saw split into the way to the leader (the request's first byte read off the socket),
 *   the leader (to its answer's socket write), and the way back, for all puts and the slowest 1 %,
 *   and how many of those overlap a garbage collection in the client process;
 * - for any load, each member's garbage collections by kind, and its event loop's silences (no
 *   traced step for at least --silence-ms) split into those with a collection in them and the rest.
 *
 *   npx tsx bench/trace-report.ts DIR [--last N] [--silence-ms MS]
 *
 * --last N keeps only the last N puts (a probe's measured ones, after its warm-up).
 */
import fs from 'node:fs';
import { join } from 'node:path';
import { constants } from 'node:perf_hooks';

interface Row {
  step: string;
  a: number;
  b: number;
  at: number;
}

interface MemberTrace {
  file: string;
  rows: Row[];
  byStep: Map<string, Row[]>;
}

function load(file: string): MemberTrace {
  const rows: Row[] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const [step, a, b, at] = line.split(' ');
    if (step === undefined || at === undefined) continue;
    rows.push({ step, a: Number(a), b: Number(b), at: Number(at) });
  }
  rows.sort((x, y) => x.at - y.at);
  const byStep = new Map<string, Row[]>();
  for (const row of rows) {
    const list = byStep.get(row.step);
    if (list === undefined) byStep.set(row.step, [row]);
    else list.push(row);
  }
  return { file, rows, byStep };
}

/** The position of the first row at or after `at` (rows are in time order). */
function lowerBound(rows: readonly Row[], at: number): number {
  let lo = 0;
  let hi = rows.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (rows[mid]!.at < at) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The first row at or after `at`. */
function firstAfter(rows: readonly Row[], at: number): Row | undefined {
  return rows[lowerBound(rows, at)];
}

/**
 * The first row from `notBefore` on whose range [a, b] holds `index` (`field` 'range'), or whose
 * `a` or `b` is at least `index`.
 */
function firstCovering(
  rows: readonly Row[],
  index: number,
  field: 'range' | 'a' | 'b',
  notBefore: number,
): Row | undefined {
  for (let i = lowerBound(rows, notBefore); i < rows.length; i++) {
    const row = rows[i]!;
    if (field === 'range' ? row.a <= index && index <= row.b : row[field] >= index) return row;
  }
  return undefined;
}

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? Number.NaN;
}

const ms = (value: number) => (Number.isFinite(value) ? value.toFixed(3) : '-');

function parseArgs(argv: string[]) {
  const dir = argv[0];
  if (dir === undefined) throw new Error('usage: trace-report.ts DIR [--last N] [--silence-ms MS]');
  let last = Number.POSITIVE_INFINITY;
  let silenceMs = 5;
  for (let i = 1; i < argv.length; i++) {
    if (argv[i] === '--last') last = Number(argv[++i]);
    else if (argv[i] === '--silence-ms') silenceMs = Number(argv[++i]);
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  return { dir, last, silenceMs };
}

function putBreakdown(leader: MemberTrace, followers: MemberTrace[], last: number): void {
  const reqs = leader.byStep.get('req') ?? [];
  const resps = leader.byStep.get('resp') ?? [];
  const props = leader.byStep.get('prop') ?? [];
  // With one client, each request starts after the one before was answered.
  let overlapping = false;
  for (let i = 0; i + 1 < reqs.length && i < resps.length; i++) {
    if (reqs[i + 1]!.at < resps[i]!.at) overlapping = true;
  }
  if (reqs.length === 0 || overlapping) {
    console.log('put breakdown: needs a one-client gRPC put loop (requests that do not overlap)');
    return;
  }
  const persists = leader.byStep.get('persist') ?? [];
  const commits = leader.byStep.get('commit') ?? [];
  const applies = leader.byStep.get('applied') ?? [];
  const acksByFollower = new Map<number, Row[]>();
  for (const ack of leader.byStep.get('ack') ?? []) {
    const list = acksByFollower.get(ack.a);
    if (list === undefined) acksByFollower.set(ack.a, [ack]);
    else list.push(ack);
  }
  type Put = Record<string, number>;
  const puts: Put[] = [];
  const from = Math.max(0, reqs.length - last);
  for (let i = from; i < reqs.length && i < resps.length; i++) {
    const req = reqs[i]!.at;
    const prop = firstAfter(props, req);
    if (prop === undefined || prop.at > resps[i]!.at) continue;
    const index = prop.a;
    const since = (row: Row | undefined) => (row === undefined ? Number.NaN : row.at - prop.at);
    const acks = [...acksByFollower.values()]
      .map((list) => since(firstCovering(list, index, 'b', prop.at)))
      .sort((x, y) => x - y);
    const put: Put = {
      start: req,
      total: resps[i]!.at - req,
      'to propose': prop.at - req,
      'leader WAL': since(firstCovering(persists, index, 'range', prop.at)),
      'first ack': acks[0] ?? Number.NaN,
      'second ack': acks[1] ?? Number.NaN,
      commit: since(firstCovering(commits, index, 'range', prop.at)),
    };
    put.apply = since(firstCovering(applies, index, 'range', prop.at)) - put.commit!;
    followers.forEach((follower, k) => {
      const recv = firstCovering(follower.byStep.get('recv') ?? [], index, 'b', prop.at - 1);
      const sent = firstCovering(follower.byStep.get('acksent') ?? [], index, 'a', prop.at - 1);
      put[`f${k + 1} receives`] = since(recv);
      put[`f${k + 1} WAL`] =
        recv !== undefined && sent !== undefined ? sent.at - recv.at : Number.NaN;
    });
    puts.push(put);
  }
  if (puts.length === 0) return;
  const median = quantile(
    puts.map((p) => p.total!),
    0.5,
  );
  const slow = puts.filter((p) => p.total! > 2.5 * median);
  const columns = Object.keys(puts[0]!).filter((c) => c !== 'start');
  console.log(
    `puts traced on the leader: ${puts.length}, ${slow.length} slow (over 2.5x the median ${ms(median)} ms); ms from the proposal unless named`,
  );
  console.log('| step | p50 | p90 | p99 | slow puts p50 |');
  console.log('|---|---:|---:|---:|---:|');
  for (const column of columns) {
    const all = puts.map((p) => p[column]!).filter(Number.isFinite);
    const slowValues = slow.map((p) => p[column]!).filter(Number.isFinite);
    console.log(
      `| ${column} | ${ms(quantile(all, 0.5))} | ${ms(quantile(all, 0.9))} | ${ms(quantile(all, 0.99))} | ${ms(quantile(slowValues, 0.5))} |`,
    );
  }
  const leaderLast = (p: Put) => p['leader WAL']! > p['first ack']!;
  console.log(
    `the leader's own WAL write finished after the first acknowledgement in ${puts.filter(leaderLast).length} of ${puts.length} puts (${slow.filter(leaderLast).length} of ${slow.length} slow ones)`,
  );
  const totals = puts.map((p) => p.total!);
  const p99 = quantile(totals, 0.99);
  const slowest = puts.filter((p) => p.total! >= p99);
  const overlaps = (member: MemberTrace, p: Put) =>
    (member.byStep.get('gc') ?? []).some(
      (gc) => gc.at < p.start! + p.total! && gc.at + gc.b > p.start!,
    );
  const onLeader = slowest.filter((p) => overlaps(leader, p));
  const onFollower = slowest.filter(
    (p) => !overlaps(leader, p) && followers.some((f) => overlaps(f, p)),
  );
  console.log(
    `the ${slowest.length} puts at or over p99 (${ms(p99)} ms): ${onLeader.length} overlap a GC on the leader, ${onFollower.length} one on a follower only, ${slowest.length - onLeader.length - onFollower.length} none`,
  );
  const none = slowest.filter((p) => !onLeader.includes(p) && !onFollower.includes(p));
  const groups = {
    'GC on the leader': onLeader,
    'GC on a follower only': onFollower,
    'no GC': none,
  };
  const shown = ['total', 'leader WAL', 'first ack', 'second ack', 'commit', 'f1 WAL', 'f2 WAL'];
  console.log(`| p99 puts, p50 of | ${shown.join(' | ')} |`);
  console.log(`|---|${shown.map(() => '---:').join('|')}|`);
  for (const [name, group] of Object.entries(groups)) {
    const cells = shown.map((c) =>
      ms(quantile(group.map((p) => p[c]!).filter(Number.isFinite), 0.5)),
    );
    console.log(`| ${name} (${group.length}) | ${cells.join(' | ')} |`);
  }
}

/**
 * Splits each client-timed put (the last ones the leader saw, in order) at the leader's socket
 * read of its request and socket write of its answer. All times are performance.timeOrigin-based,
 * so the split rests on the processes' clocks agreeing (they read one machine's clock).
 */
function clientBreakdown(leader: MemberTrace, file: string): void {
  const spans: [number, number][] = [];
  const clientGcs: [number, number][] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[0] === 'req') spans.push([Number(f[1]), Number(f[2])]);
    else if (f[0] === 'gc') clientGcs.push([Number(f[3]), Number(f[3]) + Number(f[2])]);
  }
  const reqs = (leader.byStep.get('req') ?? []).slice(-spans.length);
  const resps = (leader.byStep.get('resp') ?? []).slice(-spans.length);
  const ins = leader.byStep.get('sockin') ?? [];
  const outs = leader.byStep.get('sockout') ?? [];
  if (reqs.length !== spans.length || resps.length !== spans.length) {
    console.log(`client split: ${file} has ${spans.length} requests, the leader fewer`);
    return;
  }
  type Split = {
    total: number;
    toLeader: number;
    leader: number;
    back: number;
    span: [number, number];
  };
  const splits: Split[] = [];
  for (let i = 0; i < spans.length; i++) {
    const span = spans[i]!;
    const read = ins[lowerBound(ins, reqs[i]!.at + 1e-6) - 1];
    const written = firstAfter(outs, resps[i]!.at);
    if (read === undefined || written === undefined || read.at < span[0]) continue;
    splits.push({
      total: span[1] - span[0],
      toLeader: read.at - span[0],
      leader: written.at - read.at,
      back: span[1] - written.at,
      span,
    });
  }
  if (splits.length === 0) return;
  const p99 = quantile(
    splits.map((s) => s.total),
    0.99,
  );
  const slowest = splits.filter((s) => s.total >= p99);
  console.log(
    `client-timed puts: ${splits.length} of ${spans.length} split at the leader's socket read and write`,
  );
  console.log('| part | p50 | p90 | p99 | slowest 1 % p50 |');
  console.log('|---|---:|---:|---:|---:|');
  for (const part of ['total', 'toLeader', 'leader', 'back'] as const) {
    const names = {
      total: 'client total',
      toLeader: 'to the leader',
      leader: 'leader',
      back: 'back',
    };
    const all = splits.map((s) => s[part]);
    console.log(
      `| ${names[part]} | ${ms(quantile(all, 0.5))} | ${ms(quantile(all, 0.9))} | ${ms(quantile(all, 0.99))} | ${ms(
        quantile(
          slowest.map((s) => s[part]),
          0.5,
        ),
      )} |`,
    );
  }
  const withClientGc = slowest.filter((s) =>
    clientGcs.some(([start, end]) => start < s.span[1] && end > s.span[0]),
  ).length;
  console.log(
    `the ${slowest.length} client-timed puts at or over p99 (${ms(p99)} ms): ${withClientGc} overlap a GC in the client`,
  );
}

function pauses(member: MemberTrace, silenceMs: number): void {
  const gcs = member.byStep.get('gc') ?? [];
  const kinds = new Map<number, { count: number; totalMs: number; maxMs: number }>();
  for (const gc of gcs) {
    const kind = kinds.get(gc.a) ?? { count: 0, totalMs: 0, maxMs: 0 };
    kind.count++;
    kind.totalMs += gc.b;
    kind.maxMs = Math.max(kind.maxMs, gc.b);
    kinds.set(gc.a, kind);
  }
  const names: Record<number, string> = {
    [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
    [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
    [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
    [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
  };
  const gcText = [...kinds]
    .map(
      ([k, v]) =>
        `${names[k] ?? k} ${v.count}x ${v.totalMs.toFixed(1)} ms (max ${v.maxMs.toFixed(1)})`,
    )
    .join(', ');
  const steps = member.rows.filter((r) => r.step !== 'gc');
  const silences = { gc: [0, 0], other: [0, 0] };
  for (let i = 1; i < steps.length; i++) {
    const gap = steps[i]!.at - steps[i - 1]!.at;
    if (gap < silenceMs) continue;
    const withGc = gcs.some((g) => g.at >= steps[i - 1]!.at && g.at < steps[i]!.at);
    const bucket = withGc ? silences.gc : silences.other;
    bucket[0]!++;
    bucket[1]! += gap;
  }
  const span = steps.length > 1 ? steps[steps.length - 1]!.at - steps[0]!.at : 0;
  console.log(
    `${member.file}: ${(span / 1000).toFixed(1)} s traced; GC ${gcText || 'none'}; silences >= ${silenceMs} ms: ${silences.gc[0]} with a GC (${silences.gc[1]!.toFixed(0)} ms), ${silences.other[0]} without (${silences.other[1]!.toFixed(0)} ms; includes idle time)`,
  );
}

const { dir, last, silenceMs } = parseArgs(process.argv.slice(2));
const members = fs
  .readdirSync(dir)
  .filter((f) => /^trace-\d+\.txt$/.test(f))
  .map((f) => load(join(dir, f)));
if (members.length === 0) throw new Error(`no trace-<pid>.txt files in ${dir}`);
const acks = (m: MemberTrace) => m.byStep.get('ack')?.length ?? 0;
const leader = members.reduce((best, m) => (acks(m) > acks(best) ? m : best));
putBreakdown(
  leader,
  members.filter((m) => m !== leader),
  last,
);
const clientFile = join(dir, 'client.txt');
if (fs.existsSync(clientFile)) clientBreakdown(leader, clientFile);
for (const member of members) pauses(member, silenceMs);
