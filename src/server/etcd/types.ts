/**
 * The etcd v3 API as plain TypeScript values: what the gRPC layer hands to an `EtcdBackend` after
 * decoding and validating a request, and what it expects back. Field names are etcd's in camelCase;
 * keys and values are bytes; revisions, versions and counts are numbers (checked to stay below
 * 2^53, which a store would need centuries of writes to reach); lease and member ids are bigint
 * because etcd hands out random 63/64-bit ids.
 */

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
  /** Zero when the key has no lease. */
  lease: bigint;
}

export type SortOrder = 'none' | 'ascend' | 'descend';
export type SortTarget = 'key' | 'version' | 'create' | 'mod' | 'value';

export interface RangeRequest {
  key: Uint8Array;
  /** Empty: the single key. [0]: every key >= key. Otherwise the half-open range [key, rangeEnd). */
  rangeEnd: Uint8Array;
  /** Zero means no limit. */
  limit: number;
  /** Zero or less means the current revision. */
  revision: number;
  sortOrder: SortOrder;
  sortTarget: SortTarget;
  serializable: boolean;
  keysOnly: boolean;
  countOnly: boolean;
  /** Zero disables each of these filters. */
  minModRevision: number;
  maxModRevision: number;
  minCreateRevision: number;
  maxCreateRevision: number;
}

export interface RangeResponse {
  header: ResponseHeader;
  kvs: KeyValue[];
  more: boolean;
  count: number;
}

export interface PutRequest {
  key: Uint8Array;
  value: Uint8Array;
  lease: bigint;
  prevKv: boolean;
  ignoreValue: boolean;
  ignoreLease: boolean;
}

export interface PutResponse {
  header: ResponseHeader;
  prevKv?: KeyValue;
}

export interface DeleteRangeRequest {
  key: Uint8Array;
  rangeEnd: Uint8Array;
  prevKv: boolean;
}

export interface DeleteRangeResponse {
  header: ResponseHeader;
  deleted: number;
  prevKvs: KeyValue[];
}

export type CompareResult = 'equal' | 'greater' | 'less' | 'notEqual';

/** What a compare looks at; the target carries the operand of the matching type. */
export type CompareTarget =
  | { target: 'version'; version: number }
  | { target: 'create'; createRevision: number }
  | { target: 'mod'; modRevision: number }
  | { target: 'value'; value: Uint8Array }
  | { target: 'lease'; lease: bigint };

export type Compare = {
  result: CompareResult;
  key: Uint8Array;
  rangeEnd: Uint8Array;
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
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}

export interface TxnResponse {
  header: ResponseHeader;
  succeeded: boolean;
  responses: ResponseOp[];
}

export interface CompactionRequest {
  revision: number;
  physical: boolean;
}

export interface CompactionResponse {
  header: ResponseHeader;
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

export interface StatusResponse {
  header: ResponseHeader;
  version: string;
  dbSize: number;
  leader: bigint;
  raftIndex: bigint;
  raftTerm: bigint;
  raftAppliedIndex: bigint;
  errors: string[];
  dbSizeInUse: number;
  isLearner: boolean;
}

export interface HashKvResponse {
  header: ResponseHeader;
  hash: number;
  compactRevision: number;
}

export interface LeaseGrantResponse {
  header: ResponseHeader;
  id: bigint;
  ttlSeconds: number;
  error: string;
}

export interface LeaseKeepAliveResponse {
  header: ResponseHeader;
  id: bigint;
  /** The renewed time to live; zero when the lease does not exist (etcd answers, not errors). */
  ttlSeconds: number;
}

export interface LeaseTimeToLiveResponse {
  header: ResponseHeader;
  id: bigint;
  /** Seconds left; -1 when the lease does not exist or has expired. */
  ttlSeconds: number;
  grantedTtlSeconds: number;
  keys: Uint8Array[];
}

export interface LeaseLeasesResponse {
  header: ResponseHeader;
  leases: bigint[];
}

export interface WatchEvent {
  type: 'put' | 'delete';
  /** For a delete: the key with modRevision set to the deletion's revision. */
  kv: KeyValue;
  prevKv?: KeyValue;
}

/** The events of one revision, in the order the revision wrote them. */
export interface RevisionEvents {
  revision: number;
  events: WatchEvent[];
}

export interface HistoryPage {
  revisions: RevisionEvents[];
  /** Where the next read starts; the current revision + 1 once the history is exhausted. */
  nextRevision: number;
}
