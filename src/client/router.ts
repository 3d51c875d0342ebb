/**
 * Where ShoalClient sends each call. It keeps one RpcClient per member endpoint, learns which one
 * is the leader by asking every endpoint for its status (the member whose own id is the leader id
 * it reports), spreads serializable reads round-robin over the members that are up, and marks a
 * member down for a while after its connection fails so that calls fail over to the others.
 * Endpoints the client was not given are learned from MemberList (peer URLs), up to a bound.
 */
import { type Logger, pino } from 'pino';
import { type CallOptions, RpcClient, type Stub } from '../rpc/index.js';
import { addressOfUrl, type NativeKvService, nativeKv } from './protocol.js';
import { PutBatcher } from './put-batcher.js';

/** The most endpoints a client keeps (given plus learned from MemberList). */
export const ENDPOINTS_MAX = 64;
/** How long a member whose connection failed is skipped when picking one. */
export const ENDPOINT_DOWN_MS = 1_000;
/** The time a status probe during leader discovery may take. */
export const DISCOVERY_TIMEOUT_MS = 1_000;

export class Endpoint {
  readonly rpc: RpcClient;
  readonly stub: Stub<NativeKvService>;
  /** Puts to this member waiting for the end of the turn, to leave as one call. */
  readonly puts: PutBatcher;
  /** The member id this endpoint reported, once known. */
  memberId: bigint | undefined;
  downUntilMs = 0;

  constructor(
    readonly address: string,
    callOptions: CallOptions,
  ) {
    // A short backoff ceiling: a member that restarts is tried again within a second.
    this.rpc = new RpcClient(address, {
      backoff: { initialMs: 50, maxMs: 1_000 },
      connectTimeoutMs: 1_000,
    });
    this.stub = this.rpc.stub(nativeKv);
    this.puts = new PutBatcher(this.stub, callOptions);
  }

  get up(): boolean {
    return performance.now() >= this.downUntilMs;
  }
}

export class Router {
  readonly endpoints: Endpoint[] = [];
  leader: Endpoint | undefined;
  private nextRead = 0;
  private discovering: Promise<Endpoint | undefined> | null = null;
  private readonly log: Logger;

  constructor(
    addresses: readonly string[],
    private readonly callOptions: CallOptions,
    logger?: Logger,
  ) {
    if (addresses.length === 0) throw new TypeError('ShoalClient needs at least one endpoint');
    this.log = logger ?? pino({ name: 'shoal-client', level: 'warn' });
    for (const address of addresses) this.add(normalizeEndpoint(address));
  }

  private add(address: string): Endpoint | undefined {
    const known = this.endpoints.find((e) => e.address === address);
    if (known !== undefined) return known;
    if (this.endpoints.length >= ENDPOINTS_MAX) return undefined;
    const endpoint = new Endpoint(address, this.callOptions);
    this.endpoints.push(endpoint);
    return endpoint;
  }

  markDown(endpoint: Endpoint): void {
    endpoint.downUntilMs = performance.now() + ENDPOINT_DOWN_MS;
    if (this.leader === endpoint) this.leader = undefined;
  }

  /** The next member for a serializable read: round-robin over members that are up. */
  pickAny(): Endpoint {
    const count = this.endpoints.length;
    for (let i = 0; i < count; i++) {
      const endpoint = this.endpoints[this.nextRead++ % count]!;
      if (endpoint.up) return endpoint;
    }
    // Every member is marked down: try them anyway rather than fail without asking.
    return this.endpoints[this.nextRead++ % count]!;
  }

  /** The leader if known; otherwise discovers it. Undefined while no reachable leader is known. */
  async pickLeader(): Promise<Endpoint | undefined> {
    if (this.leader?.up) return this.leader;
    return this.discover();
  }

  /** Forgets the leader and, if the hint names one, uses it. */
  leaderLost(hintAddress: string | undefined): void {
    this.leader = undefined;
    if (hintAddress === undefined) return;
    const hinted = this.add(hintAddress);
    if (hinted?.up) this.leader = hinted;
  }

  /** One discovery at a time; concurrent callers share it. */
  discover(): Promise<Endpoint | undefined> {
    if (this.discovering === null) {
      this.discovering = this.probe().finally(() => {
        this.discovering = null;
      });
    }
    return this.discovering;
  }

  private async probe(): Promise<Endpoint | undefined> {
    const candidates = this.endpoints.filter((e) => e.up);
    const answers = await Promise.all(
      (candidates.length > 0 ? candidates : this.endpoints).map(async (endpoint) => {
        try {
          const status = await endpoint.stub.status({}, { timeoutMs: DISCOVERY_TIMEOUT_MS });
          endpoint.memberId = status.header.memberId;
          return { endpoint, leader: status.leader, term: status.raftTerm };
        } catch (error) {
          this.log.debug({ endpoint: endpoint.address, err: error }, 'status probe failed');
          this.markDown(endpoint);
          return undefined;
        }
      }),
    );
    // The newest term's view of the leader wins: a member cut off may still name an old leader.
    let best: { endpoint: Endpoint; leader: bigint; term: bigint } | undefined;
    for (const answer of answers) {
      if (answer === undefined || answer.leader === 0n) continue;
      if (best === undefined || answer.term > best.term) best = answer;
    }
    if (best === undefined) return undefined;
    const leaderId = best.leader;
    let leader = this.endpoints.find((e) => e.memberId === leaderId && e.up);
    if (leader === undefined) leader = await this.learnLeader(best.endpoint, leaderId);
    this.leader = leader;
    return leader;
  }

  /** Asks a member for the member list and adds the leader's peer address as an endpoint. */
  private async learnLeader(from: Endpoint, leaderId: bigint): Promise<Endpoint | undefined> {
    try {
      const list = await from.stub.memberList({}, { timeoutMs: DISCOVERY_TIMEOUT_MS });
      const member = list.members.find((m) => m.id === leaderId);
      const url = member?.peerUrls[0];
      const address = url === undefined ? undefined : addressOfUrl(url);
      if (address === undefined) return undefined;
      const endpoint = this.add(address);
      if (endpoint !== undefined) endpoint.memberId = leaderId;
      return endpoint?.up ? endpoint : undefined;
    } catch (error) {
      this.log.debug({ endpoint: from.address, err: error }, 'member list failed');
      return undefined;
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.endpoints.map((e) => e.rpc.close(0)));
  }
}

/** Accepts "host:port" or a URL ("http://host:port"). */
export function normalizeEndpoint(endpoint: string): string {
  if (endpoint.includes('://')) {
    const address = addressOfUrl(endpoint);
    if (address === undefined) throw new TypeError(`invalid endpoint ${JSON.stringify(endpoint)}`);
    return address;
  }
  return endpoint;
}
