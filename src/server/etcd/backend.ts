/**
 * The contract between the etcd gRPC front end and whatever executes requests. The front end
 * decodes, validates and size-checks every request, then calls one method; the backend applies it
 * (directly to the MVCC store for a single member, through raft for a cluster) and answers with a
 * full response including its header. A backend reports failures by throwing `EtcdError`s from
 * `errors.ts` (compacted, future revision, no leader, timeout, ...); anything else it throws is
 * logged and returned to the client as an UNKNOWN status, never crashing the member.
 */
import type {
  CompactionRequest,
  CompactionResponse,
  DeleteRangeRequest,
  DeleteRangeResponse,
  HashKvResponse,
  Member,
  MemberListResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  ResponseHeader,
  StatusResponse,
  TxnRequest,
  TxnResponse,
} from './types.js';

export interface EtcdBackend {
  /** Reads; `request.serializable` allows answering from local, possibly stale, state. */
  range(request: RangeRequest): Promise<RangeResponse>;
  put(request: PutRequest): Promise<PutResponse>;
  deleteRange(request: DeleteRangeRequest): Promise<DeleteRangeResponse>;
  /** Compares and both branches have already been validated (op count, duplicate keys). */
  txn(request: TxnRequest): Promise<TxnResponse>;
  /** Throws `compacted` when revision <= the compacted revision, `futureRevision` past the head. */
  compact(request: CompactionRequest): Promise<CompactionResponse>;
  memberList(): Promise<MemberListResponse>;
  status(): Promise<StatusResponse>;
  /** Hash of the key-value history up to `revision` (0 = head); used by corruption checks. */
  hashKv(revision: number): Promise<HashKvResponse>;

  /** Cluster API; a backend without membership changes leaves these out (UNIMPLEMENTED). */
  memberAdd?(peerUrls: string[], isLearner: boolean): Promise<MemberAddResponse>;
  memberRemove?(id: bigint): Promise<MemberListResponse>;
  memberUpdate?(id: bigint, peerUrls: string[]): Promise<MemberListResponse>;
  memberPromote?(id: bigint): Promise<MemberListResponse>;
  /** Maintenance.MoveLeader: hand leadership to `targetId` (served by the leader only). */
  moveLeader?(targetId: bigint): Promise<{ header: ResponseHeader }>;
  /** Maintenance.Alarm: action 0 = GET, 1 = ACTIVATE, 2 = DEACTIVATE; alarm 1 = NOSPACE. */
  alarm?(action: number, memberId: bigint, alarm: number): Promise<AlarmResponse>;
  /** Maintenance.Snapshot: the whole key-value state as a byte stream (see the backend's docs). */
  snapshot?(): Promise<SnapshotStream>;
}

export interface MemberAddResponse {
  header: ResponseHeader;
  member: Member;
  members: Member[];
}

export interface AlarmResponse {
  header: ResponseHeader;
  alarms: { memberId: bigint; alarm: number }[];
}

export interface SnapshotStream {
  header: ResponseHeader;
  totalBytes: number;
  chunks: AsyncIterable<Uint8Array>;
}
