/**
 * A single-member `EtcdBackend` that applies requests straight to the LMDB MVCC store (src/kv), with
 * no raft: used by the API layer's own tests and by the linearizability checker's self-tests, which
 * wrap it to inject stale or late answers. Members use `RaftBackend` (src/server/raft-backend.ts). Writes queue up and are applied as one store batch per event
 * loop turn (group commit: one LMDB transaction and one sync for many clients); reads are served
 * from the committed state, which on one member is always the newest, so both are linearizable.
 * The conversions between the API's types and the store's live in src/server/convert.ts, shared
 * with the raft backend.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type * as kv from '../../kv/index.js';
import {
  APPLY_BATCH_ENTRIES_MAX,
  KvError,
  type KvErrorCode,
  type MvccStore,
} from '../../kv/index.js';
import { fromKvRevision, toKvRange, toKvTxn } from '../convert.js';
import { randomLeaseId } from '../leases.js';
import type { EtcdBackend } from './backend.js';
import { EtcdError, etcdErrors, GrpcCode, type GrpcCodeNumber } from './errors.js';
import type * as api from './types.js';

/** Writes waiting for the next batch; beyond this, callers get etcd's "too many requests". */
export const pendingWritesMax = 50_000;
/** How often expired leases are looked for. */
export const leaseCheckIntervalMs = 500;
/** Leases revoked per check at most, so a mass expiry cannot flood the store (etcd: 1000/s). */
export const leaseRevokesPerCheckMax = 500;

export interface SingleMemberOptions {
  store: MvccStore;
  clusterId: bigint;
  memberId: bigint;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  /** The etcd version this member reports in Status; clients gate features on it. */
  version?: string;
  logger?: Logger;
}

/** The API version shoal answers with: the etcd release whose API it implements. */
export const etcdApiVersion = '3.4.0';

/** One store entry waiting for the next batch: a request, or (from putBatch) several. */
type PendingWrite =
  | {
      request: kv.KvRequest;
      resolve: (response: kv.KvResponse) => void;
      reject: (error: unknown) => void;
    }
  | {
      batch: kv.KvRequest[];
      resolve: (results: kv.RequestResult[]) => void;
      reject: (error: unknown) => void;
    };

export class SingleMemberBackend implements EtcdBackend {
  readonly #store: MvccStore;
  readonly #options: SingleMemberOptions;
  #pending: PendingWrite[] = [];
  #flushScheduled = false;
  /** The single member's raft term: always 1, as there is never an election. */
  readonly #term = 1n;
  /**
   * Lease deadlines (performance.now() milliseconds). They live in memory only, like etcd's
   * lessor: a restarted member gives every stored lease a full TTL again.
   */
  readonly #leaseDeadlineMs = new Map<bigint, number>();
  readonly #revoking = new Set<bigint>();
  readonly #leaseTimer: NodeJS.Timeout;
  #compactionScheduled = false;
  #closed = false;
  /** Callers of a physical Compact waiting for the history to be physically compacted. */
  #compactionWaiters: (() => void)[] = [];

  constructor(options: SingleMemberOptions) {
    this.#store = options.store;
    this.#options = options;
    const now = performance.now();
    for (const id of this.#store.leaseIds()) {
      const lease = this.#store.lease(id);
      if (lease) this.#leaseDeadlineMs.set(id, now + lease.ttlSeconds * 1000);
    }
    this.#leaseTimer = setInterval(() => this.#revokeExpired(), leaseCheckIntervalMs);
    this.#leaseTimer.unref();
    // A compaction left unfinished by a previous run resumes in the background.
    this.#scheduleCompaction();
  }

  /** Stops the lease timer and background compaction; the store itself belongs to the caller. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#leaseTimer);
    for (const wake of this.#compactionWaiters.splice(0)) wake();
  }

  /**
   * Physical compaction runs in bounded steps between write batches (the store's contract), so
   * removing a large history never stalls requests for long.
   */
  #scheduleCompaction(): void {
    if (this.#compactionScheduled || this.#closed) return;
    if (!this.#store.status().compactionPending) {
      for (const wake of this.#compactionWaiters.splice(0)) wake();
      return;
    }
    this.#compactionScheduled = true;
    setImmediate(() => {
      this.#compactionScheduled = false;
      if (this.#closed) return;
      // Writes first: a step runs only when no batch is waiting.
      if (this.#pending.length === 0) {
        try {
          this.#store.compactStep();
        } catch (error) {
          this.#options.logger?.error({ err: error }, 'compaction step failed');
        }
      }
      if (this.#store.hashing) {
        // Steps wait for a running HashKV: resume when it ends instead of polling every turn.
        this.#compactionScheduled = true;
        void this.#store.hashesDone().then(() => {
          this.#compactionScheduled = false;
          this.#scheduleCompaction();
        });
        return;
      }
      this.#scheduleCompaction();
    });
  }

  header(revision: number): api.ResponseHeader {
    return this.#header(revision);
  }

  currentRevision(): number {
    return this.#store.revision;
  }

  compactedRevision(): number {
    return this.#store.compactedRevision;
  }

  subscribe(listener: (revisions: readonly api.RevisionEvents[]) => void): () => void {
    return this.#store.subscribe((revisions) => listener(revisions.map(fromKvRevision)));
  }

  readHistory(fromRevision: number, eventsMax: number, withPrevKv: boolean): api.HistoryPage {
    try {
      const page = this.#store.readHistory(fromRevision, { eventsMax, prevKv: withPrevKv });
      return { revisions: page.revisions.map(fromKvRevision), nextRevision: page.nextRevision };
    } catch (error) {
      throw fromKvError(error);
    }
  }

  snapshot(): { revision: number; chunks: AsyncIterable<Uint8Array>; release(): void } {
    const stream = this.#store.snapshot();
    return { revision: stream.revision, chunks: stream.chunks, release: () => stream.release() };
  }

  #header(revision: number): api.ResponseHeader {
    return {
      clusterId: this.#options.clusterId,
      memberId: this.#options.memberId,
      revision,
      raftTerm: this.#term,
    };
  }

  /** Queues a write for the next batch and resolves with its own response. */
  #write(request: kv.KvRequest): Promise<kv.KvResponse> {
    return new Promise((resolve, reject) => this.#enqueue({ request, resolve, reject }));
  }

  /** Queues several requests as one store entry (as a member's putBatch is one raft entry). */
  #writeBatch(batch: kv.KvRequest[]): Promise<kv.RequestResult[]> {
    return new Promise((resolve, reject) => this.#enqueue({ batch, resolve, reject }));
  }

  #enqueue(write: PendingWrite): void {
    if (this.#pending.length >= pendingWritesMax) {
      write.reject(new EtcdError(GrpcCode.resourceExhausted, 'etcdserver: too many requests'));
      return;
    }
    this.#pending.push(write);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => this.#flush());
    }
  }

  #flush(): void {
    this.#flushScheduled = false;
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0, APPLY_BATCH_ENTRIES_MAX);
      const first = this.#store.appliedIndex + 1;
      let results: ReturnType<MvccStore['applyBatch']>;
      try {
        results = this.#store.applyBatch(
          batch.map((w, i) =>
            'batch' in w
              ? { index: first + i, batch: w.batch }
              : { index: first + i, request: w.request },
          ),
        );
      } catch (error) {
        // The store rolled the whole batch back; every write in it failed.
        for (const write of batch) write.reject(error);
        continue;
      }
      results.forEach((result, i) => {
        const write = batch[i]!;
        if ('batch' in write) {
          if (result.status === 'batch') write.resolve(result.results);
          else write.reject(new Error(`store answered a batch with status ${result.status}`));
        } else if (result.status === 'ok') write.resolve(result.response);
        else if (result.status === 'error') write.reject(fromKvError(result.error));
        else write.reject(new Error(`store skipped entry ${result.index}: ${result.status}`));
      });
    }
  }

  async range(request: api.RangeRequest): Promise<api.RangeResponse> {
    try {
      return this.#fromRange(this.#store.range(toKvRange(request)));
    } catch (error) {
      throw fromKvError(error);
    }
  }

  async put(request: api.PutRequest): Promise<api.PutResponse> {
    const response = await this.#write({ put: request });
    if (!('put' in response)) throw new Error('store answered a put with another kind');
    return this.#fromPut(response.put);
  }

  /** One store entry for all the puts; each is answered with its response or its own error. */
  async putBatch(requests: readonly api.PutRequest[]): Promise<Array<api.PutResponse | Error>> {
    const results = await this.#writeBatch(requests.map((put) => ({ put })));
    return results.map((result) => {
      if (result.status === 'error') return fromKvError(result.error) as Error;
      if (!('put' in result.response)) throw new Error('store answered a put with another kind');
      return this.#fromPut(result.response.put);
    });
  }

  async deleteRange(request: api.DeleteRangeRequest): Promise<api.DeleteRangeResponse> {
    const response = await this.#write({ deleteRange: request });
    if (!('deleteRange' in response)) throw new Error('store answered a delete with another kind');
    return this.#fromDelete(response.deleteRange);
  }

  async txn(request: api.TxnRequest): Promise<api.TxnResponse> {
    const response = await this.#write({ txn: toKvTxn(request) });
    if (!('txn' in response)) throw new Error('store answered a txn with another kind');
    return this.#fromTxn(response.txn);
  }

  async compact(request: api.CompactionRequest): Promise<api.CompactionResponse> {
    const response = await this.#write({ compaction: request });
    if (!('compaction' in response))
      throw new Error('store answered a compaction with another kind');
    // etcd's `physical` asks to answer only once the old history is really gone.
    const done = request.physical
      ? new Promise<void>((resolve) => this.#compactionWaiters.push(resolve))
      : Promise.resolve();
    this.#scheduleCompaction();
    await done;
    return { header: this.#header(response.compaction.header.revision) };
  }

  async memberList(): Promise<api.MemberListResponse> {
    const o = this.#options;
    return {
      header: this.#header(this.#store.revision),
      members: [
        {
          id: o.memberId,
          name: o.name,
          peerUrls: o.peerUrls,
          clientUrls: o.clientUrls,
          isLearner: false,
        },
      ],
    };
  }

  async status(): Promise<api.StatusResponse> {
    const status = this.#store.status();
    const index = BigInt(status.appliedIndex);
    return {
      header: this.#header(status.currentRevision),
      version: this.#options.version ?? etcdApiVersion,
      dbSize: status.dbSizeBytes,
      leader: this.#options.memberId,
      raftIndex: index,
      raftTerm: this.#term,
      raftAppliedIndex: index,
      errors: [],
      dbSizeInUse: status.dbSizeInUseBytes,
      isLearner: false,
    };
  }

  async hashKv(revision: number): Promise<api.HashKvResponse> {
    try {
      const response = await this.#store.hashKv(revision);
      return {
        header: this.#header(response.header.revision),
        hash: response.hash,
        compactRevision: response.compactRevision,
      };
    } catch (error) {
      throw fromKvError(error);
    }
  }

  async leaseGrant(ttlSeconds: number, id: bigint): Promise<api.LeaseGrantResponse> {
    const leaseId = id === 0n ? randomLeaseId() : id;
    const response = await this.#write({ leaseGrant: { TTL: ttlSeconds, ID: leaseId } });
    if (!('leaseGrant' in response)) throw new Error('store answered a grant with another kind');
    const granted = response.leaseGrant;
    this.#leaseDeadlineMs.set(granted.ID, performance.now() + granted.TTL * 1000);
    return {
      header: this.#header(granted.header.revision),
      id: granted.ID,
      ttlSeconds: granted.TTL,
      error: granted.error,
    };
  }

  async leaseRevoke(id: bigint): Promise<{ header: api.ResponseHeader }> {
    const response = await this.#write({ leaseRevoke: { ID: id } });
    if (!('leaseRevoke' in response)) throw new Error('store answered a revoke with another kind');
    this.#leaseDeadlineMs.delete(id);
    return { header: this.#header(response.leaseRevoke.header.revision) };
  }

  async leaseKeepAlive(id: bigint): Promise<api.LeaseKeepAliveResponse> {
    const lease = this.#store.lease(id);
    const header = this.#header(this.#store.revision);
    if (!lease || !this.#leaseDeadlineMs.has(id)) return { header, id, ttlSeconds: 0 };
    this.#leaseDeadlineMs.set(id, performance.now() + lease.ttlSeconds * 1000);
    return { header, id, ttlSeconds: lease.ttlSeconds };
  }

  async leaseTimeToLive(id: bigint, withKeys: boolean): Promise<api.LeaseTimeToLiveResponse> {
    const lease = this.#store.lease(id);
    const deadline = this.#leaseDeadlineMs.get(id);
    const header = this.#header(this.#store.revision);
    if (!lease || deadline === undefined) {
      return { header, id, ttlSeconds: -1, grantedTtlSeconds: 0, keys: [] };
    }
    const remainingSeconds = Math.max(0, Math.floor((deadline - performance.now()) / 1000));
    return {
      header,
      id,
      ttlSeconds: remainingSeconds,
      grantedTtlSeconds: lease.ttlSeconds,
      keys: withKeys ? lease.keys : [],
    };
  }

  async leaseLeases(): Promise<api.LeaseLeasesResponse> {
    return { header: this.#header(this.#store.revision), leases: this.#store.leaseIds() };
  }

  /** Revokes leases past their deadline, a bounded number per check. */
  #revokeExpired(): void {
    const now = performance.now();
    let started = 0;
    for (const [id, deadline] of this.#leaseDeadlineMs) {
      if (started >= leaseRevokesPerCheckMax) break;
      if (deadline > now || this.#revoking.has(id)) continue;
      started++;
      this.#revoking.add(id);
      this.leaseRevoke(id)
        .catch((error: unknown) => {
          // Already revoked by a client: nothing left to expire.
          if (error instanceof EtcdError && error.message === etcdErrors.leaseNotFound().message) {
            this.#leaseDeadlineMs.delete(id);
          }
        })
        .finally(() => this.#revoking.delete(id));
    }
  }

  #fromRange(r: kv.RangeResponse): api.RangeResponse {
    return { header: this.#header(r.header.revision), kvs: r.kvs, more: r.more, count: r.count };
  }

  #fromPut(r: kv.PutResponse): api.PutResponse {
    const out: api.PutResponse = { header: this.#header(r.header.revision) };
    if (r.prevKv) out.prevKv = r.prevKv;
    return out;
  }

  #fromDelete(r: kv.DeleteRangeResponse): api.DeleteRangeResponse {
    return { header: this.#header(r.header.revision), deleted: r.deleted, prevKvs: r.prevKvs };
  }

  #fromTxn(r: kv.TxnResponse): api.TxnResponse {
    return {
      header: this.#header(r.header.revision),
      succeeded: r.succeeded,
      responses: r.responses.map((op): api.ResponseOp => {
        if ('responseRange' in op)
          return { type: 'range', response: this.#fromRange(op.responseRange) };
        if ('responsePut' in op) return { type: 'put', response: this.#fromPut(op.responsePut) };
        if ('responseDeleteRange' in op) {
          return { type: 'deleteRange', response: this.#fromDelete(op.responseDeleteRange) };
        }
        return { type: 'txn', response: this.#fromTxn(op.responseTxn) };
      }),
    };
  }
}

const kvCodes: Record<KvErrorCode, GrpcCodeNumber> = {
  INVALID_ARGUMENT: GrpcCode.invalidArgument,
  NOT_FOUND: GrpcCode.notFound,
  OUT_OF_RANGE: GrpcCode.outOfRange,
  FAILED_PRECONDITION: GrpcCode.failedPrecondition,
  RESOURCE_EXHAUSTED: GrpcCode.resourceExhausted,
};

/** Store errors carry etcd's message and a status name; the API sends them unchanged. */
export function fromKvError(error: unknown): unknown {
  if (error instanceof KvError) return new EtcdError(kvCodes[error.code], error.message);
  return error;
}
