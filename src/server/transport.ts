/**
 * Peer transport: raft traffic between members over shoal RPC on the peer URL.
 *
 * - Raft messages go as one-way sends, coalesced: each `send()` (one Ready's messages) becomes one
 *   `shoal.raft/batch` per peer (split at PEER_BATCH_BYTES_MAX) in the binary encoding of
 *   raft-wire.ts.
 *   Loss is fine (raft retries); a peer in reconnect backoff is reported unreachable to raft.
 * - Snapshots (a `Snap` message carrying the whole state) are sent resumably, in two steps:
 *   1. `snapshotOffset` (unary) names the snapshot: sender id, index, term, total bytes and the
 *      CRC32C of the whole data. The receiver answers how many bytes of exactly that snapshot it
 *      already holds in a partial file on disk (snapshot-inbox.ts), or 0.
 *   2. `snapshot` (client stream): a header with the message's metadata, the same identity and the
 *      offset the sender starts from, then SNAPSHOT_CHUNK_BYTES chunks from that offset on. The
 *      receiver appends them to the partial file (nothing accumulates in memory), and when the last
 *      byte is in it reads the file back once, checks the whole against the CRC32C, deletes the
 *      partial and steps the complete message. The sender reports finish/failure to raft.
 *   If a stream breaks, the receiver keeps the partial; raft marks the send failed and later sends
 *   the same snapshot again, and step 1 then answers the offset reached, so only the rest travels.
 *   Why this is safe: a partial is reused only for an identical identity (same sender, index, term,
 *   size and checksum), any other transfer starting at 0 discards it, and the CRC32C over the whole
 *   catches torn writes (partials are not fsynced), a stale file or a sender that changed its
 *   bytes; on a mismatch the partial is deleted and the answer is DATA_LOSS, so the next attempt
 *   starts from 0. A resume offset that no longer matches the file (another transfer came between
 *   the two steps) is refused with FAILED_PRECONDITION and simply retried by raft.
 *   Limits: SNAPSHOT_BYTES_MAX per snapshot (it is read back into memory for raft), one partial
 *   file and one writing transfer per member (a newer transfer stops an older one), chunks of at
 *   most SNAPSHOT_PARTIAL_CHUNK_BYTES_MAX, SNAPSHOT_SENDS_MAX concurrent sends, and a deadline per
 *   step. The sender keeps using the data raft hands it in memory.
 *   Compatibility: a sender asking a member from before this protocol gets UNIMPLEMENTED for step
 *   1 and sends the whole snapshot (the old receiver ignores the header's new fields); a stream
 *   from such an old sender lacks the checksum and is refused (INVALID_ARGUMENT).
 * - `raft.info` answers a joining member's question "which cluster is this": the cluster id and
 *   member registry (etcd's joining members ask their peers the same).
 */
import { crc32c } from '@node-rs/crc32';
import { type Logger, pino } from 'pino';
import type { ConfState, Message, Snapshot } from '../raft/index.js';
import { MessageType } from '../raft/index.js';
import {
  clientStream,
  defineService,
  isRpcError,
  oneWay,
  RpcClientPool,
  RpcError,
  RpcServer,
  type ServiceDefinition,
  type ServiceImplementation,
  type Stub,
  unary,
} from '../rpc/index.js';
import type { LeaseTimes } from './leases.js';
import {
  decodeRaftBatch,
  encodedMessageBytes,
  encodeRaftBatch,
  type RaftBatch,
} from './raft-wire.js';
import type { RegistryState } from './registry.js';
import {
  type PartialWriter,
  SNAPSHOT_PARTIAL_CHUNK_BYTES_MAX,
  type SnapshotIdentity,
  type SnapshotInbox,
} from './snapshot-inbox.js';

/** Bytes of raft messages in one one-way frame (well under the RPC frame limit of 16 MiB). */
export const PEER_BATCH_BYTES_MAX = 4 * 1024 * 1024;
/** Messages queued for one peer before a flush; past it the oldest are dropped (raft retries). */
export const PEER_QUEUE_MESSAGES_MAX = 8192;
export const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;
/** Removed member ids remembered to tell them; past it the set restarts (they are told later). */
export const REMOVED_IDS_MAX = 1024;
const REMOVED_NOTICE_INTERVAL_MS = 1000;
/** Largest snapshot a member accepts (it is read back into memory for raft once complete). */
export const SNAPSHOT_BYTES_MAX = 2 * 1024 * 1024 * 1024;
/** Snapshot transfers a member sends at once (raft sends one per lagging follower). */
export const SNAPSHOT_SENDS_MAX = 4;
const SNAPSHOT_SEND_TIMEOUT_MS = 10 * 60 * 1000;
/** The offset question may wait for the receiver to stop an older transfer's chunk write. */
const SNAPSHOT_OFFSET_TIMEOUT_MS = 30 * 1000;

/** The msgpack form of a batch, still accepted from older members (see `peerService.batch`). */
type MessageBatch = RaftBatch;

interface SnapshotHeader {
  message: Message;
  clusterId: number;
  totalBytes: number;
  /** CRC32C of the whole snapshot data. */
  crc: number;
  /** The byte the stream's chunks start at (the receiver's answer to `snapshotOffset`). */
  offset: number;
}

interface SnapshotPart {
  header?: SnapshotHeader;
  chunk?: Uint8Array;
}

interface SnapshotOffsetRequest extends SnapshotIdentity {
  clusterId: number;
}

/**
 * Test and metrics hooks on snapshot transfers. `sendingSnapshotChunk` runs before each chunk is
 * handed to the stream (awaited; throwing cuts the transfer, as a broken connection would);
 * `receivedSnapshotChunk` runs after each chunk is written to the partial file.
 */
export interface SnapshotTransferObserver {
  sendingSnapshotChunk?(to: number, offset: number, bytes: number): Promise<void> | void;
  receivedSnapshotChunk?(from: number, receivedBytes: number): void;
}

export interface PeerTransportOptions {
  /** Where received snapshots are assembled; without it this member refuses snapshot streams. */
  snapshotInbox?: SnapshotInbox;
  observer?: SnapshotTransferObserver;
}

/** CRC32C of snapshot data raft hands out, so a retried send does not recompute it. */
const snapshotChecksums = new WeakMap<Uint8Array, number>();

function snapshotChecksum(data: Uint8Array): number {
  let crc = snapshotChecksums.get(data);
  if (crc === undefined) {
    crc = crc32c(Buffer.from(data.buffer, data.byteOffset, data.length)) >>> 0;
    snapshotChecksums.set(data, crc);
  }
  return crc;
}

function isSnapshotIdentity(value: unknown): value is SnapshotIdentity {
  const v = value as SnapshotIdentity;
  return (
    typeof v === 'object' &&
    v !== null &&
    [v.from, v.index, v.term, v.totalBytes].every((n) => Number.isSafeInteger(n) && n >= 0) &&
    v.totalBytes <= SNAPSHOT_BYTES_MAX &&
    Number.isInteger(v.crc) &&
    v.crc >= 0 &&
    v.crc <= 0xffff_ffff
  );
}

function isSnapshotOffsetRequest(value: unknown): value is SnapshotOffsetRequest {
  return (
    isSnapshotIdentity(value) && typeof (value as SnapshotOffsetRequest).clusterId === 'number'
  );
}

function isIdList(value: unknown): boolean {
  return Array.isArray(value) && value.length <= CONF_IDS_MAX && value.every(Number.isSafeInteger);
}

/** A snapshot's membership, from a peer: raft would fail on a malformed one. */
function isConfState(value: unknown): value is ConfState {
  const c = value as ConfState;
  return (
    typeof c === 'object' &&
    c !== null &&
    isIdList(c.voters) &&
    isIdList(c.learners) &&
    isIdList(c.votersOutgoing) &&
    isIdList(c.learnersNext) &&
    typeof c.autoLeave === 'boolean'
  );
}

/** The identity a stream header claims, or null if the header is malformed. */
function headerIdentity(header: SnapshotHeader | undefined): SnapshotIdentity | null {
  if (typeof header !== 'object' || header === null || !isMessage(header.message)) return null;
  const message = header.message;
  const metadata = message.snapshot?.metadata;
  if (
    message.type !== MessageType.Snap ||
    typeof metadata !== 'object' ||
    metadata === null ||
    !isConfState(metadata.confState)
  ) {
    return null;
  }
  const id = {
    from: message.from,
    index: metadata.index,
    term: metadata.term,
    totalBytes: header.totalBytes,
    crc: header.crc,
  };
  if (!isSnapshotIdentity(id)) return null;
  if (!(Number.isSafeInteger(header.offset) && header.offset >= 0)) return null;
  return header.offset <= id.totalBytes ? id : null;
}

const SUPERSEDED = Symbol('superseded');
/** Member ids in one list of a snapshot's membership; far above any real cluster. */
const CONF_IDS_MAX = 4096;

export interface ClusterInfo {
  registry: RegistryState;
}

function isBytes(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array;
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
    /**
     * Raft messages in the binary encoding of raft-wire.ts (what members send). `messages`, the
     * same batch as a msgpack map, is still accepted from members that predate it.
     */
    batch: oneWay<Uint8Array>({ validateRequest: isBytes }),
    messages: oneWay<MessageBatch>({ validateRequest: isMessageBatch }),
    /** Tells a member that sent raft messages that it was removed from the cluster. */
    removed: oneWay<{ id: number; clusterId: number }>(),
    /** How many bytes of this snapshot the receiver already holds (step 1 of a transfer). */
    snapshotOffset: unary<SnapshotOffsetRequest, { offset: number }>({
      validateRequest: isSnapshotOffsetRequest,
    }),
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
  private readonly inbox: SnapshotInbox | null;
  private readonly observer: SnapshotTransferObserver;
  clusterId: number;

  constructor(
    private readonly selfId: number,
    clusterId: number,
    private readonly handlers: TransportHandlers,
    logger?: Logger,
    options: PeerTransportOptions = {},
  ) {
    this.clusterId = clusterId;
    this.inbox = options.snapshotInbox ?? null;
    this.observer = options.observer ?? {};
    this.log = logger ?? pino({ name: 'transport', level: 'warn' });
    const rpcLogger = this.log.child({ component: 'rpc' }, { level: 'error' });
    this.server = new RpcServer({ logger: rpcLogger });
    this.pool = new RpcClientPool({
      logger: rpcLogger,
      backoff: { initialMs: 50, maxMs: 1000 },
      connectTimeoutMs: 1000,
    });
    this.server.addService(peerService, {
      batch: (bytes) => this.receiveEncoded(bytes),
      messages: (batch) => this.receive(batch),
      snapshotOffset: (request) => this.snapshotOffset(request),
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

  /**
   * Sends one Ready's messages: snapshots by stream, the rest as one batch per peer, written to the
   * sockets at once, or with the rest of this event-loop turn's writes when `atEndOfTurn`.
   */
  send(messages: readonly Message[], atEndOfTurn = false): void {
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
    // One call carries one Ready's messages, so it is already a batch: write it to the socket now.
    // Waiting for the RPC layer's end-of-turn write would let the leader's own WAL write and the
    // rest of the turn go first, while the followers' round trip is the longer path to commit.
    if (this.queues.size > 0) this.flush(!atEndOfTurn);
  }

  private flush(now: boolean): void {
    for (const [to, queue] of this.queues) {
      const address = this.addresses.get(to);
      if (address === undefined) continue;
      const client = this.pool.get(address);
      const stub = client.stub(peerService);
      for (const batch of splitBatches(queue)) {
        try {
          stub.batch(
            encodeRaftBatch({
              from: this.selfId,
              fromAddress: this.selfAddress,
              clusterId: this.clusterId,
              messages: batch,
            }),
          );
        } catch {
          this.handlers.reportUnreachable(to);
          break;
        }
      }
      if (now) client.flush();
    }
    this.queues.clear();
  }

  private receiveEncoded(bytes: Uint8Array): void {
    let batch: RaftBatch;
    try {
      batch = decodeRaftBatch(bytes);
    } catch (error) {
      this.log.warn({ err: error }, 'malformed raft batch dropped');
      return;
    }
    this.receive(batch);
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
    if (address === undefined || this.snapshotSends >= SNAPSHOT_SENDS_MAX) {
      this.handlers.reportSnapshot(to, 'failure');
      return;
    }
    this.snapshotSends++;
    this.transferSnapshot(address, message)
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

  /** Asks the peer where to resume (step 1), then streams the rest of the snapshot (step 2). */
  private async transferSnapshot(address: string, message: Message): Promise<void> {
    const to = message.to;
    const snapshot = message.snapshot as Snapshot;
    const data = snapshot.data;
    const id: SnapshotIdentity = {
      from: this.selfId,
      index: snapshot.metadata.index,
      term: snapshot.metadata.term,
      totalBytes: data.length,
      crc: snapshotChecksum(data),
    };
    const stub = this.pool.stub(address, peerService);
    const offset = await this.askSnapshotOffset(stub, id);
    if (!(Number.isSafeInteger(offset) && offset >= 0 && offset <= data.length)) {
      throw new Error(`peer ${to} answered snapshot offset ${offset} of ${data.length}`);
    }
    const header: SnapshotHeader = {
      message: { ...message, snapshot: { metadata: snapshot.metadata, data: new Uint8Array(0) } },
      clusterId: this.clusterId,
      totalBytes: data.length,
      crc: id.crc,
      offset,
    };
    const observer = this.observer;
    async function* parts(): AsyncGenerator<SnapshotPart> {
      yield { header };
      for (let position = offset; position < data.length; position += SNAPSHOT_CHUNK_BYTES) {
        const chunk = data.subarray(position, position + SNAPSHOT_CHUNK_BYTES);
        await observer.sendingSnapshotChunk?.(to, position, chunk.length);
        yield { chunk };
      }
    }
    this.log.info(
      { to, index: id.index, bytes: data.length, offset },
      offset > 0 ? 'resuming snapshot send' : 'sending snapshot',
    );
    await stub.snapshot(parts(), { timeoutMs: SNAPSHOT_SEND_TIMEOUT_MS });
  }

  /**
   * Step 1: where the peer wants the stream to start. A member from before resumable transfers
   * answers UNIMPLEMENTED; it takes the whole snapshot (it ignores the header's new fields).
   */
  private async askSnapshotOffset(
    stub: Stub<typeof peerService>,
    id: SnapshotIdentity,
  ): Promise<number> {
    try {
      const answer = await stub.snapshotOffset(
        { ...id, clusterId: this.clusterId },
        { timeoutMs: SNAPSHOT_OFFSET_TIMEOUT_MS },
      );
      return answer.offset;
    } catch (error) {
      if (isRpcError(error) && error.code === 'UNIMPLEMENTED') return 0;
      throw error;
    }
  }

  private async snapshotOffset(request: SnapshotOffsetRequest): Promise<{ offset: number }> {
    if (request.clusterId !== this.clusterId || this.inbox === null) return { offset: 0 };
    const { clusterId: _, ...id } = request;
    return { offset: await this.inbox.offset(id) };
  }

  /**
   * Receives one stream (step 2): writes its chunks to the inbox's partial file, and steps the
   * snapshot once it is complete and checks. The partial survives a broken stream for a resume.
   */
  private async receiveSnapshot(parts: AsyncIterable<SnapshotPart>): Promise<{ ok: boolean }> {
    const iterator = parts[Symbol.asyncIterator]();
    try {
      const first = await iterator.next();
      const header = first.done === true ? undefined : (first.value as SnapshotPart | null)?.header;
      const id = headerIdentity(header);
      if (
        header === undefined ||
        id === null ||
        header.clusterId !== this.clusterId ||
        header.message.to !== this.selfId
      ) {
        throw new RpcError('INVALID_ARGUMENT', 'snapshot stream must start with a valid header');
      }
      if (this.inbox === null) {
        throw new RpcError('FAILED_PRECONDITION', 'this member does not receive snapshots');
      }
      const writer = await this.inbox.begin(id, header.offset);
      try {
        await this.writeChunks(iterator, writer, id.from);
        const data = await writer.complete();
        const metadata = header.message.snapshot!.metadata;
        this.handlers.step({ ...header.message, snapshot: { metadata, data } });
      } finally {
        await writer.release();
      }
      return { ok: true };
    } finally {
      void Promise.resolve(iterator.return?.()).catch(() => {});
    }
  }

  /** Appends the stream's chunks to the partial file until the stream ends or is superseded. */
  private async writeChunks(
    iterator: AsyncIterator<SnapshotPart>,
    writer: PartialWriter,
    from: number,
  ): Promise<void> {
    const superseded = writer.superseded.then((): typeof SUPERSEDED => SUPERSEDED);
    for (;;) {
      const next = await Promise.race([iterator.next(), superseded]);
      if (next === SUPERSEDED) {
        throw new RpcError('ABORTED', 'snapshot transfer superseded by a newer one');
      }
      if (next.done === true) return;
      const chunk = (next.value as SnapshotPart | null)?.chunk;
      if (!(chunk instanceof Uint8Array) || chunk.length > SNAPSHOT_PARTIAL_CHUNK_BYTES_MAX) {
        throw new RpcError('INVALID_ARGUMENT', 'snapshot part without a chunk, or too large');
      }
      await writer.write(chunk);
      this.observer.receivedSnapshotChunk?.(from, writer.receivedBytes);
    }
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

function splitBatches(queue: Message[]): Message[][] {
  const batches: Message[][] = [];
  let current: Message[] = [];
  let bytes = 0;
  for (const message of queue) {
    const size = encodedMessageBytes(message);
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
