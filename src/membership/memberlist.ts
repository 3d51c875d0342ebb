/**
 * `Memberlist`: one member's SWIM runtime. It wires the pure core to a UDP transport, a stream
 * transport and a real clock: incoming packets go to `receive`, one timer wakes the core at
 * `nextDeadlineMs()`, and everything the core produces is sent or emitted as `event`s.
 *
 * Given the member's peer RPC server and client pool (`rpc`), push-pull exchanges (joining,
 * anti-entropy) run as RPC calls over TCP on the same port number as UDP, and a probe whose UDP
 * ping times out is also tried over TCP (memberlist's fallback ping), so a member whose UDP is
 * blocked but whose TCP works is not declared dead. Without `rpc` (a standalone memberlist),
 * push-pull is split into datagrams, which is fine for clusters whose state fits in a few dozen
 * datagrams, and there is no fallback ping.
 */
import { randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { type Logger, pino } from 'pino';
import type { RpcClientPool, RpcServer } from '../rpc/index.js';
import { splitPushPull } from './core/push-pull.js';
import { createSeededRandom } from './core/random.js';
import { Swim, type SwimStats } from './core/swim.js';
import {
  defaultLanConfig,
  type MembershipEvent,
  type MemberView,
  type Message,
  type Packet,
  type PushPullMessage,
  type StreamPingRequest,
  type SwimConfig,
} from './core/types.js';
import { RpcStreamTransport, type StreamTransportStats } from './rpc-stream-transport.js';
import type { StreamTransport } from './stream-transport.js';
import {
  type PacketHandler,
  parseAddress,
  UdpTransport,
  type UdpTransportStats,
} from './udp-transport.js';

/** How long `join` waits for a seed to answer by default. */
export const JOIN_TIMEOUT_MS_DEFAULT = 5000;
/** How long `leave` waits for its notice to go out by default. */
export const LEAVE_TIMEOUT_MS_DEFAULT = 2000;
/**
 * `leave` waits until its notice went out this many times (to as many gossip targets), so that one
 * lost datagram does not turn a graceful leave into a failure detection.
 */
export const LEAVE_TRANSMITS_MIN = 3;
/** `join` re-sends its request this often, since datagrams may be lost and seeds may be down. */
const JOIN_RETRY_MS = 500;
/** How long one push-pull call may take by default (memberlist's TCP timeout). */
export const PUSH_PULL_TIMEOUT_MS_DEFAULT = 10_000;
/**
 * Most stream calls (push-pulls and fallback pings) in flight at once. The core asks for at most one
 * fallback ping per probe and one push-pull per period (plus one per seed when joining), so this is
 * only reached when peers stop answering; further requests are dropped and counted (the next
 * period or join retry tries again).
 */
export const STREAM_CALLS_IN_FLIGHT_MAX = 64;

/**
 * The datagram side of the runtime: `UdpTransport` or anything shaped like it (tests wrap it to
 * drop traffic). It must already be bound; `address` is the "host:port" it receives on.
 */
export interface PacketTransport {
  readonly address: string;
  readonly stats: UdpTransportStats;
  send(toAddress: string, messages: readonly Message[]): void;
  onPacket(handler: PacketHandler): void;
  close(): Promise<void>;
}

/** The member process's peer RPC: its listening server and its client pool for peer addresses. */
export interface MemberlistRpc {
  readonly server: RpcServer;
  readonly clients: RpcClientPool;
}

/** Counters of the runtime's stream side (all zero without a stream transport). */
export interface MemberlistStreamStats extends StreamTransportStats {
  /** Stream calls not started because STREAM_CALLS_IN_FLIGHT_MAX were in flight. */
  callsDropped: number;
}

export interface MemberlistOptions {
  readonly name: string;
  /** Address to bind and to advertise (default 127.0.0.1). */
  readonly host?: string;
  /**
   * UDP port; 0 picks a free one. With `rpc` it must be the RPC server's port number (the default
   * then), because peers reach the TCP side at the port they learned for UDP.
   */
  readonly port?: number;
  readonly meta?: Uint8Array;
  readonly config?: Partial<SwimConfig>;
  /** Seed for the core's randomness (default: a random one). */
  readonly seed?: number;
  readonly logger?: Logger;
  /**
   * The member's peer RPC server (listening) and client pool: the `membership` service is added to
   * the server, and push-pull and fallback pings go through the pool. Without it the runtime is
   * UDP only.
   */
  readonly rpc?: MemberlistRpc;
  /** A stream transport other than shoal RPC (instead of `rpc`, e.g. a test double). */
  readonly streamTransport?: StreamTransport;
  /** An already bound datagram transport to use instead of binding `host:port` (e.g. in tests). */
  readonly packetTransport?: PacketTransport;
  /** Deadline of one push-pull call (default PUSH_PULL_TIMEOUT_MS_DEFAULT). */
  readonly pushPullTimeoutMs?: number;
}

export interface MemberlistEvents {
  event: [MembershipEvent];
}

export class MemberlistError extends Error {
  constructor(
    readonly code: 'JOIN_TIMEOUT' | 'LEAVE_TIMEOUT' | 'SHUT_DOWN' | 'INVALID_OPTIONS',
    message: string,
  ) {
    super(message);
    this.name = 'MemberlistError';
  }
}

export class Memberlist extends EventEmitter<MemberlistEvents> {
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly syncWaiters = new Set<(address: string) => void>();
  private readonly progressWaiters = new Set<() => void>();
  /** Addresses with a push-pull call in flight, so join retries do not pile up calls. */
  private readonly pushPullsInFlight = new Set<string>();
  private streamCallsInFlight = 0;
  private lastStreamError = '';
  private readonly streamStats: MemberlistStreamStats = {
    pushPullsSent: 0,
    pushPullsFailed: 0,
    pushPullsServed: 0,
    pingsSent: 0,
    pingsAcked: 0,
    pingsFailed: 0,
    pingsServed: 0,
    requestsRejected: 0,
    repliesRejected: 0,
    callsDropped: 0,
  };

  private constructor(
    private readonly core: Swim,
    private readonly transport: PacketTransport,
    private readonly stream: StreamTransport | null,
    private readonly pushPullTimeoutMs: number,
    private readonly logger: Logger,
  ) {
    super();
    transport.onPacket((fromAddress, messages) => {
      if (this.closed) return;
      const nowMs = this.nowMs();
      for (const message of messages) this.core.receive(fromAddress, message, nowMs);
      this.flush();
    });
    stream?.serve({
      pushPull: (message) => this.answerPushPull(message),
      ping: (message) => !this.closed && this.core.answerStreamPing(message, this.nowMs()),
    });
  }

  /**
   * Binds the UDP port (unless given `packetTransport`), registers the membership service on the
   * RPC server when given `rpc`, and starts probing (alone until `join`).
   */
  static async create(options: MemberlistOptions): Promise<Memberlist> {
    const host = options.host ?? '127.0.0.1';
    const port = checkedPort(options);
    const transport = options.packetTransport ?? (await UdpTransport.bind(host, port));
    const logger = (options.logger ?? pino({ level: 'warn' })).child({
      component: 'memberlist',
      member: options.name,
    });
    const stream =
      options.streamTransport ??
      (options.rpc === undefined ? null : new RpcStreamTransport({ ...options.rpc, logger }));
    // Without a stream there is nobody to carry a fallback ping.
    const config = defaultLanConfig({
      ...options.config,
      ...(stream === null ? { fallbackPing: false } : {}),
    });
    const core = new Swim({
      name: options.name,
      address: transport.address,
      config,
      random: createSeededRandom(options.seed ?? randomInt(2 ** 31)),
      nowMs: Math.floor(performance.now()),
      ...(options.meta === undefined ? {} : { meta: options.meta }),
    });
    const timeoutMs = options.pushPullTimeoutMs ?? PUSH_PULL_TIMEOUT_MS_DEFAULT;
    const memberlist = new Memberlist(core, transport, stream, timeoutMs, logger);
    memberlist.flush();
    logger.info({ address: transport.address, stream: stream !== null }, 'memberlist started');
    return memberlist;
  }

  get name(): string {
    return this.core.name;
  }

  /** The "host:port" other members reach this one at (UDP, and TCP at the same port number). */
  get address(): string {
    return this.transport.address;
  }

  get stats(): { swim: SwimStats; udp: UdpTransportStats; stream: MemberlistStreamStats } {
    const transportStats = this.stream instanceof RpcStreamTransport ? this.stream.stats : {};
    return {
      swim: this.core.stats,
      udp: this.transport.stats,
      stream: { ...this.streamStats, ...transportStats },
    };
  }

  /** Every known member, this one included, with its state. */
  members(): MemberView[] {
    return this.core.members();
  }

  /** Members currently alive (this one included). */
  aliveMembers(): MemberView[] {
    return this.core.members().filter((member) => member.state === 'alive');
  }

  updateMeta(meta: Uint8Array): void {
    this.core.updateMeta(meta, this.nowMs());
    this.flush();
  }

  /**
   * Joins through `seeds` ("host:port") with a push-pull exchange (over TCP when the runtime has a
   * stream transport), retrying every JOIN_RETRY_MS; resolves with the address of the first seed
   * that answered.
   */
  async join(seeds: readonly string[], timeoutMs = JOIN_TIMEOUT_MS_DEFAULT): Promise<string> {
    this.assertOpen();
    let resolveJoin!: (address: string) => void;
    const joined = new Promise<string>((resolve) => {
      resolveJoin = resolve;
    });
    // Any push-pull reply means we joined: a seed named "localhost:7946" answers from
    // "127.0.0.1:7946", so the addresses need not match the ones given.
    const waiter = (address: string) => resolveJoin(address);
    this.syncWaiters.add(waiter);
    this.lastStreamError = '';
    const attempt = () => {
      this.core.join(seeds, this.nowMs());
      this.flush();
    };
    attempt();
    const retry = setInterval(attempt, JOIN_RETRY_MS);
    try {
      return await withDeadline(joined, timeoutMs, () => {
        const reason = this.lastStreamError === '' ? '' : ` (last error: ${this.lastStreamError})`;
        return new MemberlistError(
          'JOIN_TIMEOUT',
          `no seed of ${seeds.join(', ')} answered${reason}`,
        );
      });
    } finally {
      clearInterval(retry);
      this.syncWaiters.delete(waiter);
    }
  }

  /**
   * Leaves gracefully: gossips a leave notice and resolves once it has been sent
   * `LEAVE_TRANSMITS_MIN` times (immediately when no other member is known). The member keeps
   * answering pings until `shutdown()`.
   */
  async leave(timeoutMs = LEAVE_TIMEOUT_MS_DEFAULT): Promise<void> {
    this.assertOpen();
    this.core.leave(this.nowMs());
    this.flush();
    const others = this.core.members().filter((member) => member.name !== this.name);
    if (others.every((member) => member.state === 'dead' || member.state === 'left')) return;
    try {
      await withDeadline(
        this.until(() => this.core.leaveTransmits >= LEAVE_TRANSMITS_MIN),
        timeoutMs,
        () => {
          return new MemberlistError('LEAVE_TIMEOUT', 'the leave notice was not sent in time');
        },
      );
    } finally {
      this.progressWaiters.clear();
    }
  }

  /**
   * Stops timers, stops answering stream requests and closes the UDP socket; without `leave()`
   * first, others will detect a failure. The RPC server and client pool stay open: they belong to
   * the member process.
   */
  async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.stream?.close();
    await this.transport.close();
    this.logger.info('memberlist shut down');
  }

  private flush(): void {
    if (this.closed) return;
    const output = this.core.drain();
    for (const packet of output.packets) this.sendPacket(packet);
    for (const request of output.streamPings) this.sendStreamPing(request);
    for (const name of output.reachedOnlyByStream) {
      this.logger.warn(
        { target: name },
        'member answered over TCP but not over UDP: the network may be dropping UDP',
      );
    }
    for (const event of output.events) {
      this.logger.info({ event: event.type, member: event.member.name }, 'membership change');
      this.emit('event', event);
    }
    for (const address of output.syncedFrom) {
      for (const waiter of this.syncWaiters) waiter(address);
    }
    for (const waiter of this.progressWaiters) waiter();
    this.schedule();
  }

  private sendPacket(packet: Packet): void {
    if (!packet.stream) {
      this.transport.send(packet.toAddress, packet.messages);
      return;
    }
    for (const message of packet.messages) {
      if (message.type !== 'pushPull') continue;
      if (this.stream !== null) {
        this.startPushPull(packet.toAddress, message);
        continue;
      }
      const pieces = splitPushPull(message, this.core.config.datagramBytesMax);
      for (const piece of pieces) this.transport.send(packet.toAddress, [piece]);
    }
  }

  /** One push-pull call; its reply is fed to the core as if it had arrived from `toAddress`. */
  private startPushPull(toAddress: string, message: PushPullMessage): void {
    if (this.pushPullsInFlight.has(toAddress)) return; // The call in flight carries the same.
    if (!this.reserveStreamCall()) return;
    this.pushPullsInFlight.add(toAddress);
    this.stream!.pushPull(toAddress, message, this.pushPullTimeoutMs)
      .then((reply) => {
        if (this.closed || reply === null) return;
        this.core.receive(toAddress, reply, this.nowMs());
        this.flush();
      })
      .catch((error: unknown) => {
        this.lastStreamError = describeError(error);
        this.logger.debug({ to: toAddress, err: this.lastStreamError }, 'push-pull failed');
      })
      .finally(() => {
        this.pushPullsInFlight.delete(toAddress);
        this.streamCallsInFlight--;
      });
  }

  private sendStreamPing(request: StreamPingRequest): void {
    if (!this.reserveStreamCall()) return;
    const { toAddress, ping, timeoutMs } = request;
    this.stream!.ping(toAddress, ping, timeoutMs)
      .catch(() => false)
      .then((acked) => {
        if (this.closed) return;
        this.core.streamPingResult(ping.seq, acked, this.nowMs());
        this.flush();
      })
      .catch((error: unknown) => {
        this.logger.error({ err: describeError(error) }, 'handling a fallback ping result failed');
      })
      .finally(() => {
        this.streamCallsInFlight--;
      });
  }

  private reserveStreamCall(): boolean {
    if (this.streamCallsInFlight >= STREAM_CALLS_IN_FLIGHT_MAX) {
      this.streamStats.callsDropped++;
      return false;
    }
    this.streamCallsInFlight++;
    return true;
  }

  /** Serves a push-pull request that arrived over the stream transport. */
  private answerPushPull(message: PushPullMessage): PushPullMessage | null {
    if (this.closed) throw new MemberlistError('SHUT_DOWN', 'memberlist was shut down');
    const reply = this.core.answerPushPull(message, this.nowMs());
    this.flush();
    return reply;
  }

  private schedule(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    const delayMs = Math.max(0, this.core.nextDeadlineMs() - this.nowMs());
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.closed) return;
      this.core.tick(this.nowMs());
      this.flush();
    }, delayMs);
  }

  /** Resolves once `condition` holds, checked after each batch of core output. */
  private until(condition: () => boolean): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (!condition()) return;
        this.progressWaiters.delete(check);
        resolve();
      };
      this.progressWaiters.add(check);
    });
  }

  private nowMs(): number {
    return Math.floor(performance.now());
  }

  private assertOpen(): void {
    if (this.closed) throw new MemberlistError('SHUT_DOWN', 'memberlist was shut down');
  }
}

/**
 * The UDP port to bind. With `rpc` it is the RPC server's port number, since peers dial TCP at the
 * port of the address they learned through SWIM.
 */
function checkedPort(options: MemberlistOptions): number {
  if (options.rpc !== undefined && options.streamTransport !== undefined) {
    throw new MemberlistError('INVALID_OPTIONS', 'give either rpc or streamTransport, not both');
  }
  const rpcPort = options.rpc === undefined ? undefined : listeningPort(options.rpc.server);
  const requested =
    options.packetTransport === undefined
      ? options.port
      : parseAddress(options.packetTransport.address).port;
  if (rpcPort !== undefined && requested !== undefined && requested !== rpcPort) {
    throw new MemberlistError(
      'INVALID_OPTIONS',
      `UDP port ${requested} differs from the RPC server's port ${rpcPort}; SWIM uses the same number`,
    );
  }
  return requested ?? rpcPort ?? 0;
}

function listeningPort(server: RpcServer): number {
  try {
    return server.address.port;
  } catch {
    throw new MemberlistError('INVALID_OPTIONS', 'the RPC server must be listening before create');
  }
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}

async function withDeadline<T>(
  promise: Promise<T>,
  timeoutMs: number,
  makeError: () => Error,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(makeError()), timeoutMs);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
