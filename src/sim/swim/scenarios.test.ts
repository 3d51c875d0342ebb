/**
 * SWIM measured in the seeded simulator, with asserted bounds: convergence after a join storm,
 * detection of crashed members, fewer false positives with Lifeguard under loss and stalls, and
 * per-member load that does not grow with the cluster. Sizes are kept small enough for CI; the
 * full figures come from `npm run bench:swim`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultLanConfig } from '../../membership/core/types.js';
import {
  allSeeAllAlive,
  percentile,
  runAccuracy,
  runConvergence,
  runDetection,
  runLoad,
  runUdpBlocked,
  startCluster,
} from './scenarios.js';
import { SwimSimulation } from './simulation.js';

/** Every member sees all 100 alive within this many protocol periods of the first join. */
const CONVERGENCE_PERIODS_MAX = 10;

test('100 members joining through one seed converge within a bounded number of periods', () => {
  for (const seed of [1, 2]) {
    const result = runConvergence(seed, 100);
    assert.ok(result.converged, `seed ${seed} did not converge`);
    assert.ok(
      result.periods <= CONVERGENCE_PERIODS_MAX,
      `seed ${seed}: ${result.periods} periods > ${CONVERGENCE_PERIODS_MAX}`,
    );
  }
});

test('crashed members are detected by every live member', () => {
  const result = runDetection(3, 40, 3, 2);
  assert.equal(result.undetected, 0);
  assert.equal(result.periods.length, 6);
  // Upper bound: a full round-robin pass to be probed, the longest (unconfirmed) suspicion
  // timeout 6 * 4 * log10(40) ≈ 38 periods, and dissemination; confirmations make it far shorter.
  const suspicionMaxPeriods = 6 * 4 * Math.log10(40);
  assert.ok(percentile(result.periods, 1) <= suspicionMaxPeriods + 5, `${result.periods}`);
  // Several members probe a dead member each period, so suspicions get confirmed quickly and the
  // typical detection is close to the minimum timeout (4 * log10(40) ≈ 6.4 periods).
  assert.ok(percentile(result.periods, 0.5) <= 15, `${result.periods}`);
});

test('Lifeguard reduces false positives about healthy members under loss and stalls', () => {
  const options = {
    memberCount: 50,
    slowCount: 5,
    lossRate: 0.1,
    durationMs: 300_000,
    stalls: { meanGapMs: 3000, durationMsMin: 2000, durationMsMax: 10_000 },
    // Measured on UDP alone: the fallback ping would hide the loss-induced false positives.
    fallbackPing: false,
  };
  let off = 0;
  let on = 0;
  for (const seed of [1, 2]) {
    off += runAccuracy({ ...options, seed, lifeguard: false }).falsePositiveEventsHealthy;
    on += runAccuracy({ ...options, seed, lifeguard: true }).falsePositiveEventsHealthy;
  }
  assert.ok(off >= 10, `baseline produced only ${off} false positives; the scenario is too mild`);
  assert.ok(on * 3 <= off, `Lifeguard: ${on} vs baseline ${off}`);
});

test('per-member message load stays constant as the cluster grows', () => {
  const loads = [10, 50, 200].map((memberCount) => runLoad(5, memberCount, 30_000));
  const packets = loads.map((load) => load.packetsPerMemberPerSecond);
  const bytes = loads.map((load) => load.bytesPerMemberPerSecond);
  const spread = (values: number[]) => Math.max(...values) / Math.min(...values);
  assert.ok(spread(packets) <= 1.15, `datagrams/member/s: ${packets}`);
  assert.ok(spread(bytes) <= 1.3, `datagram bytes/member/s: ${bytes}`);
  // About one ping and one ack per member per period: memberlist's constant probe load.
  for (const value of packets) assert.ok(value > 1.8 && value < 2.5, `${value}`);
});

test('a member whose UDP is blocked but TCP works stays alive only with the fallback ping', () => {
  const withFallback = runUdpBlocked(6, 20, true, 120_000);
  assert.equal(withFallback.deadEvents, 0);
  assert.equal(withFallback.observersSeeingDead, 0);
  // Each of the 19 others probes it about once per 20 periods: some 100 rescues in 120 periods.
  assert.ok(withFallback.fallbackRescues >= 50, `${withFallback.fallbackRescues} rescues`);
  const without = runUdpBlocked(6, 20, false, 120_000);
  assert.equal(without.observersSeeingDead, 19);
  assert.equal(without.fallbackRescues, 0);
});

test('a simulation replays exactly from its seed, with invariants holding throughout', () => {
  const run = () => {
    const sim = new SwimSimulation({
      seed: 11,
      config: defaultLanConfig(),
      network: { lossRate: 0.05, latencyMsMin: 1, latencyMsMax: 5 },
      stalls: { meanGapMs: 5000, durationMsMin: 500, durationMsMax: 8000 },
      checkInvariants: true,
    });
    startCluster(sim, 20, 3);
    sim.runUntil(20_000);
    sim.crash('m3');
    sim.runUntil(60_000);
    return [...sim.members.values()].map((member) => JSON.stringify(member.swim.stats));
  };
  assert.deepEqual(run(), run());
});

test('a graceful leave is seen as left, not dead, by every member', () => {
  const sim = new SwimSimulation({
    seed: 4,
    config: defaultLanConfig(),
    network: { lossRate: 0.1, latencyMsMin: 1, latencyMsMax: 5 },
  });
  startCluster(sim, 30);
  sim.runUntil(60_000, () => allSeeAllAlive(sim));
  sim.leave('m7');
  sim.runUntil(sim.nowMs + 1000);
  sim.crash('m7'); // The process exits after leaving.
  const allSeeLeft = () =>
    sim.runningNames().every((name) => sim.members.get(name)!.swim.member('m7')?.state === 'left');
  assert.ok(sim.runUntil(sim.nowMs + 20_000, allSeeLeft), 'not every member saw m7 leave');
});
