/**
 * The raft-backed `EtcdBackend`: what the etcd gRPC front end calls on a cluster member.
 *
 * - Writes (put, delete, txn, compaction) are proposed through raft (`Proposer`) and answered with
 *   the result of applying them; a follower's raft forwards the proposal to the leader.
 * - Linearizable reads wait for a batched ReadIndex round (`ReadQueue`), then read the local store;
 *   serializable reads read it at once. Txns are always proposed (the store has no local txn read).
 * - The Cluster API changes membership through raft conf changes (see cluster.ts).
 * Every response carries the header: cluster id, this member's id, store revision, raft term.
 */

import { KvError, type KvErrorCode } from '../kv/errors.js';
import type { KvRequest, KvResponse } from '../kv/types.js';
import {
  fromKvDeleteRange,
  fromKvHeader,
  fromKvPut,
  fromKvRange,
  fromKvRevision,
  fromKvTxn,
  type HeaderIdentity,
  toKvDeleteRange,
  toKvPut,
  toKvRange,
  toKvTxn,
} from './convert.js';
import type { EtcdBackend } from './etcd/backend.js';
import {
  EtcdError,
  etcdErrors,
  GrpcCode,
  type GrpcCodeNumber,
  invalidArgument,
} from './etcd/errors.js';
import type * as api from './etcd/types.js';
import { randomLeaseId } from './leases.js';
import type { MemberCore } from './member-core.js';
import { trace } from './trace.js';

const KV_ERROR_CODES: Record<KvErrorCode, GrpcCodeNumber> = {
  INVALID_ARGUMENT: GrpcCode.invalidArgument,
  NOT_FOUND: GrpcCode.notFound,
  OUT_OF_RANGE: GrpcCode.outOfRange,
  FAILED_PRECONDITION: GrpcCode.failedPrecondition,
  RESOURCE_EXHAUSTED: GrpcCode.resourceExhausted,
};

/** A store error becomes the etcd error with the same message and gRPC code. */
export function toEtcdError(error: unknown): unknown {
  if (error instanceof KvError) return new EtcdError(KV_ERROR_CODES[error.code], error.message);
  return error;
}

export class RaftBackend implements EtcdBackend {
  /** The last identity handed out, and the cluster id and term it was made for. */
  private identityCached: Readonly<HeaderIdentity> | undefined;
  private identityClusterId = -1;
  private identityTerm = -1;

  constructor(private readonly core: MemberCore) {}

  /**
   * The fields every response header carries besides the revision. Every answer needs them and
   * they change only with the term (or once, when the cluster id is learned), so the three
   * bigints are made once per term instead of once per request.
   */
  identity(): Readonly<HeaderIdentity> {
    const clusterId = this.core.registry.clusterId;
    const term = this.core.raft.term;
    if (
      this.identityCached === undefined ||
      clusterId !== this.identityClusterId ||
      term !== this.identityTerm
    ) {
      this.identityCached = Object.freeze({
        clusterId: BigInt(clusterId),
        memberId: BigInt(this.core.id),
        raftTerm: BigInt(term),
      });
      this.identityClusterId = clusterId;
      this.identityTerm = term;
    }
    return this.identityCached;
  }

  private currentHeader(): api.ResponseHeader {
    return { ...this.identity(), revision: this.core.kv.revision };
  }

  /** Proposes a key-value request and returns the store's response (or throws its error). */
  private async write(request: KvRequest): Promise<KvResponse> {
    const quota = this.core.quotaCheck(request);
    if (quota !== undefined) throw toEtcdError(quota);
    const outcome = await this.core.proposer.propose({ kv: request });
    if (outcome.status === 'ok') return outcome.response;
    if (outcome.status === 'error') throw toEtcdError(outcome.error);
    throw new Error(`write applied with unexpected status ${outcome.status}`);
  }

  async range(request: api.RangeRequest): Promise<api.RangeResponse> {
    if (!request.serializable) await this.core.linearizableRead();
    try {
      return fromKvRange(this.core.kv.range(toKvRange(request)), this.identity());
    } catch (error) {
      throw toEtcdError(error);
    }
  }

  async put(request: api.PutRequest): Promise<api.PutResponse> {
    trace('req');
    const response = await this.write({ put: toKvPut(request) });
    trace('resp');
    if (!('put' in response)) throw new Error('put answered with another response');
    return fromKvPut(response.put, this.identity());
  }

  /**
   * The puts go into one raft entry; a put the quota refuses is answered at once and left out.
   * The apply gives one result per put, each turned into a response or an etcd error here.
   */
  async putBatch(requests: readonly api.PutRequest[]): Promise<Array<api.PutResponse | Error>> {
    const answers = new Array<api.PutResponse | Error>(requests.length);
    const kvBatch: KvRequest[] = [];
    const slots: number[] = [];
    for (let i = 0; i < requests.length; i++) {
      const request: KvRequest = { put: toKvPut(requests[i]!) };
      const quota = this.core.quotaCheck(request);
      if (quota !== undefined) {
        answers[i] = toEtcdError(quota) as Error;
        continue;
      }
      kvBatch.push(request);
      slots.push(i);
    }
    if (kvBatch.length === 0) return answers;
    const outcome = await this.core.proposer.propose({ kvBatch });
    if (outcome.status !== 'batch' || outcome.results.length !== kvBatch.length) {
      throw new Error(`put batch applied with unexpected status ${outcome.status}`);
    }
    const identity = this.identity();
    for (let i = 0; i < slots.length; i++) {
      const result = outcome.results[i]!;
      const slot = slots[i]!;
      if (result.status === 'error') answers[slot] = toEtcdError(result.error) as Error;
      else if ('put' in result.response) answers[slot] = fromKvPut(result.response.put, identity);
      else throw new Error('a batched put answered with another response');
    }
    return answers;
  }

  async deleteRange(request: api.DeleteRangeRequest): Promise<api.DeleteRangeResponse> {
    const response = await this.write({ deleteRange: toKvDeleteRange(request) });
    if (!('deleteRange' in response)) throw new Error('delete answered with another response');
    return fromKvDeleteRange(response.deleteRange, this.identity());
  }

  async txn(request: api.TxnRequest): Promise<api.TxnResponse> {
    const response = await this.write({ txn: toKvTxn(request) });
    if (!('txn' in response)) throw new Error('txn answered with another response');
    return fromKvTxn(response.txn, this.identity());
  }

  async compact(request: api.CompactionRequest): Promise<api.CompactionResponse> {
    const response = await this.write({
      compaction: { revision: request.revision, physical: request.physical },
    });
    if (!('compaction' in response)) throw new Error('compaction answered with another response');
    // etcd's physical compaction answers once the compacted history is gone from the backend.
    if (request.physical) await this.core.compactionDone();
    return { header: { ...this.identity(), revision: response.compaction.header.revision } };
  }

  async memberList(): Promise<api.MemberListResponse> {
    return { header: this.currentHeader(), members: this.core.members() };
  }

  async status(): Promise<api.StatusResponse> {
    const store = this.core.kv.status();
    const status = this.core.raft.node.status();
    return {
      header: this.currentHeader(),
      version: this.core.version,
      dbSize: store.dbSizeBytes,
      leader: BigInt(status.lead),
      raftIndex: BigInt(status.commit),
      raftTerm: BigInt(status.term),
      raftAppliedIndex: BigInt(this.core.stateMachine.appliedIndex),
      // etcd reports each raised alarm as the AlarmMember's text form.
      errors: this.core.alarms().map((a) => `memberID:${a.memberId} alarm:${alarmName(a.alarm)} `),
      dbSizeInUse: store.dbSizeInUseBytes,
      isLearner: status.config.learners.includes(this.core.id),
    };
  }

  async hashKv(revision: number): Promise<api.HashKvResponse> {
    try {
      const response = await this.core.kv.hashKv(revision);
      return {
        header: this.currentHeader(),
        hash: response.hash,
        compactRevision: response.compactRevision,
      };
    } catch (error) {
      throw toEtcdError(error);
    }
  }

  memberAdd(peerUrls: string[], isLearner: boolean) {
    return this.core.cluster.add(peerUrls, isLearner);
  }

  memberRemove(id: bigint) {
    return this.core.cluster.remove(id);
  }

  memberUpdate(id: bigint, peerUrls: string[]) {
    return this.core.cluster.update(id, peerUrls);
  }

  memberPromote(id: bigint) {
    return this.core.cluster.promote(id);
  }

  moveLeader(targetId: bigint) {
    return this.core.cluster.moveLeader(targetId);
  }

  /**
   * Maintenance.Alarm as etcd: GET lists raised alarms (of one type, or all for NONE); ACTIVATE and
   * DEACTIVATE go through raft and answer the alarm changed.
   */
  async alarm(action: number, memberId: bigint, alarm: number) {
    if (action === 0) return { header: this.currentHeader(), alarms: this.core.alarms(alarm) };
    if (action !== 1 && action !== 2) throw invalidArgument(`unknown alarm action ${action}`);
    if (memberId > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw invalidArgument('alarm memberID is not a member id');
    }
    const alarms = await this.core.changeAlarm(
      action === 1 ? 'activate' : 'deactivate',
      Number(memberId),
      alarm,
    );
    return { header: this.currentHeader(), alarms };
  }

  // ---- Leases: grants and revokes go through raft; expiry is decided by the leader (leases.ts).

  async leaseGrant(ttlSeconds: number, id: bigint): Promise<api.LeaseGrantResponse> {
    const response = await this.write({
      leaseGrant: { TTL: ttlSeconds, ID: id === 0n ? randomLeaseId() : id },
    });
    if (!('leaseGrant' in response)) throw new Error('grant answered with another response');
    const granted = response.leaseGrant;
    return {
      header: fromKvHeader(granted.header, this.identity()),
      id: granted.ID,
      ttlSeconds: granted.TTL,
      error: granted.error,
    };
  }

  async leaseRevoke(id: bigint): Promise<{ header: api.ResponseHeader }> {
    const response = await this.write({ leaseRevoke: { ID: id } });
    if (!('leaseRevoke' in response)) throw new Error('revoke answered with another response');
    return { header: fromKvHeader(response.leaseRevoke.header, this.identity()) };
  }

  /** The leader's lease clock answers; a follower asks the leader over the peer transport. */
  private async leaseTimes(op: 'keepAlive' | 'timeToLive', id: bigint) {
    const core = this.core;
    await core.proposer.waitForLeader();
    if (core.isLeader) {
      return op === 'keepAlive'
        ? { ttlSeconds: await core.leases.keepAlive(id), grantedTtlSeconds: 0 }
        : core.leases.timeToLive(id);
    }
    try {
      return await core.transport.forwardLease(core.raft.lead, op, id, core.requestTimeoutMs);
    } catch {
      throw etcdErrors.timeout();
    }
  }

  async leaseKeepAlive(id: bigint): Promise<api.LeaseKeepAliveResponse> {
    const { ttlSeconds } = await this.leaseTimes('keepAlive', id);
    return { header: this.currentHeader(), id, ttlSeconds };
  }

  async leaseTimeToLive(id: bigint, withKeys: boolean): Promise<api.LeaseTimeToLiveResponse> {
    const times = await this.leaseTimes('timeToLive', id);
    const lease = this.core.kv.lease(id);
    if (lease === undefined || times.ttlSeconds < 0) {
      return { header: this.currentHeader(), id, ttlSeconds: -1, grantedTtlSeconds: 0, keys: [] };
    }
    return {
      header: this.currentHeader(),
      id,
      ttlSeconds: times.ttlSeconds,
      grantedTtlSeconds: lease.ttlSeconds,
      keys: withKeys ? lease.keys : [],
    };
  }

  async leaseLeases(): Promise<api.LeaseLeasesResponse> {
    return { header: this.currentHeader(), leases: this.core.kv.leaseIds() };
  }

  // ---- Watch: every member's watchers see the revisions as that member applies them.

  header(revision: number): api.ResponseHeader {
    return { ...this.identity(), revision };
  }

  currentRevision(): number {
    return this.core.kv.revision;
  }

  compactedRevision(): number {
    return this.core.kv.compactedRevision;
  }

  subscribe(listener: (revisions: readonly api.RevisionEvents[]) => void): () => void {
    return this.core.kv.subscribe((revisions) => listener(revisions.map(fromKvRevision)));
  }

  readHistory(fromRevision: number, eventsMax: number, withPrevKv: boolean): api.HistoryPage {
    try {
      const page = this.core.kv.readHistory(fromRevision, { eventsMax, prevKv: withPrevKv });
      return { revisions: page.revisions.map(fromKvRevision), nextRevision: page.nextRevision };
    } catch (error) {
      throw toEtcdError(error);
    }
  }

  /** Maintenance.Snapshot: this member's store, as of now (the front end adds etcdctl's trailer). */
  snapshot(): { revision: number; chunks: AsyncIterable<Uint8Array>; release(): void } {
    const stream = this.core.kv.snapshot();
    return { revision: stream.revision, chunks: stream.chunks, release: () => stream.release() };
  }
}

/** etcd's AlarmType names. */
function alarmName(alarm: number): string {
  return ['NONE', 'NOSPACE', 'CORRUPT'][alarm] ?? String(alarm);
}
