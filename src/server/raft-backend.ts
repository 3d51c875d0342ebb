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
  fromKvPut,
  fromKvRange,
  fromKvTxn,
  type HeaderIdentity,
  toKvDeleteRange,
  toKvPut,
  toKvRange,
  toKvTxn,
} from './convert.js';
import type { EtcdBackend } from './etcd/backend.js';
import { EtcdError, GrpcCode, type GrpcCodeNumber } from './etcd/errors.js';
import type * as api from './etcd/types.js';
import type { MemberCore } from './member-core.js';

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
  constructor(private readonly core: MemberCore) {}

  identity(): HeaderIdentity {
    return {
      clusterId: BigInt(this.core.registry.clusterId),
      memberId: BigInt(this.core.id),
      raftTerm: BigInt(this.core.raft.term),
    };
  }

  header(): api.ResponseHeader {
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
    const response = await this.write({ put: toKvPut(request) });
    if (!('put' in response)) throw new Error('put answered with another response');
    return fromKvPut(response.put, this.identity());
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
    return { header: { ...this.identity(), revision: response.compaction.header.revision } };
  }

  async memberList(): Promise<api.MemberListResponse> {
    return { header: this.header(), members: this.core.members() };
  }

  async status(): Promise<api.StatusResponse> {
    const store = this.core.kv.status();
    const status = this.core.raft.node.status();
    return {
      header: this.header(),
      version: this.core.version,
      dbSize: store.dbSizeBytes,
      leader: BigInt(status.lead),
      raftIndex: BigInt(status.commit),
      raftTerm: BigInt(status.term),
      raftAppliedIndex: BigInt(this.core.stateMachine.appliedIndex),
      errors: this.core.alarms().length > 0 ? [`memberID:${this.core.id} alarm:NOSPACE`] : [],
      dbSizeInUse: store.dbSizeInUseBytes,
      isLearner: status.config.learners.includes(this.core.id),
    };
  }

  async hashKv(revision: number): Promise<api.HashKvResponse> {
    try {
      const response = this.core.kv.hashKv(revision);
      return {
        header: this.header(),
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

  async alarm(action: number, _memberId: bigint, _alarm: number) {
    if (action === 1) {
      throw new EtcdError(GrpcCode.unimplemented, 'shoal: alarms are raised by the quota only');
    }
    // DEACTIVATE: NOSPACE clears itself once compaction and defragmentation free space (LMDB
    // reuses freed pages), so there is nothing to disarm; GET lists the current alarms.
    return { header: this.header(), alarms: this.core.alarms() };
  }

  snapshot() {
    return this.core.maintenanceSnapshot();
  }
}
