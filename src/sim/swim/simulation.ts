/**
 * A seeded discrete-event simulator for the SWIM core: many `Swim` instances on a virtual network
 * with latency and packet loss, members that crash, slow members whose event loop stalls, and
 * members whose UDP is blocked.
 *
 * Two kinds of traffic, as in the real runtime: datagrams (probes, acks, gossip), which are lost at
 * `lossRate` and never reach or leave a member whose UDP is blocked, and stream traffic (push-pull
 * and fallback pings, TCP over shoal RPC in the runtime), which TCP makes reliable, so it is only
 * delayed by latency and only lost to a crashed member.
 *
 * A stalled member runs nothing until the stall ends; then, like Node's event loop, it runs its due
 * timers first and only afterwards reads the messages that queued up meanwhile. That ordering is what
 * makes a slow member wrongly suspect healthy ones, the failure mode Lifeguard addresses.
 */
import { createSeededRandom, type RandomSource } from '../../membership/core/random.js';
import { Swim } from '../../membership/core/swim.js';
import type {
  MembershipEvent,
  Message,
  Packet,
  StreamPingRequest,
  SwimConfig,
} from '../../membership/core/types.js';
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
  /** Datagrams to and from this member are dropped; its stream traffic still flows. */
  udpBlocked: boolean;
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
    }
  | {
      kind: 'streamPing';
      atMs: number;
      priority: 1;
      member: string;
      from: string;
      request: StreamPingRequest;
    }
  | {
      kind: 'streamPingResult';
      atMs: number;
      priority: 1;
      member: string;
      seq: number;
      acked: boolean;
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
  /** Datagrams dropped because the sender's or the receiver's UDP is blocked. */
  packetsBlocked = 0;
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
      udpBlocked: false,
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

  /** Blocks (or unblocks) UDP to and from a member, leaving its stream traffic alone. */
  blockUdp(name: string, blocked = true): void {
    this.members.get(name)!.udpBlocked = blocked;
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
    this.run(member, event);
    this.flush(member);
  }

  /** Hands one due event to a running, unstalled member's core. */
  private run(member: SimMember, event: SimEvent): void {
    switch (event.kind) {
      case 'tick':
        member.wakeAtMs = -1;
        member.swim.tick(this.nowMs);
        return;
      case 'deliver':
        for (const message of event.messages) {
          member.swim.receive(event.fromAddress, message, this.nowMs);
        }
        return;
      case 'streamPing': {
        // The answer goes back on the same (reliable) connection.
        const acked = member.swim.answerStreamPing(event.request.ping, this.nowMs);
        const seq = event.request.ping.seq;
        const atMs = this.nowMs + this.latencyMs();
        this.queue.push({
          kind: 'streamPingResult',
          atMs,
          priority: 1,
          member: event.from,
          seq,
          acked,
        });
        return;
      }
      case 'streamPingResult':
        member.swim.streamPingResult(event.seq, event.acked, this.nowMs);
        return;
      default:
        return;
    }
  }

  /** Sends a member's output onto the network and reschedules its wake-up. */
  private flush(member: SimMember): void {
    if (this.options.checkInvariants) member.swim.checkInvariants();
    const output = member.swim.drain();
    if (output.syncedFrom.length > 0) member.joinSeeds = [];
    for (const packet of output.packets) this.send(member.name, packet);
    for (const request of output.streamPings) this.sendStreamPing(member.name, request);
    for (const event of output.events) {
      for (const listener of this.listeners) listener({ observer: member.name, event });
    }
    const deadline = Math.max(member.swim.nextDeadlineMs(), this.nowMs);
    if (member.wakeAtMs === -1 || deadline < member.wakeAtMs) {
      member.wakeAtMs = deadline;
      this.queue.push({ kind: 'tick', atMs: deadline, priority: 0, member: member.name });
    }
  }

  private send(fromAddress: string, packet: Packet): void {
    const { toAddress, messages } = packet;
    const receiver = this.members.get(toAddress);
    if (receiver === undefined) return;
    if (!packet.stream) {
      if (receiver.udpBlocked || this.members.get(fromAddress)!.udpBlocked) {
        this.packetsBlocked++;
        return;
      }
      if (this.random.nextFloat() < this.options.network.lossRate) {
        this.packetsLost++;
        return;
      }
    }
    this.packetsDelivered++;
    this.queue.push({
      kind: 'deliver',
      atMs: this.nowMs + this.latencyMs(),
      priority: 1,
      member: toAddress,
      fromAddress,
      messages,
    });
  }

  /** A fallback ping: reliable like TCP, so only latency (and a crashed target) stops it. */
  private sendStreamPing(from: string, request: StreamPingRequest): void {
    if (!this.members.has(request.toAddress)) return;
    const atMs = this.nowMs + this.latencyMs();
    this.queue.push({
      kind: 'streamPing',
      atMs,
      priority: 1,
      member: request.toAddress,
      from,
      request,
    });
  }

  private latencyMs(): number {
    const { latencyMsMin, latencyMsMax } = this.options.network;
    return latencyMsMin + Math.floor(this.random.nextFloat() * (latencyMsMax - latencyMsMin + 1));
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
