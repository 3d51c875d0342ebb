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
  HistoryPage,
  LeaseGrantResponse,
  LeaseKeepAliveResponse,
  LeaseLeasesResponse,
  LeaseTimeToLiveResponse,
  Member,
  MemberListResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  ResponseHeader,
  RevisionEvents,
  StatusResponse,
  TxnRequest,
  TxnResponse,
} from './types.js';

export interface EtcdBackend {
  /** Reads; `request.serializable` allows answering from local, possibly stale, state. */
  range(request: RangeRequest): Promise<RangeResponse>;
  put(request: PutRequest): Promise<PutResponse>;
  /**
   * Several puts applied in order as one write (one raft entry), each with its own revision.
   * Answers one result per put, in order: its response, or the error that refused it alone (a
   * lease not found, the quota). A failure of the write as a whole (no leader, a timeout)
   * rejects the promise instead.
   */
  putBatch(requests: readonly PutRequest[]): Promise<Array<PutResponse | Error>>;
  deleteRange(request: DeleteRangeRequest): Promise<DeleteRangeResponse>;
  /** Compares and both branches have already been validated (op count, duplicate keys). */
  txn(request: TxnRequest): Promise<TxnResponse>;
  /** Throws `compacted` when revision <= the compacted revision, `futureRevision` past the head. */
  compact(request: CompactionRequest): Promise<CompactionResponse>;
  memberList(): Promise<MemberListResponse>;
  status(): Promise<StatusResponse>;
  /** Hash of the key-value history up to `revision` (0 = head); used by corruption checks. */
  hashKv(revision: number): Promise<HashKvResponse>;
  /** Grants a lease; `id` 0 lets the backend pick a random positive 63-bit id. */
  leaseGrant(ttlSeconds: number, id: bigint): Promise<LeaseGrantResponse>;
  /** Revokes a lease and deletes its keys; throws `leaseNotFound` for unknown ids. */
  leaseRevoke(id: bigint): Promise<{ header: ResponseHeader }>;
  /** Renews a lease to its granted TTL; answers ttlSeconds 0 for unknown ids (etcd does). */
  leaseKeepAlive(id: bigint): Promise<LeaseKeepAliveResponse>;
  leaseTimeToLive(id: bigint, withKeys: boolean): Promise<LeaseTimeToLiveResponse>;
  leaseLeases(): Promise<LeaseLeasesResponse>;

  // Watch support. The front end runs the watch protocol; the backend only provides events.
  /** Header for watch responses at the given revision. */
  header(revision: number): ResponseHeader;
  currentRevision(): number;
  /** The revision history was last compacted at (what a canceled watch reports). */
  compactedRevision(): number;
  /**
   * Calls `listener` synchronously after each commit with the new revisions' events (prevKv
   * always filled when the key existed). Returns the unsubscribe function.
   */
  subscribe(listener: (revisions: readonly RevisionEvents[]) => void): () => void;
  /**
   * Reads committed events from `fromRevision` on, at most about `eventsMax` (whole revisions).
   * Synchronous, so no commit can slip between the page and the next live event. Throws
   * `compacted` when fromRevision is below the compacted revision.
   */
  readHistory(fromRevision: number, eventsMax: number, withPrevKv: boolean): HistoryPage;

  /**
   * A consistent copy of the whole store as a stream of chunks (shoal's snapshot format, not
   * etcd's bbolt file). The caller consumes `chunks` or calls `release()`.
   */
  snapshot(): { revision: number; chunks: AsyncIterable<Uint8Array>; release(): void };

  /** Cluster API; a backend without membership changes leaves these out (UNIMPLEMENTED). */
  memberAdd?(peerUrls: string[], isLearner: boolean): Promise<MemberAddResponse>;
  memberRemove?(id: bigint): Promise<MemberListResponse>;
  memberUpdate?(id: bigint, peerUrls: string[]): Promise<MemberListResponse>;
  memberPromote?(id: bigint): Promise<MemberListResponse>;
  /** Maintenance.MoveLeader: hand leadership to `targetId` (served by the leader, as etcd). */
  moveLeader?(targetId: bigint): Promise<{ header: ResponseHeader }>;
  /** Maintenance.Alarm: action 0 = GET, 1 = ACTIVATE, 2 = DEACTIVATE; alarm 1 = NOSPACE. */
  alarm?(action: number, memberId: bigint, alarm: number): Promise<AlarmResponse>;
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
