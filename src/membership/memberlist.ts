/**
 * `Memberlist`: one member's SWIM runtime. It wires the pure core to a UDP transport and a real
 * clock: incoming packets go to `receive`, one timer wakes the core at `nextDeadlineMs()`, and
 * everything the core produces is sent or emitted as `event`s.
 *
 * Push-pull exchanges (joining, anti-entropy) belong on a reliable stream; until shoal RPC provides
 * one (see `StreamTransport`), they are split into datagrams, which is fine for clusters whose state
 * fits in a few dozen datagrams. There is no TCP fallback ping yet.
 */
import { randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { type Logger, pino } from 'pino';
import { splitPushPull } from './core/push-pull.js';
import { createSeededRandom } from './core/random.js';
import { Swim, type SwimStats } from './core/swim.js';
import {
  defaultLanConfig,
  type MembershipEvent,
  type MemberView,
  type Packet,
  type SwimConfig,
} from './core/types.js';
import { UdpTransport, type UdpTransportStats } from './udp-transport.js';

/** How long `join` waits for a seed to answer by default. */
export const JOIN_TIMEOUT_MS_DEFAULT = 5000;
/** How long `leave` waits for its notice to go out by default. */
export const LEAVE_TIMEOUT_MS_DEFAULT = 2000;
/**
 * `leave` waits until its notice went out this many times (to as many gossip targets), so that one
 * lost datagram does not turn a graceful leave into a failure detection.
 */
export const LEAVE_TRANSMITS_MIN = 3;
/** `join` re-sends its request this often, since datagrams may be lost. */
const JOIN_RETRY_MS = 500;

export interface MemberlistOptions {
  readonly name: string;
  /** Address to bind and to advertise (default 127.0.0.1). */
  readonly host?: string;
  /** UDP port; 0 picks a free one (default 0). */
  readonly port?: number;
  readonly meta?: Uint8Array;
  readonly config?: Partial<SwimConfig>;
  /** Seed for the core's randomness (default: a random one). */
  readonly seed?: number;
  readonly logger?: Logger;
}

export interface MemberlistEvents {
  event: [MembershipEvent];
}

export class MemberlistError extends Error {
  constructor(
    readonly code: 'JOIN_TIMEOUT' | 'LEAVE_TIMEOUT' | 'SHUT_DOWN',
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

  private constructor(
    private readonly core: Swim,
    private readonly transport: UdpTransport,
    private readonly logger: Logger,
  ) {
    super();
    transport.onPacket((fromAddress, messages) => {
      if (this.closed) return;
      const nowMs = this.nowMs();
      for (const message of messages) this.core.receive(fromAddress, message, nowMs);
      this.flush();
    });
  }

  /** Binds the UDP port and starts probing (alone until `join`). */
  static async create(options: MemberlistOptions): Promise<Memberlist> {
    const transport = await UdpTransport.bind(options.host ?? '127.0.0.1', options.port ?? 0);
    const core = new Swim({
      name: options.name,
      address: transport.address,
      config: defaultLanConfig(options.config),
      random: createSeededRandom(options.seed ?? randomInt(2 ** 31)),
      nowMs: Math.floor(performance.now()),
      ...(options.meta === undefined ? {} : { meta: options.meta }),
    });
    const logger = (options.logger ?? pino({ level: 'warn' })).child({
      component: 'memberlist',
      member: options.name,
    });
    const memberlist = new Memberlist(core, transport, logger);
    memberlist.flush();
    logger.info({ address: transport.address }, 'memberlist started');
    return memberlist;
  }

  get name(): string {
    return this.core.name;
  }

  /** The "host:port" other members reach this one at. */
  get address(): string {
    return this.transport.address;
  }

  get stats(): { swim: SwimStats; udp: UdpTransportStats } {
    return { swim: this.core.stats, udp: this.transport.stats };
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

  /** Joins through `seeds` ("host:port"); resolves with the address of the first that answered. */
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
    const attempt = () => {
      this.core.join(seeds, this.nowMs());
      this.flush();
    };
    attempt();
    const retry = setInterval(attempt, JOIN_RETRY_MS);
    try {
      return await withDeadline(joined, timeoutMs, () => {
        return new MemberlistError('JOIN_TIMEOUT', `no seed of ${seeds.join(', ')} answered`);
      });
    } finally {
      clearInterval(retry);
      this.syncWaiters.delete(waiter);
    }
  }

  /**
   * Leaves gracefully: gossips a leave notice and resolves once it has been sent
   * `LEAVE_TRANSMITS_MIN` times (immediately when no other member is known). The member keeps answering pings until `shutdown()`.
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

  /** Stops timers and closes the socket; without `leave()` first, others will detect a failure. */
  async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.transport.close();
    this.logger.info('memberlist shut down');
  }

  private flush(): void {
    if (this.closed) return;
    const output = this.core.drain();
    for (const packet of output.packets) this.sendPacket(packet);
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
      const pieces = splitPushPull(message, this.core.config.datagramBytesMax);
      for (const piece of pieces) this.transport.send(packet.toAddress, [piece]);
    }
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
