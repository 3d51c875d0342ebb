/**
 * shoal's native key-value protocol: the etcd v3 KV, Maintenance.Status and Cluster.MemberList
 * calls as a shoal RPC service (msgpack over shoal's framed TCP), for clients that do not need gRPC
 * compatibility and want the cheaper path. The client owns this definition so that both the client
 * (src/client) and the member serving it (src/server/native) can import it without breaking the
 * layering: it imports nothing but src/rpc.
 *
 * Messages are plain objects with etcd's field names in camelCase. Keys and values are bytes
 * (Uint8Array; they arrive as Buffers), revisions and counts are numbers, and lease, member and
 * cluster ids and raft terms/indexes are bigint, because etcd hands them out as random 64-bit
 * integers. Request fields other than `key` may be left out; an absent field means etcd's proto3
 * default (0, false, empty bytes), so the smallest put on the wire is `{ key, value }`.
 *
 * Errors are `RpcError`s whose code is the gRPC status etcd uses and whose message is etcd's own
 * text ("etcdserver: mvcc: required revision has been compacted", ...), so code written against
 * etcd can match on either. A member that knows who the leader is appends a hint to "not leader"
 * and "no leader"-style answers: ` (leader ${id} at ${address})`; `parseLeaderHint` reads it.
 */
import { defineService, serverStream, unary } from '../rpc/index.js';

export interface ResponseHeader {
  clusterId: bigint;
  memberId: bigint;
  revision: number;
  raftTerm: bigint;
}

export interface KeyValue {
  key: Uint8Array;
  createRevision: number;
  modRevision: number;
  version: number;
  value: Uint8Array;
  /** 0n when the key has no lease. */
  lease: bigint;
}

export type SortOrder = 'none' | 'ascend' | 'descend';
export type SortTarget = 'key' | 'version' | 'create' | 'mod' | 'value';

export const SORT_ORDERS: readonly SortOrder[] = ['none', 'ascend', 'descend'];
export const SORT_TARGETS: readonly SortTarget[] = ['key', 'version', 'create', 'mod', 'value'];

export interface RangeRequest {
  key: Uint8Array;
  /** Empty: only `key`. A single 0x00 byte: every key >= `key`. Otherwise [key, rangeEnd). */
  rangeEnd?: Uint8Array;
  /** Maximum number of keys returned; 0 means no limit. */
  limit?: number;
  /** Read at this past revision; 0 means the current revision. */
  revision?: number;
  sortOrder?: SortOrder;
  sortTarget?: SortTarget;
  /** Answer from the member's local state, which may be stale; any member can serve it. */
  serializable?: boolean;
  keysOnly?: boolean;
  countOnly?: boolean;
  minModRevision?: number;
  maxModRevision?: number;
  minCreateRevision?: number;
  maxCreateRevision?: number;
}

export interface RangeResponse {
  header: ResponseHeader;
  kvs: KeyValue[];
  more: boolean;
  count: number;
}

export interface PutRequest {
  key: Uint8Array;
  value?: Uint8Array;
  lease?: bigint;
  prevKv?: boolean;
  ignoreValue?: boolean;
  ignoreLease?: boolean;
}

export interface PutResponse {
  header: ResponseHeader;
  prevKv?: KeyValue;
}

/**
 * Several independent puts in one call: what ShoalClient sends when more than one put to the same
 * member is waiting at the end of an event-loop turn (put-batcher.ts). Each put is its own request
 * with its own revision and its own answer, exactly as if it had been sent alone; the batch only
 * saves the per-call work of both sides. At most PUT_BATCH_PUTS_MAX puts.
 */
export interface PutBatchRequest {
  puts: PutRequest[];
}

/** A put of a batch that failed: its gRPC status number and etcd's message. */
export interface PutBatchError {
  error: { status: number; message: string };
}

/** One answer per put, in the order of the request's puts. */
export interface PutBatchResponse {
  results: Array<PutResponse | PutBatchError>;
}

/** The most puts one putBatch call may carry. */
export const PUT_BATCH_PUTS_MAX = 1024;
/** The most key and value bytes, summed over its puts, one putBatch call may carry. */
export const PUT_BATCH_BYTES_MAX = 1024 * 1024;

export interface DeleteRangeRequest {
  key: Uint8Array;
  rangeEnd?: Uint8Array;
  prevKv?: boolean;
}

export interface DeleteRangeResponse {
  header: ResponseHeader;
  deleted: number;
  prevKvs: KeyValue[];
}

export type CompareResult = 'equal' | 'greater' | 'less' | 'notEqual';
export const COMPARE_RESULTS: readonly CompareResult[] = ['equal', 'greater', 'less', 'notEqual'];

/** What a compare looks at, with the operand of the matching type. */
export type CompareTarget =
  | { target: 'version'; version: number }
  | { target: 'create'; createRevision: number }
  | { target: 'mod'; modRevision: number }
  | { target: 'value'; value: Uint8Array }
  | { target: 'lease'; lease: bigint };

export type Compare = {
  result: CompareResult;
  key: Uint8Array;
  rangeEnd?: Uint8Array;
} & CompareTarget;

export type RequestOp =
  | { type: 'range'; request: RangeRequest }
  | { type: 'put'; request: PutRequest }
  | { type: 'deleteRange'; request: DeleteRangeRequest }
  | { type: 'txn'; request: TxnRequest };

export type ResponseOp =
  | { type: 'range'; response: RangeResponse }
  | { type: 'put'; response: PutResponse }
  | { type: 'deleteRange'; response: DeleteRangeResponse }
  | { type: 'txn'; response: TxnResponse };

export interface TxnRequest {
  compare?: Compare[];
  success?: RequestOp[];
  failure?: RequestOp[];
}

export interface TxnResponse {
  header: ResponseHeader;
  succeeded: boolean;
  responses: ResponseOp[];
}

export interface CompactRequest {
  revision: number;
  /** Answer only once the compacted history is physically gone. */
  physical?: boolean;
}

export interface CompactResponse {
  header: ResponseHeader;
}

export interface StatusResponse {
  header: ResponseHeader;
  version: string;
  dbSize: number;
  /** The leader's member id as this member knows it; 0n when there is none. */
  leader: bigint;
  raftIndex: bigint;
  raftTerm: bigint;
  raftAppliedIndex: bigint;
  errors: string[];
  dbSizeInUse: number;
  isLearner: boolean;
}

export interface Member {
  id: bigint;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

export interface MemberListResponse {
  header: ResponseHeader;
  members: Member[];
}

/** Requests this member's native service has answered since it started, by method. */
export interface ServerStatsResponse {
  memberId: bigint;
  requests: Record<string, number>;
}

export interface WatchRequest {
  key: Uint8Array;
  /** Same conventions as RangeRequest.rangeEnd. */
  rangeEnd?: Uint8Array;
  /** First revision to deliver; 0 means the revisions after the current one. */
  startRevision?: number;
  /** Fill each event's prevKv (the key's value before the event), when the key existed. */
  prevKv?: boolean;
}

export interface WatchEvent {
  type: 'put' | 'delete';
  /** For a delete: the key, with modRevision set to the deletion's revision. */
  kv: KeyValue;
  prevKv?: KeyValue;
}

/**
 * One message of a watch stream. The first says `created` with the revision the watch starts
 * after; the others carry the matching events of whole revisions, in revision order. A watch whose
 * start revision has been compacted ends with `canceled` and the compacted revision.
 */
export interface WatchResponse {
  header: ResponseHeader;
  events: WatchEvent[];
  created?: boolean;
  canceled?: boolean;
  compactRevision?: number;
}

export interface LeaseGrantRequest {
  ttlSeconds: number;
  /** 0n lets the member pick a random id. */
  id?: bigint;
}

export interface LeaseGrantResponse {
  header: ResponseHeader;
  id: bigint;
  ttlSeconds: number;
  error: string;
}

export interface LeaseIdRequest {
  id: bigint;
}

export interface LeaseRevokeResponse {
  header: ResponseHeader;
}

export interface LeaseKeepAliveResponse {
  header: ResponseHeader;
  id: bigint;
  /** The renewed time to live; 0 when the lease does not exist (as etcd answers). */
  ttlSeconds: number;
}

export interface LeaseTimeToLiveRequest {
  id: bigint;
  keys?: boolean;
}

export interface LeaseTimeToLiveResponse {
  header: ResponseHeader;
  id: bigint;
  /** Seconds left; -1 when the lease does not exist or has expired. */
  ttlSeconds: number;
  grantedTtlSeconds: number;
  keys: Uint8Array[];
}

/** An empty request, for methods that take no argument. */
export type Empty = Record<string, never>;

/** The native key-value service. Its name travels in every call frame, so it is short. */
export const nativeKv = defineService({
  name: 'kv',
  methods: {
    range: unary<RangeRequest, RangeResponse>(),
    put: unary<PutRequest, PutResponse>(),
    putBatch: unary<PutBatchRequest, PutBatchResponse>(),
    deleteRange: unary<DeleteRangeRequest, DeleteRangeResponse>(),
    txn: unary<TxnRequest, TxnResponse>(),
    compact: unary<CompactRequest, CompactResponse>(),
    status: unary<Empty, StatusResponse>(),
    memberList: unary<Empty, MemberListResponse>(),
    stats: unary<Empty, ServerStatsResponse>(),
    leaseGrant: unary<LeaseGrantRequest, LeaseGrantResponse>(),
    leaseRevoke: unary<LeaseIdRequest, LeaseRevokeResponse>(),
    leaseKeepAlive: unary<LeaseIdRequest, LeaseKeepAliveResponse>(),
    leaseTimeToLive: unary<LeaseTimeToLiveRequest, LeaseTimeToLiveResponse>(),
    /** Events on a key or range, from a start revision on, served from the member's own store. */
    watch: serverStream<WatchRequest, WatchResponse>(),
  },
});

export type NativeKvService = typeof nativeKv;

/** etcd's messages the client reacts to (retry, leader discovery). */
export const ETCD_MESSAGE = {
  noLeader: 'etcdserver: no leader',
  notLeader: 'etcdserver: not leader',
  leaderChanged: 'etcdserver: leader changed',
  stopped: 'etcdserver: server stopped',
  compacted: 'etcdserver: mvcc: required revision has been compacted',
  futureRevision: 'etcdserver: mvcc: required revision is a future revision',
} as const;

export interface LeaderHint {
  id: bigint;
  /** host:port of the leader's native service, when the member knows it. */
  address: string | undefined;
}

/** Appends the leader hint to an error message. */
export function formatLeaderHint(message: string, hint: LeaderHint): string {
  return `${message} (leader ${hint.id.toString(16)} at ${hint.address ?? 'unknown'})`;
}

const HINT_PATTERN = / \(leader ([0-9a-f]+) at ([^)]+)\)$/;

/** Reads the hint `formatLeaderHint` appended, if the message carries one. */
export function parseLeaderHint(message: string): LeaderHint | undefined {
  const match = HINT_PATTERN.exec(message);
  if (match === null) return undefined;
  const address = match[2] === 'unknown' ? undefined : match[2];
  return { id: BigInt(`0x${match[1]}`), address };
}

/** "host:port" of a URL such as "http://127.0.0.1:2380" (localhost becomes 127.0.0.1). */
export function addressOfUrl(url: string): string | undefined {
  try {
    const parsed = new URL(url);
    if (parsed.port === '') return undefined;
    const host = parsed.hostname.replace(/^\[|\]$/g, '');
    return `${host === 'localhost' ? '127.0.0.1' : host}:${parsed.port}`;
  } catch {
    return undefined;
  }
}
