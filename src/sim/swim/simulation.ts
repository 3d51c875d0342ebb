/**
 * A seeded discrete-event simulator for the SWIM core: many `Swim` instances on a virtual network
 * with latency and packet loss, members that crash, and slow members whose event loop stalls.
 *
 * A stalled member runs nothing until the stall ends; then, like Node's event loop, it runs its due
 * timers first and only afterwards reads the messages that queued up meanwhile. That ordering is what
 * makes a slow member wrongly suspect healthy ones, the failure mode Lifeguard addresses.
 */
import { createSeededRandom, type RandomSource } from '../../membership/core/random.js';
import { Swim } from '../../membership/core/swim.js';
import type { MembershipEvent, Message, SwimConfig } from '../../membership/core/types.js';
import { EventQueue } from './event-queue.js';

export interface NetworkOptions {
  /** Probability that a packet is lost, in [0, 1). */
  readonly lossRate: number;
  readonly latencyMsMin: number;
  readonly latencyMsMax: number;
}

export interface StallOptions {
  /** Mean time between stalls of a slow member. */
  readonly meanGapMs: number;
  readonly durationMsMin: number;
  readonly durationMsMax: number;
}

export interface SimulationOptions {
  readonly seed: number;
  readonly config: SwimConfig;
  readonly network: NetworkOptions;
  readonly stalls?: StallOptions;
  /** Run every member's `checkInvariants()` after each step (slow; for tests). */
  readonly checkInvariants?: boolean;
}

export interface SimMember {
  readonly name: string;
  readonly swim: Swim;
  crashed: boolean;
  slow: boolean;
  stalledUntilMs: number;
  /** Seeds to re-contact until a push-pull reply arrives (as the UDP runtime's join does). */
  joinSeeds: readonly string[];
  /** The tick event currently scheduled for this member (older ones are stale). */
  wakeAtMs: number;
}

/** A membership event as observed by one member. */
export interface ObservedEvent {
  readonly observer: string;
  readonly event: MembershipEvent;
}

type SimEvent =
  | { kind: 'tick'; atMs: number; priority: 0; member: string }
  | { kind: 'stall'; atMs: number; priority: 0; member: string }
  | { kind: 'joinRetry'; atMs: number; priority: 0; member: string }
  | {
      kind: 'deliver';
      atMs: number;
      priority: 1;
      member: string;
      fromAddress: string;
      messages: Message[];
    };

/** A joining member re-sends its join this often until a seed answers, as `Memberlist` does. */
export const JOIN_RETRY_MS = 500;

/** Most simulator events processed by one `runUntil` call, to stop a runaway scenario loudly. */
export const SIM_EVENTS_PER_RUN_MAX = 200_000_000;

export class SwimSimulation {
  nowMs = 0;
  readonly members = new Map<string, SimMember>();
  packetsDelivered = 0;
  packetsLost = 0;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly random: RandomSource;
  private readonly listeners: ((observed: ObservedEvent) => void)[] = [];

  constructor(readonly options: SimulationOptions) {
    this.random = createSeededRandom(options.seed);
  }

  /** Calls `listener` for every membership event any member emits. */
  onEvent(listener: (observed: ObservedEvent) => void): void {
    this.listeners.push(listener);
  }

  /** Starts a member (address = name) and, with seeds, has it join through them. */
  addMember(name: string, seeds: readonly string[] = [], slow = false): SimMember {
    const seed = Math.floor(this.random.nextFloat() * 2 ** 32);
    const swim = new Swim({
      name,
      address: name,
      config: this.options.config,
      random: createSeededRandom(seed),
      nowMs: this.nowMs,
    });
    const member: SimMember = {
      name,
      swim,
      crashed: false,
      slow,
      stalledUntilMs: 0,
      joinSeeds: seeds,
      wakeAtMs: -1,
    };
    this.members.set(name, member);
    if (seeds.length > 0) {
      swim.join(seeds, this.nowMs);
      this.queue.push({
        kind: 'joinRetry',
        atMs: this.nowMs + JOIN_RETRY_MS,
        priority: 0,
        member: name,
      });
    }
    this.flush(member);
    if (slow) this.scheduleStall(member);
    return member;
  }

  /** Crashes a member: it stops and everything sent to it is lost. */
  crash(name: string): void {
    this.members.get(name)!.crashed = true;
  }

  leave(name: string): void {
    const member = this.members.get(name)!;
    member.swim.leave(this.nowMs);
    this.flush(member);
  }

  /** Runs events until `untilMs`, or until `stop()` returns true (checked every `checkEveryMs`). */
  runUntil(untilMs: number, stop?: () => boolean, checkEveryMs = 100): boolean {
    let nextCheckMs = this.nowMs;
    for (let processed = 0; processed < SIM_EVENTS_PER_RUN_MAX; processed++) {
      if (stop !== undefined && this.nowMs >= nextCheckMs) {
        if (stop()) return true;
        nextCheckMs = this.nowMs + checkEveryMs;
      }
      const next = this.queue.peek();
      if (next === undefined || next.atMs > untilMs) {
        this.nowMs = untilMs;
        return stop?.() ?? false;
      }
      this.queue.pop();
      this.nowMs = next.atMs;
      this.process(next);
    }
    throw new Error('simulation exceeded SIM_EVENTS_PER_RUN_MAX events');
  }

  /** The names of members that are running (not crashed, not left). */
  runningNames(): string[] {
    return [...this.members.values()]
      .filter((member) => !member.crashed && member.swim.member(member.name)?.state !== 'left')
      .map((member) => member.name);
  }

  private process(event: SimEvent): void {
    const member = this.members.get(event.member)!;
    if (member.crashed) return;
    if (event.kind === 'stall') {
      const { durationMsMin, durationMsMax } = this.options.stalls!;
      const duration = durationMsMin + this.random.nextFloat() * (durationMsMax - durationMsMin);
      member.stalledUntilMs = this.nowMs + Math.floor(duration);
      this.scheduleStall(member);
      return;
    }
    if (event.kind === 'tick' && event.atMs !== member.wakeAtMs) return; // Stale wake-up.
    if (event.kind === 'joinRetry') {
      if (member.joinSeeds.length === 0) return;
      member.swim.join(member.joinSeeds, this.nowMs);
      this.queue.push({ ...event, atMs: this.nowMs + JOIN_RETRY_MS });
      this.flush(member);
      return;
    }
    if (this.nowMs < member.stalledUntilMs) {
      // Blocked event loop: everything waits; timers run first when it unblocks (priority 0).
      if (event.kind === 'tick') member.wakeAtMs = member.stalledUntilMs;
      this.queue.push({ ...event, atMs: member.stalledUntilMs });
      return;
    }
    if (event.kind === 'tick') {
      member.wakeAtMs = -1;
      member.swim.tick(this.nowMs);
    } else {
      for (const message of event.messages) {
        member.swim.receive(event.fromAddress, message, this.nowMs);
      }
    }
    this.flush(member);
  }

  /** Sends a member's output onto the network and reschedules its wake-up. */
  private flush(member: SimMember): void {
    if (this.options.checkInvariants) member.swim.checkInvariants();
    const output = member.swim.drain();
    if (output.syncedFrom.length > 0) member.joinSeeds = [];
    for (const packet of output.packets) this.send(member.name, packet.toAddress, packet.messages);
    for (const event of output.events) {
      for (const listener of this.listeners) listener({ observer: member.name, event });
    }
    const deadline = Math.max(member.swim.nextDeadlineMs(), this.nowMs);
    if (member.wakeAtMs === -1 || deadline < member.wakeAtMs) {
      member.wakeAtMs = deadline;
      this.queue.push({ kind: 'tick', atMs: deadline, priority: 0, member: member.name });
    }
  }

  private send(fromAddress: string, toAddress: string, messages: Message[]): void {
    const { lossRate, latencyMsMin, latencyMsMax } = this.options.network;
    if (!this.members.has(toAddress)) return;
    if (this.random.nextFloat() < lossRate) {
      this.packetsLost++;
      return;
    }
    this.packetsDelivered++;
    const latencyMs =
      latencyMsMin + Math.floor(this.random.nextFloat() * (latencyMsMax - latencyMsMin + 1));
    this.queue.push({
      kind: 'deliver',
      atMs: this.nowMs + latencyMs,
      priority: 1,
      member: toAddress,
      fromAddress,
      messages,
    });
  }

  private scheduleStall(member: SimMember): void {
    const stalls = this.options.stalls;
    if (stalls === undefined) return;
    // Exponentially distributed gaps: stalls arrive as a Poisson process.
    const gapMs = Math.floor(-Math.log(1 - this.random.nextFloat()) * stalls.meanGapMs);
    const atMs = Math.max(this.nowMs, member.stalledUntilMs) + gapMs;
    this.queue.push({ kind: 'stall', atMs, priority: 0, member: member.name });
  }
}
