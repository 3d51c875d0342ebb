/**
 * The SWIM measurements, as seeded simulator scenarios shared by the tests (small sizes) and
 * `npm run bench:swim` (full sizes): convergence after a join storm, detection time of crashed
 * members, false positives under loss and slow members with and without Lifeguard, and per-member
 * message load as the cluster grows. Times are reported in protocol periods (probe intervals).
 */
import {
  defaultLanConfig,
  type LifeguardOptions,
  lifeguardOff,
  type SwimConfig,
} from '../../membership/core/types.js';
import { type NetworkOptions, type StallOptions, SwimSimulation } from './simulation.js';

export const LAN_NETWORK: NetworkOptions = { lossRate: 0, latencyMsMin: 1, latencyMsMax: 5 };

function memberName(index: number): string {
  return `m${index}`;
}

/** True when every running member sees every running member alive. */
export function allSeeAllAlive(sim: SwimSimulation): boolean {
  const running = sim.runningNames();
  for (const name of running) {
    const swim = sim.members.get(name)!.swim;
    for (const other of running) {
      if (swim.member(other)?.state !== 'alive') return false;
    }
  }
  return true;
}

/** Starts `memberCount` members that all join through `m0` within the first probe period. */
export function startCluster(sim: SwimSimulation, memberCount: number, slowCount = 0): void {
  sim.addMember(memberName(0));
  for (let index = 1; index < memberCount; index++) {
    sim.runUntil(sim.nowMs + Math.floor(1000 / memberCount));
    sim.addMember(memberName(index), [memberName(0)], index > memberCount - 1 - slowCount);
  }
}

export interface ConvergenceResult {
  readonly memberCount: number;
  readonly converged: boolean;
  /** Protocol periods from the first join until every member saw every member alive. */
  readonly periods: number;
}

export function runConvergence(seed: number, memberCount: number): ConvergenceResult {
  const config = defaultLanConfig();
  const sim = new SwimSimulation({ seed, config, network: LAN_NETWORK });
  startCluster(sim, memberCount);
  const converged = sim.runUntil(120_000, () => allSeeAllAlive(sim), 50);
  return { memberCount, converged, periods: sim.nowMs / config.probeIntervalMs };
}

export interface DetectionResult {
  readonly memberCount: number;
  /** Per crashed member: periods from the crash until every running member saw it dead. */
  readonly periods: number[];
  readonly undetected: number;
}

/** Crashes `killsPerRound` members per round, `rounds` times, in a converged cluster. */
export function runDetection(
  seed: number,
  memberCount: number,
  killsPerRound: number,
  rounds: number,
  lifeguard = true,
): DetectionResult {
  const config = lifeguard ? defaultLanConfig() : defaultLanConfig({ lifeguard: lifeguardOff });
  const sim = new SwimSimulation({ seed, config, network: LAN_NETWORK });
  startCluster(sim, memberCount);
  sim.runUntil(120_000, () => allSeeAllAlive(sim), 100);
  const periods: number[] = [];
  let undetected = 0;
  let nextVictim = memberCount - 1;
  for (let round = 0; round < rounds; round++) {
    const victims: string[] = [];
    for (let kill = 0; kill < killsPerRound; kill++) victims.push(memberName(nextVictim--));
    const crashMs = sim.nowMs;
    for (const victim of victims) sim.crash(victim);
    const detectedAtMs = new Map<string, number>();
    const seenByAll = () => {
      const running = sim.runningNames();
      for (const victim of victims) {
        if (detectedAtMs.has(victim)) continue;
        const all = running.every((name) => {
          const state = sim.members.get(name)!.swim.member(victim)?.state;
          return state === 'dead' || state === undefined;
        });
        if (all) detectedAtMs.set(victim, sim.nowMs);
      }
      return detectedAtMs.size === victims.length;
    };
    sim.runUntil(crashMs + 300_000, seenByAll, 50);
    for (const victim of victims) {
      const atMs = detectedAtMs.get(victim);
      if (atMs === undefined) undetected++;
      else periods.push((atMs - crashMs) / config.probeIntervalMs);
    }
  }
  return { memberCount, periods, undetected };
}

export interface AccuracyOptions {
  readonly seed: number;
  readonly memberCount: number;
  readonly slowCount: number;
  readonly lossRate: number;
  readonly durationMs: number;
  /** true: all refinements; false: none; or a selection. */
  readonly lifeguard: boolean | LifeguardOptions;
  readonly stalls: StallOptions;
  /**
   * The TCP fallback ping. It hides loss-induced false positives almost entirely (the stream is
   * reliable), so Lifeguard's own effect is measured with it off, as in the Lifeguard paper.
   */
  readonly fallbackPing: boolean;
}

export interface AccuracyResult {
  /** `dead` events, at any observer, about a member that was running. */
  readonly falsePositiveEvents: number;
  /** Of those, events about healthy (not slow) members. */
  readonly falsePositiveEventsHealthy: number;
  /** Distinct running members that some observer declared dead at least once. */
  readonly falselyDeclaredMembers: number;
  readonly suspicionsStarted: number;
  readonly refutations: number;
}

/** Runs a converged cluster with loss and stalling members and counts false death declarations. */
export function runAccuracy(options: AccuracyOptions): AccuracyResult {
  const base = defaultLanConfig();
  const lifeguard =
    options.lifeguard === true
      ? base.lifeguard
      : options.lifeguard === false
        ? lifeguardOff
        : options.lifeguard;
  const config: SwimConfig = { ...base, lifeguard, fallbackPing: options.fallbackPing };
  const sim = new SwimSimulation({
    seed: options.seed,
    config,
    network: { ...LAN_NETWORK, lossRate: options.lossRate },
    stalls: options.stalls,
  });
  startCluster(sim, options.memberCount, options.slowCount);
  sim.runUntil(sim.nowMs + 30_000);
  let falsePositiveEvents = 0;
  let falsePositiveEventsHealthy = 0;
  const declared = new Set<string>();
  sim.onEvent(({ event }) => {
    if (event.type !== 'dead') return;
    const target = sim.members.get(event.member.name);
    if (target === undefined || target.crashed) return;
    falsePositiveEvents++;
    if (!target.slow) falsePositiveEventsHealthy++;
    declared.add(target.name);
  });
  const before = sumStats(sim);
  sim.runUntil(sim.nowMs + options.durationMs);
  const after = sumStats(sim);
  return {
    falsePositiveEvents,
    falsePositiveEventsHealthy,
    falselyDeclaredMembers: declared.size,
    suspicionsStarted: after.suspicionsStarted - before.suspicionsStarted,
    refutations: after.refutations - before.refutations,
  };
}

function sumStats(sim: SwimSimulation) {
  let suspicionsStarted = 0;
  let refutations = 0;
  let packetsSent = 0;
  let bytesSent = 0;
  let streamBytesSent = 0;
  for (const member of sim.members.values()) {
    suspicionsStarted += member.swim.stats.suspicionsStarted;
    refutations += member.swim.stats.refutations;
    packetsSent += member.swim.stats.packetsSent;
    bytesSent += member.swim.stats.bytesSent;
    streamBytesSent += member.swim.stats.streamBytesSent;
  }
  return { suspicionsStarted, refutations, packetsSent, bytesSent, streamBytesSent };
}

export interface LoadResult {
  readonly memberCount: number;
  readonly packetsPerMemberPerSecond: number;
  /** Datagram bytes (probes, acks, gossip). */
  readonly bytesPerMemberPerSecond: number;
  /** Push-pull bytes (a stream in memberlist; grows with the cluster's state, O(n / log n)). */
  readonly streamBytesPerMemberPerSecond: number;
}

/** Per-member traffic of a converged, quiet cluster over `windowMs`. */
export function runLoad(seed: number, memberCount: number, windowMs: number): LoadResult {
  const config = defaultLanConfig();
  const sim = new SwimSimulation({ seed, config, network: LAN_NETWORK });
  startCluster(sim, memberCount);
  sim.runUntil(120_000, () => allSeeAllAlive(sim), 200);
  // Let the join gossip drain before measuring the steady state.
  sim.runUntil(sim.nowMs + 20_000);
  const before = sumStats(sim);
  sim.runUntil(sim.nowMs + windowMs);
  const after = sumStats(sim);
  const memberSeconds = (memberCount * windowMs) / 1000;
  return {
    memberCount,
    packetsPerMemberPerSecond: (after.packetsSent - before.packetsSent) / memberSeconds,
    bytesPerMemberPerSecond: (after.bytesSent - before.bytesSent) / memberSeconds,
    streamBytesPerMemberPerSecond: (after.streamBytesSent - before.streamBytesSent) / memberSeconds,
  };
}

export interface UdpBlockedResult {
  readonly memberCount: number;
  readonly fallbackPing: boolean;
  /** Running members that saw the blocked member dead at the end. */
  readonly observersSeeingDead: number;
  /** `dead` events about the blocked member, at any observer. */
  readonly deadEvents: number;
  /** Probes of the blocked member that only the fallback ping saved. */
  readonly fallbackRescues: number;
  /** Periods from the block until every other member saw it dead (NaN if that never happened). */
  readonly periodsUntilAllSeeDead: number;
}

/**
 * Blocks UDP to and from one member of a converged cluster (its TCP still works) and runs for
 * `durationMs`: with the fallback ping it must stay alive; without, it is declared dead.
 */
export function runUdpBlocked(
  seed: number,
  memberCount: number,
  fallbackPing: boolean,
  durationMs: number,
): UdpBlockedResult {
  const config = defaultLanConfig({ fallbackPing });
  const sim = new SwimSimulation({ seed, config, network: LAN_NETWORK, checkInvariants: true });
  startCluster(sim, memberCount);
  sim.runUntil(120_000, () => allSeeAllAlive(sim), 100);
  const blocked = memberName(memberCount - 1);
  const others = sim.runningNames().filter((name) => name !== blocked);
  let deadEvents = 0;
  sim.onEvent(({ event }) => {
    if (event.type === 'dead' && event.member.name === blocked) deadEvents++;
  });
  const rescuesBefore = others.reduce(
    (total, name) => total + sim.members.get(name)!.swim.stats.fallbackPingRescues,
    0,
  );
  const blockedAtMs = sim.nowMs;
  sim.blockUdp(blocked);
  const seeDead = () =>
    others.filter((name) => sim.members.get(name)!.swim.member(blocked)?.state === 'dead').length;
  const allSeeDead = sim.runUntil(blockedAtMs + durationMs, () => seeDead() === others.length, 100);
  const periodsUntilAllSeeDead = allSeeDead
    ? (sim.nowMs - blockedAtMs) / config.probeIntervalMs
    : Number.NaN;
  sim.runUntil(blockedAtMs + durationMs);
  const rescuesAfter = others.reduce(
    (total, name) => total + sim.members.get(name)!.swim.stats.fallbackPingRescues,
    0,
  );
  return {
    memberCount,
    fallbackPing,
    observersSeeingDead: seeDead(),
    deadEvents,
    fallbackRescues: rescuesAfter - rescuesBefore,
    periodsUntilAllSeeDead,
  };
}

/** The value below which `fraction` of `values` fall (nearest rank). */
export function percentile(values: readonly number[], fraction: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[rank]!;
}
