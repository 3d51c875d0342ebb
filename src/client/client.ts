/**
 * ShoalClient: the native-protocol client (usage in index.ts). Each call goes to a member chosen by
 * the router (leader for writes and linearizable reads, round-robin for serializable reads) and is
 * retried only when that is safe: reads on any failure that says the member could not answer
 * (unreachable, timed out, no leader), writes only when the failure proves nothing was applied (the
 * request was never sent, or the member answered "no leader"/"not leader"). Everything else
 * surfaces at once as a ShoalError.
 */
import type { Logger } from 'pino';
import { type CallOptions, isRpcError, RpcError, type Stub } from '../rpc/index.js';
import {
  isConnectionFailure,
  isLeaderless,
  isUnsentFailure,
  leaderHintOf,
  ShoalError,
} from './errors.js';
import { Lease } from './lease.js';
import {
  type CompactResponse,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  ETCD_MESSAGE,
  type KeyValue,
  type LeaseGrantResponse,
  type LeaseKeepAliveResponse,
  type LeaseRevokeResponse,
  type LeaseTimeToLiveResponse,
  type MemberListResponse,
  type NativeKvService,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type ServerStatsResponse,
  type StatusResponse,
  type TxnRequest,
  type TxnResponse,
  type WatchRequest,
} from './protocol.js';
import { type Endpoint, normalizeEndpoint, Router } from './router.js';
import {
  type Bytes,
  type DeleteOptions,
  deleteRequest,
  type GetOptions,
  type KeyOptions,
  type PutOptions,
  prefixEnd,
  putRequest,
  rangeRequest,
  TxnBuilder,
  toBytes,
} from './txn.js';
import { Watch } from './watch.js';

export interface WatchOptions extends KeyOptions {
  /** First revision to deliver; by default the changes after the current revision. */
  startRevision?: number;
  /** Include each event's previous key-value. */
  prevKv?: boolean;
}

/** Attempts per call at most (the first try included) before the last error is thrown. */
export const CALL_ATTEMPTS_MAX = 12;
/** Delay before the first retry; it doubles per attempt up to RETRY_DELAY_MS_MAX. */
export const RETRY_DELAY_MS_INITIAL = 25;
export const RETRY_DELAY_MS_MAX = 400;
export const CALL_TIMEOUT_MS_DEFAULT = 5_000;

export interface ShoalClientOptions {
  /** Members' native endpoints ("host:port" or "http://host:port"): their peer URLs. */
  endpoints: readonly string[];
  /** Time each attempt of a call may take. */
  timeoutMs?: number;
  logger?: Logger;
}

type Kind = 'write' | 'read' | 'serializableRead';

export class ShoalClient {
  private readonly router: Router;
  private readonly callOptions: CallOptions;
  private closed = false;
  /** Leases whose keep-alive loop runs; close() stops them. */
  private readonly leases = new Set<Lease>();

  constructor(options: ShoalClientOptions) {
    this.callOptions = { timeoutMs: options.timeoutMs ?? CALL_TIMEOUT_MS_DEFAULT };
    this.router = new Router(options.endpoints, this.callOptions, options.logger);
  }

  /** The value of one key, or undefined when it does not exist. */
  async get(
    key: Bytes,
    options?: Omit<GetOptions, 'prefix' | 'rangeEnd'>,
  ): Promise<KeyValue | undefined> {
    const response = await this.rangeRequest(rangeRequest(key, options));
    return response.kvs[0];
  }

  /** The keys of a range or prefix (`{ prefix: true }`), with etcd's options. */
  range(key: Bytes, options?: GetOptions): Promise<RangeResponse> {
    return this.rangeRequest(rangeRequest(key, options));
  }

  put(key: Bytes, value: Bytes, options?: PutOptions): Promise<PutResponse> {
    return this.putRequest(putRequest(key, value, options));
  }

  delete(key: Bytes, options?: DeleteOptions): Promise<DeleteRangeResponse> {
    return this.call('write', (stub) =>
      stub.deleteRange(deleteRequest(key, options), this.callOptions),
    );
  }

  /** Starts a transaction; finish it with `.commit()`. */
  txn(): TxnBuilder {
    return new TxnBuilder((request) => this.txnRequest(request));
  }

  txnRequest(request: TxnRequest): Promise<TxnResponse> {
    return this.call('write', (stub) => stub.txn(request, this.callOptions));
  }

  /** Discards history before `revision`; `physical` waits until it is gone from disk. */
  compact(revision: number, options?: { physical?: boolean }): Promise<CompactResponse> {
    const request = { revision, physical: options?.physical ?? false };
    return this.call('write', (stub) => stub.compact(request, this.callOptions));
  }

  /**
   * Sends a prepared put to the leader. While the leader is known, puts issued in the same
   * event-loop turn leave together as one call (put-batcher.ts); a retry goes alone.
   */
  putRequest(request: PutRequest): Promise<PutResponse> {
    const leader = this.router.leader;
    if (leader === undefined || this.closed)
      return this.call('write', (stub) => stub.put(request, this.callOptions));
    return leader.puts
      .put(request)
      .catch((error: unknown) =>
        this.recover(error, leader, 'write', (stub) => stub.put(request, this.callOptions)),
      );
  }

  /** Sends a prepared range: serializable ones round-robin over members, others to the leader. */
  rangeRequest(request: RangeRequest): Promise<RangeResponse> {
    this.flushPuts();
    const kind: Kind = request.serializable ? 'serializableRead' : 'read';
    const endpoint = kind === 'read' ? this.router.leader : this.router.pickAny();
    if (endpoint === undefined || this.closed)
      return this.call(kind, (stub) => stub.range(request, this.callOptions));
    return endpoint.stub
      .range(request, this.callOptions)
      .catch((error: unknown) =>
        this.recover(error, endpoint, kind, (stub) => stub.range(request, this.callOptions)),
      );
  }

  deleteRangeRequest(request: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    return this.call('write', (stub) => stub.deleteRange(request, this.callOptions));
  }

  /**
   * Grants a lease of `ttlSeconds`; attach it to keys with `put(key, value, { lease: id })`.
   * Retried only when it was provably not applied (a retried grant could create a second lease).
   */
  leaseGrant(ttlSeconds: number, id = 0n): Promise<LeaseGrantResponse> {
    const request = { ttlSeconds, id };
    return this.call('write', (stub) => stub.leaseGrant(request, this.callOptions));
  }

  /**
   * Grants a lease and keeps it alive until it is revoked, lost or the client closes (usage in
   * lease.ts). `id` 0n (the default) lets the cluster pick one.
   */
  async grant(ttlSeconds: number, options?: { id?: bigint }): Promise<Lease> {
    const sentMs = performance.now();
    const granted = await this.leaseGrant(ttlSeconds, options?.id ?? 0n);
    if (granted.error !== '') throw new ShoalError('FAILED_PRECONDITION', granted.error);
    const lease = new Lease(this, granted.id, granted.ttlSeconds, sentMs, (stopped) =>
      this.leases.delete(stopped),
    );
    if (this.closed) lease.close();
    else this.leases.add(lease);
    return lease;
  }

  /** Revokes a lease and deletes its keys. */
  leaseRevoke(id: bigint): Promise<LeaseRevokeResponse> {
    return this.call('write', (stub) => stub.leaseRevoke({ id }, this.callOptions));
  }

  /**
   * Renews a lease once (call it about every ttl/3 seconds); ttlSeconds 0 in the answer means the
   * lease is gone. Renewing is idempotent, so it is retried like a read.
   */
  leaseKeepAlive(id: bigint, options?: { timeoutMs?: number }): Promise<LeaseKeepAliveResponse> {
    const callOptions =
      options?.timeoutMs === undefined ? this.callOptions : { timeoutMs: options.timeoutMs };
    return this.call('read', (stub) => stub.leaseKeepAlive({ id }, callOptions));
  }

  leaseTimeToLive(id: bigint, options?: { keys?: boolean }): Promise<LeaseTimeToLiveResponse> {
    const request = { id, keys: options?.keys ?? false };
    return this.call('read', (stub) => stub.leaseTimeToLive(request, this.callOptions));
  }

  /** Follows the changes of a key or range (usage in watch.ts). */
  watch(key: Bytes, options?: WatchOptions): Watch {
    this.flushPuts();
    const bytes = toBytes(key);
    const request: WatchRequest = { key: bytes };
    if (options?.rangeEnd !== undefined) request.rangeEnd = toBytes(options.rangeEnd);
    else if (options?.prefix) request.rangeEnd = prefixEnd(bytes);
    if (options?.startRevision !== undefined) request.startRevision = options.startRevision;
    if (options?.prevKv) request.prevKv = true;
    return new Watch(this.router, request);
  }

  /** Status of the given member, or of the leader. */
  status(endpoint?: string): Promise<StatusResponse> {
    if (endpoint !== undefined)
      return this.direct(endpoint, (stub) => stub.status({}, this.callOptions));
    return this.call('read', (stub) => stub.status({}, this.callOptions));
  }

  memberList(): Promise<MemberListResponse> {
    return this.call('read', (stub) => stub.memberList({}, this.callOptions));
  }

  /** The per-method request counters of one member's native service. */
  stats(endpoint: string): Promise<ServerStatsResponse> {
    return this.direct(endpoint, (stub) => stub.stats({}, this.callOptions));
  }

  /** "host:port" of the member the client currently sends writes to, after discovering it. */
  async leaderEndpoint(): Promise<string | undefined> {
    const leader = this.router.leader ?? (await this.router.discover());
    return leader?.address;
  }

  /** The endpoints the client knows (given and learned). */
  get endpoints(): string[] {
    return this.router.endpoints.map((e) => e.address);
  }

  /** Stops every keep-alive loop (revoking nothing) and closes the connections. */
  async close(): Promise<void> {
    this.closed = true;
    const closed = new ShoalError('CANCELLED', 'the client is closed');
    for (const endpoint of this.router.endpoints) endpoint.puts.cancel(closed);
    for (const lease of [...this.leases]) lease.close();
    await this.router.close();
  }

  /**
   * Sends the puts waiting for the end of the turn now, before another call leaves: a write or
   * read issued after a put must not overtake it (put-batcher.ts).
   */
  private flushPuts(): void {
    for (const endpoint of this.router.endpoints) endpoint.puts.flush();
  }

  private async direct<T>(
    address: string,
    send: (stub: Stub<NativeKvService>) => Promise<T>,
  ): Promise<T> {
    this.flushPuts();
    const normalized = normalizeEndpoint(address);
    const endpoint = this.router.endpoints.find((e) => e.address === normalized);
    if (endpoint === undefined)
      throw new ShoalError('INVALID_ARGUMENT', `unknown endpoint ${address}`);
    try {
      return await send(endpoint.stub);
    } catch (error) {
      throw ShoalError.from(error, endpoint.address);
    }
  }

  private async call<T>(kind: Kind, send: (stub: Stub<NativeKvService>) => Promise<T>): Promise<T> {
    if (this.closed) throw new ShoalError('CANCELLED', 'the client is closed');
    this.flushPuts();
    const endpoint = await this.target(kind);
    if (endpoint === undefined) return this.recover(noReachableLeader(), undefined, kind, send);
    try {
      return await send(endpoint.stub);
    } catch (error) {
      return this.recover(error, endpoint, kind, send);
    }
  }

  /**
   * Where a call goes. Writes wait for a reachable leader rather than go to a follower during an
   * election, where a forwarded proposal can be lost with an outcome the client cannot learn.
   * Linearizable reads may go to any member (it confirms its read index with the leader).
   */
  private async target(kind: Kind): Promise<Endpoint | undefined> {
    if (kind === 'serializableRead') return this.router.pickAny();
    const leader = await this.router.pickLeader();
    return leader ?? (kind === 'read' ? this.router.pickAny() : undefined);
  }

  /** Handles a failed first attempt: notes what it says about the cluster, retries if safe. */
  private async recover<T>(
    firstError: unknown,
    firstEndpoint: Endpoint | undefined,
    kind: Kind,
    send: (stub: Stub<NativeKvService>) => Promise<T>,
  ): Promise<T> {
    let error = firstError;
    let endpoint = firstEndpoint;
    for (let attempt = 1; ; attempt++) {
      this.learn(error, endpoint);
      if (this.closed || attempt >= CALL_ATTEMPTS_MAX || !retryable(kind, error))
        throw ShoalError.from(error, endpoint?.address);
      await delay(Math.min(RETRY_DELAY_MS_INITIAL * 2 ** (attempt - 1), RETRY_DELAY_MS_MAX));
      endpoint = await this.target(kind);
      if (endpoint === undefined) {
        error = noReachableLeader();
        continue;
      }
      try {
        return await send(endpoint.stub);
      } catch (next) {
        error = next;
      }
    }
  }

  /** Updates the router from a failure: a dead member is skipped, a leaderless one re-probed. */
  private learn(error: unknown, endpoint: Endpoint | undefined): void {
    if (endpoint === undefined) return;
    if (isConnectionFailure(error)) this.router.markDown(endpoint);
    else if (isLeaderless(error)) this.router.leaderLost(leaderHintOf(error));
    else if (isRpcError(error, 'DEADLINE_EXCEEDED') && this.router.leader === endpoint)
      this.router.leaderLost(undefined);
  }
}

/**
 * Reads may be sent again after any failure that says the member could not answer. Writes only
 * when nothing can have been applied: never sent, or refused for want of a leader.
 */
function retryable(kind: Kind, error: unknown): boolean {
  if (isUnsentFailure(error) || isLeaderless(error)) return true;
  if (kind === 'write') return false;
  return isRpcError(error, 'UNAVAILABLE') || isRpcError(error, 'DEADLINE_EXCEEDED');
}

/** The failure of a call that found no leader to send to: nothing was sent, so it may retry. */
function noReachableLeader(): RpcError {
  return new RpcError('UNAVAILABLE', `${ETCD_MESSAGE.noLeader} (no reachable member reports one)`);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
