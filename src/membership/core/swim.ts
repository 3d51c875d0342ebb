/**
 * The SWIM protocol state machine with Lifeguard's refinements, modelled on HashiCorp's memberlist.
 *
 * It is pure and deterministic: no I/O, no clock, no timers of its own. The driver (the UDP runtime
 * or the simulator) must, in this order:
 *   1. call `tick(nowMs)` when `nextDeadlineMs()` has passed, and `receive(fromAddress, message,
 *      nowMs)` for every message that arrives (already validated with `parseMessage`);
 *   2. after each call, `drain()` the output and send every packet to its address (a packet's
 *      messages fit one datagram of `config.datagramBytesMax` bytes, except `stream` packets, which
 *      carry push-pull state), start every stream ping and deliver the membership events;
 *   3. report each stream ping's outcome with `streamPingResult` when it is known;
 *   4. answer push-pull and ping requests that arrive on its stream transport (if it has one) with
 *      `answerPushPull` and `answerStreamPing`;
 *   5. schedule its next wake-up at `nextDeadlineMs()`.
 * Time only moves forward; every call takes the driver's current time in milliseconds.
 *
 * Protocol summary. Every probe interval (scaled by the local health multiplier) the member pings
 * the next member of a shuffled round-robin order; without an ack within the probe timeout it asks
 * `indirectChecks` members to ping the target for it (ping-req), and those answer with a nack when
 * the target stays silent; at the same moment it pings the target over a reliable stream
 * (memberlist's TCP fallback ping), if `config.fallbackPing` is set. Without any ack by the end of
 * the interval, on either path, the target becomes suspect.
 * A suspicion ends as dead after a timeout that shrinks as other members confirm it, unless the
 * suspected member refutes it by gossiping a higher incarnation. Membership updates ride on every
 * outgoing packet and on periodic gossip to `gossipNodes` members; a periodic push-pull exchange
 * of full state repairs whatever gossip missed and is how a new member joins.
 */
import { Awareness } from './awareness.js';
import { BroadcastQueue, retransmitLimit } from './broadcast-queue.js';
import { type RandomSource, randomIndex, shuffleInPlace } from './random.js';
import { msgpackSizeBytes } from './size.js';
import {
  confirmSuspicion,
  expectedConfirmations,
  type Suspicion,
  startSuspicion,
  suspicionMinTimeoutMs,
} from './suspicion.js';
import {
  type AliveMessage,
  type BroadcastMessage,
  type DeadMessage,
  defaultLanConfig,
  META_BYTES_MAX,
  MemberState,
  type MembershipEvent,
  type MembershipEventType,
  type MemberView,
  type Message,
  memberStateNames,
  type Packet,
  type PingMessage,
  type PingReqMessage,
  PUSH_PULL_BYTES_MAX,
  type PushPullEntry,
  type PushPullMessage,
  type StreamPingRequest,
  type SuspectMessage,
  type SwimConfig,
} from './types.js';
import { PUSH_PULL_ENTRIES_MAX } from './validate.js';

/** Most members one instance tracks; updates about further members are dropped and counted. */
export const MEMBERS_MAX = 8192;
/** Most ping-reqs relayed at once; further ones are dropped (the requester then gets no answer). */
export const RELAYS_MAX = 256;
/** Most packets and events buffered between two `drain()` calls; beyond it the core throws. */
export const OUTPUT_MAX = 65_536;
/** Bytes reserved in every datagram for the compound array header (3 bytes covers 65535 parts). */
const COMPOUND_HEADER_BYTES = 3;
/** A relay sends its nack at this fraction of the probe timeout, so it reaches the requester. */
const NACK_FRACTION = 0.8;

interface MemberRecord {
  readonly name: string;
  address: string;
  incarnation: number;
  state: MemberState;
  meta: Uint8Array;
  stateChangeMs: number;
  /** Invariant: non-null exactly when `state === suspect`. */
  suspicion: Suspicion | null;
}

interface ProbeInFlight {
  readonly seq: number;
  readonly target: string;
  readonly indirectAtMs: number;
  readonly endAtMs: number;
  acked: boolean;
  /** The target acked the stream fallback ping (it is reachable, though maybe not over UDP). */
  fallbackAcked: boolean;
  indirectSent: boolean;
  nacksExpected: number;
  nacksReceived: number;
}

interface Relay {
  readonly requesterAddress: string;
  readonly requesterSeq: number;
  readonly wantsNack: boolean;
  readonly nackAtMs: number;
  readonly expireAtMs: number;
}

export interface SwimOptions {
  readonly name: string;
  readonly address: string;
  readonly meta?: Uint8Array;
  readonly config?: SwimConfig;
  readonly random: RandomSource;
  readonly nowMs: number;
}

export interface SwimOutput {
  readonly packets: Packet[];
  readonly events: MembershipEvent[];
  /** Addresses whose push-pull reply arrived since the last drain (a join succeeded through them). */
  readonly syncedFrom: string[];
  /** Fallback pings to send over the stream transport. */
  readonly streamPings: StreamPingRequest[];
  /**
   * Members whose probe got no ack over datagrams but an ack over the stream since the last drain:
   * they stay alive, but the network between here and there likely drops UDP (worth a warning).
   */
  readonly reachedOnlyByStream: string[];
}

export interface SwimStats {
  packetsSent: number;
  messagesSent: number;
  /** Datagram bytes (compound messages), as msgpack-encoded. */
  bytesSent: number;
  /** Push-pull bytes, which travel on a stream when the transport has one. */
  streamBytesSent: number;
  messagesReceived: number;
  probes: number;
  probeFailures: number;
  indirectProbes: number;
  nacksReceived: number;
  refutations: number;
  suspicionsStarted: number;
  membersDropped: number;
  relaysDropped: number;
  misaddressedPings: number;
  /** Stream fallback pings asked for, acked, and probes they saved from failing. */
  fallbackPings: number;
  fallbackPingAcks: number;
  fallbackPingRescues: number;
  /** Stream pings answered (this member was the target). */
  streamPingsAnswered: number;
  /** Members left out of push-pull exchanges because the state exceeded PUSH_PULL_BYTES_MAX. */
  pushPullEntriesOmitted: number;
}

export class Swim {
  readonly config: SwimConfig;
  private readonly random: RandomSource;
  private readonly self: MemberRecord;
  private readonly membersByName = new Map<string, MemberRecord>();
  /** Round-robin probe order. Invariant: holds exactly the names of `membersByName` except self. */
  private probeOrder: string[] = [];
  private probeIndex = 0;
  private readonly suspected = new Set<string>();
  private readonly broadcasts = new BroadcastQueue();
  private readonly awareness: Awareness;
  private readonly relays = new Map<number, Relay>();
  private probe: ProbeInFlight | null = null;
  private nextSeq = 1;
  private nowMs: number;
  private nextProbeAtMs: number;
  private nextGossipAtMs: number;
  private nextPushPullAtMs: number;
  private leftAtMs: number | null = null;
  private packets: Packet[] = [];
  private events: MembershipEvent[] = [];
  private syncedFrom: string[] = [];
  private streamPings: StreamPingRequest[] = [];
  private reachedOnlyByStream: string[] = [];
  readonly stats: SwimStats = {
    packetsSent: 0,
    messagesSent: 0,
    bytesSent: 0,
    streamBytesSent: 0,
    messagesReceived: 0,
    probes: 0,
    probeFailures: 0,
    indirectProbes: 0,
    nacksReceived: 0,
    refutations: 0,
    suspicionsStarted: 0,
    membersDropped: 0,
    relaysDropped: 0,
    misaddressedPings: 0,
    fallbackPings: 0,
    fallbackPingAcks: 0,
    fallbackPingRescues: 0,
    streamPingsAnswered: 0,
    pushPullEntriesOmitted: 0,
  };

  constructor(options: SwimOptions) {
    this.config = options.config ?? defaultLanConfig();
    this.random = options.random;
    this.nowMs = options.nowMs;
    const meta = options.meta ?? new Uint8Array(0);
    if (meta.byteLength > META_BYTES_MAX) throw new Error(`meta exceeds ${META_BYTES_MAX} bytes`);
    this.self = {
      name: options.name,
      address: options.address,
      incarnation: 0,
      state: MemberState.alive,
      meta,
      stateChangeMs: options.nowMs,
      suspicion: null,
    };
    this.membersByName.set(this.self.name, this.self);
    this.awareness = new Awareness(this.config.awarenessMaxMultiplier);
    // Stagger the periodic work so members started together do not probe in lockstep.
    const jitter = (periodMs: number) =>
      this.nowMs + Math.floor(this.random.nextFloat() * periodMs);
    this.nextProbeAtMs = jitter(this.config.probeIntervalMs);
    this.nextGossipAtMs = jitter(this.config.gossipIntervalMs);
    this.nextPushPullAtMs = jitter(this.pushPullIntervalMs());
    this.broadcasts.enqueue(this.selfAlive());
  }

  // ---------------------------------------------------------------- public API

  get name(): string {
    return this.self.name;
  }

  /** The local health score (0 = healthy; probing is slowed by `score + 1`). */
  get healthScore(): number {
    return this.awareness.score;
  }

  get incarnation(): number {
    return this.self.incarnation;
  }

  /**
   * How many times the leave notice has been sent since `leave()` (Infinity once it has been sent
   * as often as any broadcast is), or 0 before `leave()`.
   */
  get leaveTransmits(): number {
    if (this.leftAtMs === null) return 0;
    return this.broadcasts.transmitsOf(this.self.name) ?? Number.POSITIVE_INFINITY;
  }

  /** Every member known, this one included. */
  members(): MemberView[] {
    return [...this.membersByName.values()].map(viewOf);
  }

  member(name: string): MemberView | undefined {
    const record = this.membersByName.get(name);
    return record === undefined ? undefined : viewOf(record);
  }

  /** How many times the queued update about `name` was sent (for tests and diagnostics). */
  broadcastTransmits(name: string): number | undefined {
    return this.broadcasts.transmitsOf(name);
  }

  /** Contacts the seeds with a push-pull join; their replies carry the cluster's state. */
  join(seedAddresses: readonly string[], nowMs: number): void {
    this.advance(nowMs);
    for (const address of seedAddresses) {
      if (address === this.self.address) continue;
      this.emitPacket(address, [this.pushPullMessage(true, true)], true);
    }
  }

  /** Gossips new metadata, versioned by a fresh incarnation. */
  updateMeta(meta: Uint8Array, nowMs: number): void {
    this.advance(nowMs);
    if (meta.byteLength > META_BYTES_MAX) throw new Error(`meta exceeds ${META_BYTES_MAX} bytes`);
    this.self.meta = meta;
    this.self.incarnation++;
    this.broadcasts.enqueue(this.selfAlive());
  }

  /** Leaves gracefully: gossips a death notice about itself and stops probing. */
  leave(nowMs: number): void {
    this.advance(nowMs);
    if (this.leftAtMs !== null) return;
    this.leftAtMs = nowMs;
    this.self.incarnation++;
    this.self.state = MemberState.left;
    this.self.stateChangeMs = nowMs;
    const notice: DeadMessage = {
      type: 'dead',
      name: this.self.name,
      incarnation: this.self.incarnation,
      from: this.self.name,
    };
    this.broadcasts.enqueue(notice);
    this.gossip();
  }

  /** Throws if an internal invariant is broken (for tests and the simulator; O(members)). */
  checkInvariants(): void {
    const fail = (what: string) => {
      throw new Error(`swim ${this.self.name}: invariant broken: ${what}`);
    };
    if (this.probeOrder.length !== this.membersByName.size - 1) fail('probe order size');
    for (const name of this.probeOrder) {
      if (name === this.self.name || !this.membersByName.has(name)) fail(`probe order has ${name}`);
    }
    for (const record of this.membersByName.values()) {
      const suspect = record.state === MemberState.suspect;
      if (suspect !== (record.suspicion !== null)) fail(`suspicion of ${record.name}`);
      if (suspect !== this.suspected.has(record.name)) fail(`suspected set for ${record.name}`);
    }
    if (this.awareness.score < 0 || this.awareness.score >= this.config.awarenessMaxMultiplier) {
      fail('health score range');
    }
  }

  /** Takes everything produced since the last drain. */
  drain(): SwimOutput {
    const output = {
      packets: this.packets,
      events: this.events,
      syncedFrom: this.syncedFrom,
      streamPings: this.streamPings,
      reachedOnlyByStream: this.reachedOnlyByStream,
    };
    this.packets = [];
    this.events = [];
    this.syncedFrom = [];
    this.streamPings = [];
    this.reachedOnlyByStream = [];
    return output;
  }

  /**
   * The outcome of a fallback ping the core asked for. An ack for the probe in flight keeps its
   * target from being suspected when the probe period ends; anything else is only counted.
   */
  streamPingResult(seq: number, acked: boolean, nowMs: number): void {
    this.advance(nowMs);
    if (!acked) return;
    this.stats.fallbackPingAcks++;
    if (this.probe !== null && this.probe.seq === seq) this.probe.fallbackAcked = true;
  }

  /**
   * Answers a ping that arrived over the stream transport: true (ack) when it is addressed to this
   * member. Unlike a datagram ping, the answer travels back on the same stream, not as a packet.
   */
  answerStreamPing(ping: PingMessage, nowMs: number): boolean {
    this.advance(nowMs);
    this.stats.messagesReceived++;
    if (ping.target !== this.self.name) {
      this.stats.misaddressedPings++;
      return false;
    }
    this.stats.streamPingsAnswered++;
    return true;
  }

  /**
   * Merges a push-pull request that arrived over the stream transport and returns this member's
   * state when the sender asked for it (null otherwise), to be sent back on the same stream.
   */
  answerPushPull(message: PushPullMessage, nowMs: number): PushPullMessage | null {
    this.advance(nowMs);
    this.stats.messagesReceived++;
    const reply = message.reply ? this.pushPullMessage(message.join, false) : null;
    if (reply !== null) this.stats.streamBytesSent += msgpackSizeBytes(reply);
    for (const entry of message.states) this.mergeEntry(entry);
    return reply;
  }

  /** The earliest time at which `tick` has work to do. */
  nextDeadlineMs(): number {
    let deadline = Math.min(this.nextGossipAtMs, this.nextPushPullAtMs);
    if (this.leftAtMs === null) deadline = Math.min(deadline, this.nextProbeAtMs);
    if (this.probe !== null) {
      const waitsForIndirect = !this.probe.acked && !this.probe.indirectSent;
      const probeAt = waitsForIndirect ? this.probe.indirectAtMs : this.probe.endAtMs;
      deadline = Math.min(deadline, probeAt);
    }
    for (const relay of this.relays.values()) {
      deadline = Math.min(deadline, relay.wantsNack ? relay.nackAtMs : relay.expireAtMs);
    }
    for (const name of this.suspected) {
      const suspicion = this.membersByName.get(name)?.suspicion;
      if (suspicion) deadline = Math.min(deadline, suspicion.deadlineMs);
    }
    return deadline;
  }

  /** Runs every timer that is due at `nowMs`. */
  tick(nowMs: number): void {
    this.advance(nowMs);
    this.runProbeTimers();
    this.runRelayTimers();
    this.runSuspicionTimers();
    if (this.leftAtMs === null && nowMs >= this.nextProbeAtMs) this.startProbe();
    if (nowMs >= this.nextGossipAtMs) {
      this.nextGossipAtMs = nextPeriodic(this.nextGossipAtMs, this.config.gossipIntervalMs, nowMs);
      this.gossip();
    }
    if (nowMs >= this.nextPushPullAtMs) {
      this.nextPushPullAtMs = nextPeriodic(this.nextPushPullAtMs, this.pushPullIntervalMs(), nowMs);
      if (this.leftAtMs === null) this.startPushPull();
    }
  }

  /** Handles one validated message that arrived from `fromAddress`. */
  receive(fromAddress: string, message: Message, nowMs: number): void {
    this.advance(nowMs);
    this.stats.messagesReceived++;
    switch (message.type) {
      case 'ping':
        if (message.target !== this.self.name) {
          this.stats.misaddressedPings++;
          return;
        }
        this.emitPacket(fromAddress, [{ type: 'ack', seq: message.seq }], false);
        return;
      case 'pingReq':
        this.relayPing(fromAddress, message);
        return;
      case 'ack':
        this.handleAck(message.seq);
        return;
      case 'nack':
        if (this.probe !== null && this.probe.seq === message.seq) {
          this.probe.nacksReceived++;
          this.stats.nacksReceived++;
        }
        return;
      case 'alive':
        this.handleAlive(message);
        return;
      case 'suspect':
        this.handleSuspect(message);
        return;
      case 'dead':
        this.handleDead(message);
        return;
      case 'pushPull':
        this.handlePushPull(fromAddress, message);
        return;
    }
  }

  // ---------------------------------------------------------------- probing

  private startProbe(): void {
    this.nextProbeAtMs = this.nowMs + this.scaledMs(this.config.probeIntervalMs);
    const target = this.nextProbeTarget();
    if (target === null) return;
    const seq = this.nextSeq++;
    this.stats.probes++;
    this.probe = {
      seq,
      target: target.name,
      indirectAtMs: this.nowMs + this.config.probeTimeoutMs,
      endAtMs: this.nextProbeAtMs,
      acked: false,
      fallbackAcked: false,
      indirectSent: false,
      nacksExpected: 0,
      nacksReceived: 0,
    };
    const messages: Message[] = [];
    // Buddy system: tell a suspected member directly, so it can refute without waiting for gossip.
    // The suspicion goes first so that the refutation already rides on the ack.
    if (this.config.lifeguard.buddySystem && target.state === MemberState.suspect) {
      messages.push(this.suspectMessage(target));
    }
    messages.push({
      type: 'ping',
      seq,
      target: target.name,
      source: this.self.name,
      sourceAddress: this.self.address,
    });
    this.emitPacket(target.address, messages, false);
  }

  /** The next alive or suspect member in round-robin order, reshuffling after each full pass. */
  private nextProbeTarget(): MemberRecord | null {
    for (let checked = 0; checked <= this.probeOrder.length; checked++) {
      if (this.probeIndex >= this.probeOrder.length) {
        this.resetProbeOrder();
        if (this.probeOrder.length === 0) return null;
      }
      const record = this.membersByName.get(this.probeOrder[this.probeIndex++]!)!;
      if (record.state === MemberState.alive || record.state === MemberState.suspect) return record;
    }
    return null;
  }

  /** Forgets members dead for longer than `gossipToTheDeadMs`, then reshuffles the order. */
  private resetProbeOrder(): void {
    const forgetBeforeMs = this.nowMs - this.config.gossipToTheDeadMs;
    this.probeOrder = this.probeOrder.filter((name) => {
      const record = this.membersByName.get(name)!;
      const gone = record.state === MemberState.dead || record.state === MemberState.left;
      if (gone && record.stateChangeMs < forgetBeforeMs) {
        this.membersByName.delete(name);
        return false;
      }
      return true;
    });
    shuffleInPlace(this.random, this.probeOrder);
    this.probeIndex = 0;
  }

  private runProbeTimers(): void {
    const probe = this.probe;
    if (probe === null) return;
    if (!probe.acked && !probe.indirectSent && this.nowMs >= probe.indirectAtMs) {
      probe.indirectSent = true;
      this.sendIndirectPings(probe);
    }
    if (this.nowMs >= probe.endAtMs) {
      this.probe = null;
      if (probe.acked) return;
      if (probe.fallbackAcked) {
        // Reachable over the stream only: not a failure of the target, and no evidence about our
        // own health either way, so neither suspicion nor a health score change (as memberlist).
        this.stats.fallbackPingRescues++;
        this.reachedOnlyByStream.push(probe.target);
        return;
      }
      this.failProbe(probe);
    }
  }

  private sendIndirectPings(probe: ProbeInFlight): void {
    const target = this.membersByName.get(probe.target);
    if (target === undefined) return;
    if (this.config.fallbackPing) this.sendFallbackPing(probe, target);
    const helpers = this.randomMembers(
      this.config.indirectChecks,
      (record) => record.state === MemberState.alive && record.name !== probe.target,
    );
    const wantsNack = this.config.lifeguard.localHealthAwareness;
    for (const helper of helpers) {
      this.stats.indirectProbes++;
      const request: PingReqMessage = {
        type: 'pingReq',
        seq: probe.seq,
        target: target.name,
        targetAddress: target.address,
        source: this.self.name,
        sourceAddress: this.self.address,
        nack: wantsNack,
      };
      this.emitPacket(helper.address, [request], false);
    }
    if (wantsNack) probe.nacksExpected = helpers.length;
  }

  /** memberlist's TCP fallback ping: the same ping, over the stream, due by the probe's end. */
  private sendFallbackPing(probe: ProbeInFlight, target: MemberRecord): void {
    if (this.streamPings.length >= OUTPUT_MAX) throw new Error('swim: output not drained');
    this.stats.fallbackPings++;
    this.streamPings.push({
      toAddress: target.address,
      ping: {
        type: 'ping',
        seq: probe.seq,
        target: target.name,
        source: this.self.name,
        sourceAddress: this.self.address,
      },
      timeoutMs: probe.endAtMs - this.nowMs,
    });
  }

  private failProbe(probe: ProbeInFlight): void {
    this.stats.probeFailures++;
    if (this.config.lifeguard.localHealthAwareness) {
      // Helpers that stayed silent suggest the problem is here, not at the target (Lifeguard).
      const missingNacks = probe.nacksExpected - probe.nacksReceived;
      this.awareness.applyDelta(probe.nacksExpected > 0 ? Math.max(0, missingNacks) : 1);
    }
    const target = this.membersByName.get(probe.target);
    if (target === undefined) return;
    if (target.state !== MemberState.alive && target.state !== MemberState.suspect) return;
    this.handleSuspect(this.suspectMessage(target));
  }

  private handleAck(seq: number): void {
    const probe = this.probe;
    if (probe !== null && probe.seq === seq) {
      if (!probe.acked && this.config.lifeguard.localHealthAwareness) this.awareness.applyDelta(-1);
      probe.acked = true;
      return;
    }
    const relay = this.relays.get(seq);
    if (relay === undefined) return;
    this.relays.delete(seq);
    this.emitPacket(relay.requesterAddress, [{ type: 'ack', seq: relay.requesterSeq }], false);
  }

  private relayPing(fromAddress: string, request: PingReqMessage): void {
    if (this.relays.size >= RELAYS_MAX) {
      this.stats.relaysDropped++;
      return;
    }
    const seq = this.nextSeq++;
    this.relays.set(seq, {
      requesterAddress: fromAddress,
      requesterSeq: request.seq,
      wantsNack: request.nack,
      nackAtMs: this.nowMs + Math.floor(this.config.probeTimeoutMs * NACK_FRACTION),
      expireAtMs: this.nowMs + this.config.probeTimeoutMs,
    });
    const ping: Message = {
      type: 'ping',
      seq,
      target: request.target,
      source: this.self.name,
      sourceAddress: this.self.address,
    };
    this.emitPacket(request.targetAddress, [ping], false);
  }

  private runRelayTimers(): void {
    for (const [seq, relay] of this.relays) {
      if (relay.wantsNack && this.nowMs >= relay.nackAtMs) {
        this.relays.delete(seq);
        this.emitPacket(relay.requesterAddress, [{ type: 'nack', seq: relay.requesterSeq }], false);
      } else if (!relay.wantsNack && this.nowMs >= relay.expireAtMs) {
        this.relays.delete(seq);
      }
    }
  }

  // ---------------------------------------------------------------- suspicion and state changes

  private runSuspicionTimers(): void {
    for (const name of [...this.suspected]) {
      const record = this.membersByName.get(name)!;
      if (this.nowMs < record.suspicion!.deadlineMs) continue;
      this.handleDead({
        type: 'dead',
        name,
        incarnation: record.incarnation,
        from: this.self.name,
      });
    }
  }

  private handleAlive(message: AliveMessage): void {
    if (message.name === this.self.name) {
      if (this.leftAtMs === null && message.incarnation > this.self.incarnation) {
        this.refute(message.incarnation);
      }
      return;
    }
    const record = this.membersByName.get(message.name);
    if (record === undefined) {
      this.addMember(message);
      return;
    }
    if (message.incarnation <= record.incarnation) return;
    const previous = record.state;
    const changed = record.address !== message.address || !bytesEqual(record.meta, message.meta);
    record.incarnation = message.incarnation;
    record.address = message.address;
    record.meta = message.meta;
    this.broadcasts.enqueue(message);
    if (previous === MemberState.alive) {
      if (changed) this.emitEvent('update', record);
      return;
    }
    this.setState(record, MemberState.alive);
    this.emitEvent(previous === MemberState.suspect ? 'alive' : 'join', record);
  }

  private addMember(message: AliveMessage): void {
    if (this.membersByName.size >= MEMBERS_MAX) {
      this.stats.membersDropped++;
      return;
    }
    const record: MemberRecord = {
      name: message.name,
      address: message.address,
      incarnation: message.incarnation,
      state: MemberState.alive,
      meta: message.meta,
      stateChangeMs: this.nowMs,
      suspicion: null,
    };
    this.membersByName.set(record.name, record);
    // Insert at a random position so a new member is probed within one pass, not at its end.
    const position = randomIndex(this.random, this.probeOrder.length + 1);
    this.probeOrder.push(record.name);
    const last = this.probeOrder.length - 1;
    [this.probeOrder[position], this.probeOrder[last]] = [
      this.probeOrder[last]!,
      this.probeOrder[position]!,
    ];
    this.broadcasts.enqueue(message);
    this.emitEvent('join', record);
  }

  private handleSuspect(message: SuspectMessage): void {
    const record = this.membersByName.get(message.name);
    if (record === undefined || message.incarnation < record.incarnation) return;
    if (record === this.self) {
      if (this.leftAtMs === null) this.refute(message.incarnation);
      return;
    }
    if (record.state === MemberState.suspect) {
      // An independent confirmation shortens the timeout; re-gossip it so others shorten theirs.
      if (confirmSuspicion(record.suspicion!, message.from)) this.broadcasts.enqueue(message);
      return;
    }
    if (record.state !== MemberState.alive) return;
    record.incarnation = message.incarnation;
    this.setState(record, MemberState.suspect);
    record.suspicion = this.newSuspicion(message.from);
    this.suspected.add(record.name);
    this.stats.suspicionsStarted++;
    this.broadcasts.enqueue(message);
    this.emitEvent('suspect', record);
  }

  private newSuspicion(from: string): Suspicion {
    const { suspicionMult, suspicionMaxTimeoutMult, probeIntervalMs, lifeguard } = this.config;
    const count = this.liveMemberCount();
    const minMs = suspicionMinTimeoutMs(suspicionMult, count, probeIntervalMs);
    if (!lifeguard.dynamicSuspicion) return startSuspicion(from, this.nowMs, minMs, minMs, 0);
    const maxMs = suspicionMaxTimeoutMult * minMs;
    const expected = expectedConfirmations(suspicionMult, count);
    return startSuspicion(from, this.nowMs, minMs, maxMs, expected);
  }

  private handleDead(message: DeadMessage): void {
    const record = this.membersByName.get(message.name);
    if (record === undefined || message.incarnation < record.incarnation) return;
    if (record.state === MemberState.dead || record.state === MemberState.left) return;
    if (record === this.self) {
      this.refute(message.incarnation);
      return;
    }
    record.incarnation = message.incarnation;
    const left = message.from === message.name;
    this.setState(record, left ? MemberState.left : MemberState.dead);
    this.broadcasts.enqueue(message);
    this.emitEvent(left ? 'left' : 'dead', record);
  }

  /** Another member thinks this one is suspect or dead: outbid it with a higher incarnation. */
  private refute(seenIncarnation: number): void {
    this.self.incarnation = Math.max(this.self.incarnation, seenIncarnation) + 1;
    this.stats.refutations++;
    if (this.config.lifeguard.localHealthAwareness) this.awareness.applyDelta(1);
    this.broadcasts.enqueue(this.selfAlive());
  }

  private setState(record: MemberRecord, state: MemberState): void {
    record.state = state;
    record.stateChangeMs = this.nowMs;
    if (state !== MemberState.suspect) {
      record.suspicion = null;
      this.suspected.delete(record.name);
    }
  }

  // ---------------------------------------------------------------- gossip and push-pull

  private gossip(): void {
    const limit = this.retransmitLimit();
    const forgetBeforeMs = this.nowMs - this.config.gossipToTheDeadMs;
    const targets = this.randomMembers(this.config.gossipNodes, (record) => {
      if (record.state === MemberState.alive || record.state === MemberState.suspect) return true;
      return record.stateChangeMs >= forgetBeforeMs;
    });
    for (const target of targets) {
      const budget = this.config.datagramBytesMax - COMPOUND_HEADER_BYTES;
      const messages = this.broadcasts.take(0, budget, limit);
      if (messages.length === 0) return;
      this.emitPacket(target.address, messages, false, false);
    }
  }

  private startPushPull(): void {
    const [peer] = this.randomMembers(1, (record) => record.state === MemberState.alive);
    if (peer === undefined) return;
    this.emitPacket(peer.address, [this.pushPullMessage(false, true)], true);
  }

  private handlePushPull(fromAddress: string, message: PushPullMessage): void {
    if (message.reply) {
      this.emitPacket(fromAddress, [this.pushPullMessage(message.join, false)], true);
    } else {
      this.syncedFrom.push(fromAddress);
    }
    for (const entry of message.states) this.mergeEntry(entry);
  }

  /** Merges one remote entry; a remote "dead" only makes us suspect, as in memberlist. */
  private mergeEntry(entry: PushPullEntry): void {
    const { name, address, incarnation, meta } = entry;
    if (entry.state === MemberState.alive) {
      this.handleAlive({ type: 'alive', name, address, incarnation, meta });
    } else if (entry.state === MemberState.left) {
      this.handleDead({ type: 'dead', name, incarnation, from: name });
    } else {
      this.handleSuspect({ type: 'suspect', name, incarnation, from: this.self.name });
    }
  }

  /**
   * This member's full state, bounded by PUSH_PULL_ENTRIES_MAX entries and PUSH_PULL_BYTES_MAX
   * encoded bytes; members beyond either bound are left out and counted (self always comes first).
   */
  private pushPullMessage(join: boolean, reply: boolean): PushPullMessage {
    const states: PushPullEntry[] = [];
    // Envelope (type, join, reply, the states key) plus the largest array header.
    let sizeBytes = msgpackSizeBytes({ type: 'pushPull', join, reply, states }) + 4;
    for (const record of this.membersByName.values()) {
      const entry: PushPullEntry = {
        name: record.name,
        address: record.address,
        incarnation: record.incarnation,
        state: record.state,
        meta: record.meta,
      };
      const entryBytes = msgpackSizeBytes(entry);
      if (states.length >= PUSH_PULL_ENTRIES_MAX || sizeBytes + entryBytes > PUSH_PULL_BYTES_MAX) {
        this.stats.pushPullEntriesOmitted++;
        continue;
      }
      states.push(entry);
      sizeBytes += entryBytes;
    }
    return { type: 'pushPull', join, reply, states };
  }

  // ---------------------------------------------------------------- helpers

  /**
   * Queues a packet to `toAddress`. Datagram packets are filled up with piggybacked broadcasts
   * (infection-style dissemination) unless `piggyback` is false.
   */
  private emitPacket(toAddress: string, messages: Message[], stream: boolean, piggyback = true) {
    if (this.packets.length >= OUTPUT_MAX) throw new Error('swim: output not drained');
    let sizeBytes = COMPOUND_HEADER_BYTES + msgpackSizeBytes(messages) - 1;
    if (!stream && piggyback) {
      const budget = this.config.datagramBytesMax - sizeBytes;
      for (const extra of this.broadcasts.take(0, budget, this.retransmitLimit())) {
        messages.push(extra);
        sizeBytes += msgpackSizeBytes(extra);
      }
    }
    this.packets.push({ toAddress, messages, stream });
    this.stats.packetsSent++;
    this.stats.messagesSent += messages.length;
    if (stream) this.stats.streamBytesSent += sizeBytes;
    else this.stats.bytesSent += sizeBytes;
  }

  private emitEvent(type: MembershipEventType, record: MemberRecord): void {
    if (this.events.length >= OUTPUT_MAX) throw new Error('swim: output not drained');
    this.events.push({ type, member: viewOf(record), atMs: this.nowMs });
  }

  /** Up to `count` distinct random members other than self that pass `accept`. */
  private randomMembers(count: number, accept: (record: MemberRecord) => boolean): MemberRecord[] {
    const chosen: MemberRecord[] = [];
    const size = this.probeOrder.length;
    if (size === 0 || count <= 0) return chosen;
    // Random picks first (cheap when most members qualify) ...
    for (let attempt = 0; attempt < 3 * count && chosen.length < count; attempt++) {
      const record = this.membersByName.get(this.probeOrder[randomIndex(this.random, size)]!)!;
      if (accept(record) && !chosen.includes(record)) chosen.push(record);
    }
    // ... then a sweep from a random offset, so few qualifying members are still all found.
    const offset = randomIndex(this.random, size);
    for (let step = 0; step < size && chosen.length < count; step++) {
      const record = this.membersByName.get(this.probeOrder[(offset + step) % size]!)!;
      if (accept(record) && !chosen.includes(record)) chosen.push(record);
    }
    return chosen;
  }

  private suspectMessage(target: MemberRecord): SuspectMessage {
    return {
      type: 'suspect',
      name: target.name,
      incarnation: target.incarnation,
      from: this.self.name,
    };
  }

  private selfAlive(): BroadcastMessage {
    return {
      type: 'alive',
      name: this.self.name,
      address: this.self.address,
      incarnation: this.self.incarnation,
      meta: this.self.meta,
    };
  }

  private liveMemberCount(): number {
    let count = 0;
    for (const record of this.membersByName.values()) {
      if (record.state === MemberState.alive || record.state === MemberState.suspect) count++;
    }
    return count;
  }

  private retransmitLimit(): number {
    return retransmitLimit(this.config.retransmitMult, this.liveMemberCount());
  }

  /** memberlist's push-pull scaling: the interval grows with log2 of the cluster beyond 32. */
  private pushPullIntervalMs(): number {
    const count = this.membersByName.size;
    if (count <= 32) return this.config.pushPullIntervalMs;
    const multiplier = Math.ceil(Math.log2(count) - Math.log2(32)) + 1;
    return this.config.pushPullIntervalMs * multiplier;
  }

  private scaledMs(timeoutMs: number): number {
    return this.config.lifeguard.localHealthAwareness
      ? this.awareness.scaleMs(timeoutMs)
      : timeoutMs;
  }

  private advance(nowMs: number): void {
    if (!(nowMs >= this.nowMs))
      throw new Error(`swim: time went backwards (${nowMs} < ${this.nowMs})`);
    this.nowMs = nowMs;
  }
}

function nextPeriodic(previousMs: number, periodMs: number, nowMs: number): number {
  const next = previousMs + periodMs;
  // After a stall, resume from now instead of firing a burst of missed rounds.
  return next > nowMs ? next : nowMs + periodMs;
}

function viewOf(record: MemberRecord): MemberView {
  return {
    name: record.name,
    address: record.address,
    incarnation: record.incarnation,
    state: memberStateNames[record.state]!,
    meta: record.meta,
  };
}

function bytesEqual(left: Uint8Array, right: Uint8Array): boolean {
  if (left.byteLength !== right.byteLength) return false;
  for (let index = 0; index < left.byteLength; index++) {
    if (left[index] !== right[index]) return false;
  }
  return true;
}
