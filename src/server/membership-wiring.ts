/**
 * SWIM membership in a member process: a `Memberlist` on the peer port (UDP on the same port
 * number, push-pull and fallback pings over the shared peer RPC server and client pool). Each
 * member gossips its role (voter or learner, from the raft registry) and its client and peer URLs.
 * On start it joins through the other --initial-cluster members' peer addresses and the --join
 * seeds, retrying in the background because peers of a new cluster start at about the same time.
 *
 * The `shoal.members` RPC service (`list`) reports this member's SWIM view with each member's raft
 * role, for `shoal members`. The role is refreshed every META_REFRESH_MS (a learner promoted, a
 * member removed).
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import {
  decodeMemberMeta,
  encodeMemberMeta,
  Memberlist,
  type MemberStateName,
} from '../membership/index.js';
import { defineService, unary } from '../rpc/index.js';
import type { MemberCore } from './member-core.js';
import { peerAddress } from './transport.js';

/** Join attempts (each up to the memberlist's join timeout) before the member gives up seeking. */
export const JOIN_ATTEMPTS_MAX = 120;
/** Pause between join attempts. */
const JOIN_RETRY_MS = 1000;
/** How often the gossiped role is compared with the registry (a learner may have been promoted). */
const META_REFRESH_MS = 1000;

/** One member as `shoal.members/list` reports it. */
export interface MembershipEntry {
  name: string;
  /** SWIM's peer address (host:port). */
  address: string;
  swimState: MemberStateName;
  /** The role the member gossips: voter, learner or none (not in raft). */
  role: string;
  clientUrls: string[];
  peerUrls: string[];
  /** Free space on the member's data dir as it last gossiped it (re-announced on a 10% change). */
  freeDiskBytes: number;
}

export const membersService = defineService({
  name: 'shoal.members',
  methods: {
    list: unary<Record<string, never>, { self: string; members: MembershipEntry[] }>(),
  },
});

/**
 * The role a member has in the raft registry: voter, learner, none (not a member yet) or removed
 * (it was a member during this run and no longer is: autopilot must not add it back).
 */
export function registryRole(core: MemberCore, wasMember: boolean): string {
  const self = core.registry.list().find((m) => m.id === core.id);
  if (self === undefined) return wasMember || core.removed ? 'removed' : 'none';
  return self.isLearner ? 'learner' : 'voter';
}

export interface MembershipOptions {
  core: MemberCore;
  peerPort: number;
  clientUrls: readonly string[];
  peerUrls: readonly string[];
  log: Logger;
}

export class MembershipWiring {
  private joinLoop: Promise<void> = Promise.resolve();
  private metaTimer: NodeJS.Timeout | null = null;
  private role: string;
  private wasMember: boolean;
  /** The free space last put into the gossiped metadata. */
  private freeBytesGossiped: number;
  private stopped = false;

  private constructor(
    readonly memberlist: Memberlist,
    private readonly options: MembershipOptions,
  ) {
    this.role = registryRole(options.core, false);
    this.wasMember = this.role !== 'none';
    this.freeBytesGossiped = freeDiskBytes(options.core.config.dataDir);
  }

  /** Registers the `shoal.members` service; call before the peer server listens. */
  static register(core: MemberCore, list: () => MembershipEntry[]): void {
    core.transport.addService(membersService, {
      list: () => ({ self: core.config.name, members: list() }),
    });
  }

  /** Starts SWIM on the (listening) peer port and begins joining in the background. */
  static async start(options: MembershipOptions): Promise<MembershipWiring> {
    const { core, log } = options;
    const host = peerAddress(core.config.listenPeerUrls[0]!.href).split(':')[0]!;
    const memberlist = await Memberlist.create({
      name: core.config.name,
      host,
      port: options.peerPort,
      meta: encodeMemberMeta({
        role: registryRole(core, false),
        clientUrls: options.clientUrls,
        peerUrls: options.peerUrls,
        freeDiskBytes: freeDiskBytes(core.config.dataDir),
      }),
      logger: log.child({ component: 'swim' }),
      rpc: core.transport.rpc,
    });
    const wiring = new MembershipWiring(memberlist, options);
    memberlist.on('event', (event) =>
      log.info({ swimEvent: event.type, peer: event.member.name }, 'membership event'),
    );
    wiring.metaTimer = setInterval(() => wiring.refreshMeta(), META_REFRESH_MS);
    wiring.joinLoop = wiring.joinSeeds(seedAddresses(core, options.peerPort));
    return wiring;
  }

  /** This member's SWIM view, each member with the role it gossips. */
  list(): MembershipEntry[] {
    return this.memberlist.members().map((m) => {
      const meta = decodeMemberMeta(m.meta);
      return {
        name: m.name,
        address: m.address,
        swimState: m.state,
        role: meta?.role ?? 'unknown',
        clientUrls: [...(meta?.clientUrls ?? [])],
        peerUrls: [...(meta?.peerUrls ?? [])],
        freeDiskBytes: meta?.freeDiskBytes ?? 0,
      };
    });
  }

  private refreshMeta(): void {
    const role = registryRole(this.options.core, this.wasMember);
    if (role === 'voter' || role === 'learner') this.wasMember = true;
    const free = freeDiskBytes(this.options.core.config.dataDir);
    // Every metadata change is gossiped to all members, so free space is re-announced only when
    // it moved by a tenth since the last announcement, not on every byte written.
    const freeMoved = Math.abs(free - this.freeBytesGossiped) > this.freeBytesGossiped / 10;
    if ((role === this.role && !freeMoved) || this.stopped) return;
    this.role = role;
    this.freeBytesGossiped = free;
    this.memberlist.updateMeta(
      encodeMemberMeta({
        role,
        clientUrls: this.options.clientUrls,
        peerUrls: this.options.peerUrls,
        freeDiskBytes: free,
      }),
    );
  }

  /** Joins through the seeds until one answers or someone else reached us first. */
  private async joinSeeds(seeds: readonly string[]): Promise<void> {
    if (seeds.length === 0) return;
    for (let attempt = 0; attempt < JOIN_ATTEMPTS_MAX && !this.stopped; attempt++) {
      if (this.memberlist.members().length > 1) return;
      try {
        const via = await this.memberlist.join(seeds);
        this.options.log.info({ via }, 'joined the gossip cluster');
        return;
      } catch (error) {
        if (this.stopped) return;
        this.options.log.debug({ err: error, seeds }, 'gossip join failed, retrying');
      }
      await new Promise((resolve) => setTimeout(resolve, JOIN_RETRY_MS));
    }
    if (!this.stopped) this.options.log.warn({ seeds }, 'no gossip seed answered; giving up');
  }

  /** Leaves the gossip cluster gracefully (peers see `left`, not `dead`) and stops SWIM. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.metaTimer !== null) clearInterval(this.metaTimer);
    try {
      await this.memberlist.leave();
    } catch (error) {
      this.options.log.warn({ err: error }, 'graceful gossip leave did not complete');
    }
    await this.memberlist.shutdown();
    await this.joinLoop;
  }
}

/** The other --initial-cluster members' peer addresses and the --join seeds, without this one. */
function seedAddresses(core: MemberCore, peerPort: number): string[] {
  const self = `${peerAddress(core.config.listenPeerUrls[0]!.href).split(':')[0]}:${peerPort}`;
  const seeds = new Set<string>(core.config.join);
  for (const member of core.config.initialCluster) {
    if (member.id === core.id) continue;
    for (const url of member.peerUrls) seeds.add(peerAddress(url.href));
  }
  seeds.delete(self);
  return [...seeds];
}

/** Bytes an unprivileged writer can still use on the data dir's file system (0 if unknown). */
export function freeDiskBytes(dataDir: string): number {
  try {
    const stats = fs.statfsSync(dataDir);
    return Math.min(Number.MAX_SAFE_INTEGER, stats.bavail * stats.bsize);
  } catch {
    return 0;
  }
}
