/**
 * Peer transport: raft traffic between members over shoal RPC on the peer URL.
 *
 * - Raft messages go as one-way sends, coalesced: each `send()` (one Ready's messages) becomes one
 *   `raft.messages` batch per peer (split at PEER_BATCH_BYTES_MAX).
 *   Loss is fine (raft retries); a peer in reconnect backoff is reported unreachable to raft.
 * - Snapshots (a `Snap` message carrying the whole state) go as a client stream: a header with the
 *   message's metadata, then SNAPSHOT_CHUNK_BYTES chunks. The receiver reassembles them (bounded by
 *   SNAPSHOT_BYTES_MAX) and steps the complete message; the sender reports finish/failure to raft.
 * - `raft.info` answers a joining member's question "which cluster is this": the cluster id and
 *   member registry (etcd's joining members ask their peers the same).
 */
import { type Logger, pino } from 'pino';
import type { Message, Snapshot } from '../raft/index.js';
import { MessageType } from '../raft/index.js';
import {
  clientStream,
  defineService,
  oneWay,
  RpcClientPool,
  RpcServer,
  type ServiceDefinition,
  type ServiceImplementation,
  type Stub,
  unary,
} from '../rpc/index.js';
import type { LeaseTimes } from './leases.js';
import type { RegistryState } from './registry.js';

/** Bytes of raft messages in one one-way frame (well under the RPC frame limit of 16 MiB). */
export const PEER_BATCH_BYTES_MAX = 4 * 1024 * 1024;
/** Messages queued for one peer before a flush; past it the oldest are dropped (raft retries). */
export const PEER_QUEUE_MESSAGES_MAX = 8192;
export const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;
/** Removed member ids remembered to tell them; past it the set restarts (they are told later). */
export const REMOVED_IDS_MAX = 1024;
const REMOVED_NOTICE_INTERVAL_MS = 1000;
/** Largest snapshot a member accepts (it is reassembled in memory). */
export const SNAPSHOT_BYTES_MAX = 2 * 1024 * 1024 * 1024;
/** Snapshot transfers a member sends at once (raft sends one per lagging follower). */
export const SNAPSHOT_SENDS_MAX = 4;
const SNAPSHOT_SEND_TIMEOUT_MS = 10 * 60 * 1000;

interface MessageBatch {
  from: number;
  /** The sender's peer address, so a member it was removed from can tell it (see `removed`). */
  fromAddress: string;
  clusterId: number;
  messages: Message[];
}

interface SnapshotPart {
  header?: { message: Message; clusterId: number; totalBytes: number };
  chunk?: Uint8Array;
}

export interface ClusterInfo {
  registry: RegistryState;
}

function isMessageBatch(value: unknown): value is MessageBatch {
  const v = value as MessageBatch;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.from === 'number' &&
    typeof v.fromAddress === 'string' &&
    typeof v.clusterId === 'number' &&
    Array.isArray(v.messages) &&
    v.messages.every(isMessage)
  );
}

function isMessage(value: unknown): value is Message {
  const m = value as Message;
  return (
    typeof m === 'object' &&
    m !== null &&
    Number.isInteger(m.type) &&
    m.type >= 0 &&
    m.type <= 18 &&
    Number.isSafeInteger(m.to) &&
    Number.isSafeInteger(m.from) &&
    Number.isSafeInteger(m.term) &&
    Number.isSafeInteger(m.logTerm) &&
    Number.isSafeInteger(m.index) &&
    Number.isSafeInteger(m.commit) &&
    Array.isArray(m.entries) &&
    m.entries.every(
      (e) =>
        typeof e === 'object' &&
        e !== null &&
        Number.isSafeInteger(e.term) &&
        Number.isSafeInteger(e.index) &&
        (e.type === 0 || e.type === 1) &&
        e.data instanceof Uint8Array,
    ) &&
    typeof m.reject === 'boolean' &&
    Number.isSafeInteger(m.rejectHint) &&
    m.context instanceof Uint8Array
  );
}

export const peerService = defineService({
  name: 'shoal.raft',
  methods: {
    messages: oneWay<MessageBatch>({ validateRequest: isMessageBatch }),
    /** Tells a member that sent raft messages that it was removed from the cluster. */
    removed: oneWay<{ id: number; clusterId: number }>(),
    snapshot: clientStream<SnapshotPart, { ok: boolean }>(),
    info: unary<{ clusterId: number }, ClusterInfo>(),
    /** MemberPromote forwarded by a follower to the leader, which alone knows learner progress. */
    promote: unary<{ id: number }, ForwardResult>(),
    /** Lease keep-alives and time-to-live questions, answered by the leader's lease clock. */
    lease: unary<{ op: 'keepAlive' | 'timeToLive'; id: bigint }, LeaseTimes>(),
  },
});

/** The outcome of a forwarded request: ok, or the etcd error (gRPC code and message) to return. */
export interface ForwardResult {
  ok: boolean;
  code: number;
  message: string;
}

export interface TransportHandlers {
  /** A message from a peer for the local raft node. */
  step(message: Message): void;
  reportUnreachable(id: number): void;
  reportSnapshot(id: number, status: 'finish' | 'failure'): void;
  info(): ClusterInfo;
  promote(id: number): Promise<ForwardResult>;
  lease(op: 'keepAlive' | 'timeToLive', id: bigint): LeaseTimes | Promise<LeaseTimes>;
  /** A peer says this member was removed from the cluster. */
  removed(): void;
}

/** "host:port" from a peer URL. */
export function peerAddress(url: string): string {
  const parsed = new URL(url);
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  return `${host === 'localhost' ? '127.0.0.1' : host}:${parsed.port}`;
}

export class PeerTransport {
  private readonly server: RpcServer;
  private readonly pool: RpcClientPool;
  private readonly addresses = new Map<number, string>();
  private readonly queues = new Map<number, Message[]>();
  private readonly removedIds = new Set<number>();
  private readonly toldRemovedAtMs = new Map<number, number>();
  /** This member's own peer address, sent with every batch. */
  selfAddress = '';
  private snapshotSends = 0;
  private readonly log: Logger;
  clusterId: number;

  constructor(
    private readonly selfId: number,
    clusterId: number,
    private readonly handlers: TransportHandlers,
    logger?: Logger,
  ) {
    this.clusterId = clusterId;
    this.log = logger ?? pino({ name: 'transport', level: 'warn' });
    const rpcLogger = this.log.child({ component: 'rpc' }, { level: 'error' });
    this.server = new RpcServer({ logger: rpcLogger });
    this.pool = new RpcClientPool({
      logger: rpcLogger,
      backoff: { initialMs: 50, maxMs: 1000 },
      connectTimeoutMs: 1000,
    });
    this.server.addService(peerService, {
      messages: (batch) => this.receive(batch),
      snapshot: (parts) => this.receiveSnapshot(parts),
      info: () => this.handlers.info(),
      removed: (notice) => {
        if (notice.id === this.selfId && notice.clusterId === this.clusterId) {
          this.handlers.removed();
        }
      },
      promote: (request) => this.handlers.promote(request.id),
      lease: (request) => this.handlers.lease(request.op, BigInt(request.id)),
    });
  }

  /**
   * Serves another service on the peer port: the native client protocol (src/server/native). Call
   * it before `listen`.
   */
  addService<D extends ServiceDefinition>(
    definition: D,
    implementation: ServiceImplementation<D>,
  ): void {
    this.server.addService(definition, implementation);
  }

  /**
   * The peer RPC server and client pool, shared with SWIM (src/membership), which serves its
   * `membership` service and makes its push-pull calls over the same port and connections.
   */
  get rpc(): { server: RpcServer; clients: RpcClientPool } {
    return { server: this.server, clients: this.pool };
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return this.server.listen({ host, port });
  }

  /** Sets the peers' addresses (from the member registry); unknown peers' messages are dropped. */
  setPeers(peers: ReadonlyMap<number, string>): void {
    // A member id may come back (a removed member re-added with the same peer URLs, e.g. by
    // autopilot after it restarted with a fresh data dir): it is a member again, not removed.
    for (const id of peers.keys()) this.removedIds.delete(id);
    for (const [id, address] of this.addresses) {
      if (peers.get(id) !== address) void this.pool.remove(address, 0);
    }
    this.addresses.clear();
    for (const [id, address] of peers) if (id !== this.selfId) this.addresses.set(id, address);
  }

  /** Sends one Ready's messages: snapshots by stream, the rest as one batch per peer. */
  send(messages: readonly Message[]): void {
    for (const message of messages) {
      if (message.type === MessageType.Snap && message.snapshot !== null) {
        this.sendSnapshot(message);
        continue;
      }
      let queue = this.queues.get(message.to);
      if (queue === undefined) {
        queue = [];
        this.queues.set(message.to, queue);
      }
      if (queue.length >= PEER_QUEUE_MESSAGES_MAX) queue.shift();
      queue.push(message);
    }
    // One call carries one Ready's messages, so it is already a batch: send it now (the RPC
    // layer coalesces the socket writes of this event-loop turn) rather than waiting a turn.
    if (this.queues.size > 0) this.flush();
  }

  private flush(): void {
    for (const [to, queue] of this.queues) {
      const address = this.addresses.get(to);
      if (address === undefined) continue;
      const stub = this.pool.stub(address, peerService);
      for (const batch of splitBatches(queue)) {
        try {
          stub.messages({
            from: this.selfId,
            fromAddress: this.selfAddress,
            clusterId: this.clusterId,
            messages: batch,
          });
        } catch {
          this.handlers.reportUnreachable(to);
          break;
        }
      }
    }
    this.queues.clear();
  }

  private receive(batch: MessageBatch): void {
    if (batch.clusterId !== this.clusterId) {
      this.log.warn(
        { from: batch.from, clusterId: batch.clusterId },
        'message from another cluster dropped',
      );
      return;
    }
    if (this.removedIds.has(batch.from)) {
      this.tellRemoved(batch.from, batch.fromAddress);
      return;
    }
    for (const message of batch.messages) {
      if (message.to !== this.selfId) continue;
      if (message.type === MessageType.Snap) continue; // snapshots arrive only by stream
      this.handlers.step(message);
    }
  }

  /** Remembers (in memory) a member removed from the cluster, to tell it when it sends to us. */
  markRemoved(id: number): void {
    if (this.removedIds.size >= REMOVED_IDS_MAX) this.removedIds.clear();
    this.removedIds.add(id);
  }

  private tellRemoved(id: number, address: string): void {
    const now = performance.now();
    if (
      (this.toldRemovedAtMs.get(id) ?? Number.NEGATIVE_INFINITY) >
      now - REMOVED_NOTICE_INTERVAL_MS
    ) {
      return;
    }
    this.toldRemovedAtMs.set(id, now);
    try {
      this.pool.stub(address, peerService).removed({ id, clusterId: this.clusterId });
    } catch {
      // Unreachable: it will send again and be told then.
    }
  }

  private sendSnapshot(message: Message): void {
    const to = message.to;
    const address = this.addresses.get(to);
    const snapshot = message.snapshot as Snapshot;
    if (address === undefined || this.snapshotSends >= SNAPSHOT_SENDS_MAX) {
      this.handlers.reportSnapshot(to, 'failure');
      return;
    }
    this.snapshotSends++;
    const data = snapshot.data;
    const header = {
      message: { ...message, snapshot: { metadata: snapshot.metadata, data: new Uint8Array(0) } },
      clusterId: this.clusterId,
      totalBytes: data.length,
    };
    function* parts(): Generator<SnapshotPart> {
      yield { header };
      for (let offset = 0; offset < data.length; offset += SNAPSHOT_CHUNK_BYTES) {
        yield { chunk: data.subarray(offset, offset + SNAPSHOT_CHUNK_BYTES) };
      }
    }
    this.log.info({ to, index: snapshot.metadata.index, bytes: data.length }, 'sending snapshot');
    this.pool
      .stub(address, peerService)
      .snapshot(parts(), { timeoutMs: SNAPSHOT_SEND_TIMEOUT_MS })
      .then(
        () => this.handlers.reportSnapshot(to, 'finish'),
        (error: unknown) => {
          this.log.warn({ to, err: error }, 'snapshot send failed');
          this.handlers.reportSnapshot(to, 'failure');
        },
      )
      .finally(() => {
        this.snapshotSends--;
      });
  }

  private async receiveSnapshot(parts: AsyncIterable<SnapshotPart>): Promise<{ ok: boolean }> {
    let header: SnapshotPart['header'];
    const chunks: Uint8Array[] = [];
    let received = 0;
    for await (const part of parts) {
      if (header === undefined) {
        header = part.header;
        if (
          header === undefined ||
          !isMessage(header.message) ||
          header.clusterId !== this.clusterId
        ) {
          throw new Error('snapshot stream must start with a valid header');
        }
        if (!(header.totalBytes >= 0 && header.totalBytes <= SNAPSHOT_BYTES_MAX)) {
          throw new Error(`snapshot of ${header.totalBytes} bytes exceeds ${SNAPSHOT_BYTES_MAX}`);
        }
        continue;
      }
      if (!(part.chunk instanceof Uint8Array)) throw new Error('snapshot part without a chunk');
      received += part.chunk.length;
      if (received > header.totalBytes) throw new Error('snapshot longer than announced');
      chunks.push(part.chunk);
    }
    if (header === undefined || received !== header.totalBytes) {
      throw new Error('snapshot stream ended early');
    }
    const metadata = header.message.snapshot?.metadata;
    if (metadata === undefined) throw new Error('snapshot header without metadata');
    const data = Buffer.concat(chunks, received);
    this.handlers.step({ ...header.message, snapshot: { metadata, data } });
    return { ok: true };
  }

  /** Asks a peer (by URL) for the cluster id and member registry; used by joining members. */
  async fetchInfo(peerUrl: string, timeoutMs: number): Promise<ClusterInfo> {
    const stub: Stub<typeof peerService> = this.pool.stub(peerAddress(peerUrl), peerService);
    return stub.info({ clusterId: this.clusterId }, { timeoutMs });
  }

  /** Forwards a MemberPromote to the leader's peer address. */
  async forwardPromote(to: number, id: number, timeoutMs: number): Promise<ForwardResult> {
    const address = this.addresses.get(to);
    if (address === undefined) throw new Error(`no address for member ${to}`);
    return this.pool.stub(address, peerService).promote({ id }, { timeoutMs });
  }

  /** Asks the leader for a lease keep-alive or time to live. */
  async forwardLease(
    to: number,
    op: 'keepAlive' | 'timeToLive',
    id: bigint,
    timeoutMs: number,
  ): Promise<LeaseTimes> {
    const address = this.addresses.get(to);
    if (address === undefined) throw new Error(`no address for member ${to}`);
    return this.pool.stub(address, peerService).lease({ op, id }, { timeoutMs });
  }

  async close(): Promise<void> {
    await Promise.all([this.pool.close(200), this.server.close(200)]);
  }
}

function messageBytes(message: Message): number {
  let bytes = 64 + message.context.length;
  for (const entry of message.entries) bytes += 24 + entry.data.length;
  return bytes;
}

function splitBatches(queue: Message[]): Message[][] {
  const batches: Message[][] = [];
  let current: Message[] = [];
  let bytes = 0;
  for (const message of queue) {
    const size = messageBytes(message);
    if (current.length > 0 && bytes + size > PEER_BATCH_BYTES_MAX) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(message);
    bytes += size;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}
