/**
 * `npm run bench:swim`: the SWIM figures, measured in the seeded simulator with memberlist's LAN
 * defaults — convergence after a join storm, detection time of crashed members, false positives
 * under packet loss and stalling members with and without Lifeguard (and the TCP fallback ping), a
 * member whose UDP is blocked, and per-member load as the cluster grows. Times are in protocol periods (1 period = probe interval = 1 s simulated).
 * Pass `--quick` for a smaller run.
 */
import { cpus } from 'node:os';
import { type LifeguardOptions, lifeguardOff } from '../src/membership/core/types.js';
import {
  type AccuracyResult,
  percentile,
  runAccuracy,
  runConvergence,
  runDetection,
  runLoad,
  runUdpBlocked,
} from '../src/sim/swim/scenarios.js';

const quick = process.argv.includes('--quick');
const seeds = quick ? [1] : [1, 2, 3, 4, 5];

function section(title: string): void {
  console.log(`\n## ${title}\n`);
}

function convergence(): void {
  section('Convergence: members join through one seed within the first second');
  console.log('| members | seed | converged | periods until all see all alive |');
  console.log('| ---: | ---: | :---: | ---: |');
  for (const memberCount of quick ? [100] : [50, 100, 200]) {
    for (const seed of seeds) {
      const result = runConvergence(seed, memberCount);
      console.log(
        `| ${memberCount} | ${seed} | ${result.converged} | ${result.periods.toFixed(2)} |`,
      );
    }
  }
}

function detection(): void {
  section('Detection: crashed members (3 at a time) until every live member sees them dead');
  console.log(
    '| members | Lifeguard | crashes | undetected | p50 periods | p99 periods | max periods |',
  );
  console.log('| ---: | --- | ---: | ---: | ---: | ---: | ---: |');
  for (const memberCount of quick ? [50] : [50, 100]) {
    for (const lifeguard of [true, false]) {
      const periods: number[] = [];
      let undetected = 0;
      for (const seed of seeds) {
        const result = runDetection(seed, memberCount, 3, quick ? 2 : 4, lifeguard);
        periods.push(...result.periods);
        undetected += result.undetected;
      }
      const row = [0.5, 0.99, 1].map((p) => percentile(periods, p).toFixed(2));
      const crashes = periods.length + undetected;
      const label = lifeguard ? 'on' : 'off';
      console.log(
        `| ${memberCount} | ${label} | ${crashes} | ${undetected} | ${row.join(' | ')} |`,
      );
    }
  }
}

function accuracy(): void {
  const memberCount = 50;
  const slowCount = 5;
  const durationMs = quick ? 120_000 : 600_000;
  const stalls = { meanGapMs: 3000, durationMsMin: 2000, durationMsMax: 10_000 };
  section(
    `Accuracy: ${memberCount} members, ${slowCount} slow (event loop stalls of ` +
      `${stalls.durationMsMin / 1000}–${stalls.durationMsMax / 1000} s, mean gap ` +
      `${stalls.meanGapMs / 1000} s), 10% packet loss, ${durationMs / 1000} s per seed`,
  );
  const totals = (lifeguard: boolean | LifeguardOptions, fallbackPing = false) => {
    const sum = { healthy: 0, all: 0, members: 0, suspicions: 0, refutations: 0 };
    for (const seed of seeds) {
      const result: AccuracyResult = runAccuracy({
        seed,
        memberCount,
        slowCount,
        lossRate: 0.1,
        durationMs,
        lifeguard,
        stalls,
        fallbackPing,
      });
      sum.healthy += result.falsePositiveEventsHealthy;
      sum.all += result.falsePositiveEvents;
      sum.members += result.falselyDeclaredMembers;
      sum.suspicions += result.suspicionsStarted;
      sum.refutations += result.refutations;
    }
    return sum;
  };
  const only = (key: keyof LifeguardOptions): LifeguardOptions => ({
    ...lifeguardOff,
    [key]: true,
  });
  const off = totals(false);
  const on = totals(true);
  const rows: [string, ReturnType<typeof totals>][] = [['off (plain SWIM)', off]];
  if (!quick) {
    rows.push(['local health awareness only', totals(only('localHealthAwareness'))]);
    rows.push(['dynamic suspicion only', totals(only('dynamicSuspicion'))]);
    rows.push(['buddy system only', totals(only('buddySystem'))]);
  }
  rows.push(['on (all three)', on]);
  // The runtime's default adds the TCP fallback ping, which loss cannot defeat; only stalls can.
  rows.push(['off, with the TCP fallback ping', totals(false, true)]);
  rows.push(['on, with the TCP fallback ping (the runtime default)', totals(true, true)]);
  console.log(
    '| Lifeguard | false dead events about healthy members | about any running member | ' +
      'running members declared dead (per seed, summed) | suspicions started | refutations |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const [label, row] of rows) {
    console.log(
      `| ${label} | ${row.healthy} | ${row.all} | ${row.members} | ${row.suspicions} | ${row.refutations} |`,
    );
  }
  const factor = on.healthy === 0 ? `>${off.healthy}` : (off.healthy / on.healthy).toFixed(1);
  console.log(
    `\nWithout the fallback ping, Lifeguard reduces false positives about healthy members by a ` +
      `factor of ${factor}.`,
  );
}

function udpBlocked(): void {
  const memberCount = quick ? 20 : 50;
  const durationMs = quick ? 120_000 : 300_000;
  section(
    `UDP blocked: one of ${memberCount} members loses all UDP (TCP still works) for ` +
      `${durationMs / 1000} s`,
  );
  console.log(
    '| TCP fallback ping | seed | dead events about it | members seeing it dead at the end | ' +
      'probes rescued by the fallback | periods until all see it dead |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const fallbackPing of [true, false]) {
    for (const seed of seeds) {
      const result = runUdpBlocked(seed, memberCount, fallbackPing, durationMs);
      const periods = Number.isNaN(result.periodsUntilAllSeeDead)
        ? 'never'
        : result.periodsUntilAllSeeDead.toFixed(2);
      console.log(
        `| ${fallbackPing ? 'on' : 'off'} | ${seed} | ${result.deadEvents} | ` +
          `${result.observersSeeingDead} | ${result.fallbackRescues} | ${periods} |`,
      );
    }
  }
}

function load(): void {
  section('Load: steady-state traffic per member (no loss, no failures)');
  console.log(
    '| members | datagrams/member/s | datagram bytes/member/s | push-pull bytes/member/s |',
  );
  console.log('| ---: | ---: | ---: | ---: |');
  for (const memberCount of quick ? [10, 50, 100] : [10, 25, 50, 100, 200]) {
    const result = runLoad(1, memberCount, 60_000);
    console.log(
      `| ${memberCount} | ${result.packetsPerMemberPerSecond.toFixed(3)} | ` +
        `${result.bytesPerMemberPerSecond.toFixed(1)} | ${result.streamBytesPerMemberPerSecond.toFixed(1)} |`,
    );
  }
}

const startedMs = Date.now();
console.log(`# SWIM benchmark (${new Date().toISOString()}, ${cpus()[0]?.model ?? 'unknown CPU'})`);
console.log(`seeds: ${seeds.join(', ')}${quick ? ' (quick)' : ''}`);
convergence();
detection();
accuracy();
udpBlocked();
load();
console.log(`\n(wall time ${((Date.now() - startedMs) / 1000).toFixed(1)} s)`);
