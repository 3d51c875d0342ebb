/**
 * Request and response types of shoal's etcd-v3-compatible key-value state machine.
 *
 * They mirror etcd 3.4's protobuf messages (`etcdserverpb` rpc.proto and `mvccpb` kv.proto) so the
 * gRPC surface can map wire messages onto them one to one. Field names are protobuf's JSON names
 * (lowerCamelCase: `rangeEnd`, `createRevision`, `prevKv`, and `TTL`/`ID` for leases, exactly as
 * protobuf spells them). Conventions:
 * - keys and values are `Uint8Array` (arbitrary bytes, including 0x00);
 * - revisions, versions, counts and limits are `number`: they stay far below 2^53 in practice, and
 *   the store asserts they are safe integers where they enter (`assertSafeInteger`);
 * - lease ids, cluster ids and member ids are `bigint`: etcd generates them as random 63/64-bit
 *   integers, which exceed 2^53;
 * - request fields are optional where protobuf's proto3 default (0, false, empty) is meaningful, so
 *   an absent field means the default; response fields are always filled.
 * These types are a contract with the server layer: change them only by adding optional fields.
 */

/** The header of every response. The store fills `revision`; the server fills the rest. */
export interface ResponseHeader {
  clusterId: bigint;
  memberId: bigint;
  /** The key-value store revision when the request was applied (or read). */
  revision: number;
  raftTerm: number;
}

/** mvccpb.KeyValue. */
export interface KeyValue {
  key: Uint8Array;
  /** Revision of the last creation of this key (0 for a deletion event's kv). */
  createRevision: number;
  /** Revision of the last modification of this key. */
  modRevision: number;
  /** Number of modifications since creation; a deletion resets it to 0. */
  version: number;
  value: Uint8Array;
  /** The attached lease id, 0n when none. */
  lease: bigint;
}

export const SortOrder = { NONE: 0, ASCEND: 1, DESCEND: 2 } as const;
export type SortOrder = (typeof SortOrder)[keyof typeof SortOrder];

export const SortTarget = { KEY: 0, VERSION: 1, CREATE: 2, MOD: 3, VALUE: 4 } as const;
export type SortTarget = (typeof SortTarget)[keyof typeof SortTarget];

export interface RangeRequest {
  key: Uint8Array;
  /** Empty: only `key`. A single 0x00 byte: every key >= `key`. Otherwise [key, rangeEnd). */
  rangeEnd?: Uint8Array;
  /** Maximum number of keys returned; 0 or negative means no limit. */
  limit?: number;
  /** Read at this past revision; 0 or negative means the current revision. */
  revision?: number;
  sortOrder?: SortOrder;
  sortTarget?: SortTarget;
  /** Handled by the server (serializable reads skip ReadIndex); the store ignores it. */
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
  /** True when `limit` cut the result short. */
  more: boolean;
  /** Number of keys in the range (before limit and the min/max revision filters, as etcd). */
  count: number;
}

export interface PutRequest {
  key: Uint8Array;
  value?: Uint8Array;
  /** Lease to attach, 0n (or absent) for none. */
  lease?: bigint;
  prevKv?: boolean;
  /** Keep the current value (the key must exist). */
  ignoreValue?: boolean;
  /** Keep the current lease (the key must exist). */
  ignoreLease?: boolean;
}

export interface PutResponse {
  header: ResponseHeader;
  prevKv?: KeyValue;
}

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

export const CompareResult = { EQUAL: 0, GREATER: 1, LESS: 2, NOT_EQUAL: 3 } as const;
export type CompareResult = (typeof CompareResult)[keyof typeof CompareResult];

export const CompareTarget = { VERSION: 0, CREATE: 1, MOD: 2, VALUE: 3, LEASE: 4 } as const;
export type CompareTarget = (typeof CompareTarget)[keyof typeof CompareTarget];

/**
 * One condition of a transaction. Protobuf's `target_union` oneof is flattened: the field that
 * matches `target` is read and an absent one counts as its zero value, as etcd does.
 */
export interface Compare {
  result: CompareResult;
  target: CompareTarget;
  key: Uint8Array;
  /** Same conventions as RangeRequest.rangeEnd; every key in the range must satisfy the compare. */
  rangeEnd?: Uint8Array;
  version?: number;
  createRevision?: number;
  modRevision?: number;
  value?: Uint8Array;
  lease?: bigint;
}

/** One operation of a transaction: exactly one field is set (protobuf oneof `request`). */
export type RequestOp =
  | { requestRange: RangeRequest }
  | { requestPut: PutRequest }
  | { requestDeleteRange: DeleteRangeRequest }
  | { requestTxn: TxnRequest };

/** The response of one transaction operation, matching the request's kind. */
export type ResponseOp =
  | { responseRange: RangeResponse }
  | { responsePut: PutResponse }
  | { responseDeleteRange: DeleteRangeResponse }
  | { responseTxn: TxnResponse };

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

export interface CompactionRequest {
  revision: number;
  /** Handled by the server (wait until the compaction is on disk); compaction here is synchronous. */
  physical?: boolean;
}

export interface CompactionResponse {
  header: ResponseHeader;
}

export interface LeaseGrantRequest {
  /** Requested time to live in seconds. */
  TTL: number;
  /** The lease id; the proposer picks a random non-zero id when the client sent 0. */
  ID: bigint;
}

export interface LeaseGrantResponse {
  header: ResponseHeader;
  ID: bigint;
  TTL: number;
  error: string;
}

export interface LeaseRevokeRequest {
  ID: bigint;
}

export interface LeaseRevokeResponse {
  header: ResponseHeader;
}

/**
 * etcd's LeaseCheckpointRequest: the leader records how long each lease had left, so a new leader
 * (or a restarted cluster) does not hand the full TTL out again. A remaining TTL of 0 clears the
 * checkpoint (a keep-alive renewed the lease).
 */
export interface LeaseCheckpointRequest {
  checkpoints: { ID: bigint; remainingTtl: number }[];
}

export interface LeaseCheckpointResponse {
  header: ResponseHeader;
}

export interface HashKVRequest {
  /** Hash the store up to this revision; 0 means the current revision. */
  revision?: number;
}

export interface HashKVResponse {
  header: ResponseHeader;
  /** CRC-32C over the key bucket, computed the way etcd 3.4 does. */
  hash: number;
  compactRevision: number;
}

export const EventType = { PUT: 0, DELETE: 1 } as const;
export type EventType = (typeof EventType)[keyof typeof EventType];

/** mvccpb.Event. A DELETE event's kv carries only the key and modRevision (as etcd's). */
export interface Event {
  type: EventType;
  kv: KeyValue;
  prevKv?: KeyValue;
}

/**
 * A command the server proposes through raft and the store applies (etcd's InternalRaftRequest,
 * restricted to what the key-value state machine owns). Exactly one field is set.
 */
export type KvRequest =
  | { range: RangeRequest }
  | { put: PutRequest }
  | { deleteRange: DeleteRangeRequest }
  | { txn: TxnRequest }
  | { compaction: CompactionRequest }
  | { leaseGrant: LeaseGrantRequest }
  | { leaseRevoke: LeaseRevokeRequest }
  | { leaseCheckpoint: LeaseCheckpointRequest };

/** The response to a KvRequest, with the same field name set. */
export type KvResponse =
  | { range: RangeResponse }
  | { put: PutResponse }
  | { deleteRange: DeleteRangeResponse }
  | { txn: TxnResponse }
  | { compaction: CompactionResponse }
  | { leaseGrant: LeaseGrantResponse }
  | { leaseRevoke: LeaseRevokeResponse }
  | { leaseCheckpoint: LeaseCheckpointResponse };

/** Throws a RangeError unless `value` is a safe integer; used where numbers enter the store. */
export function assertSafeInteger(value: number, what: string): void {
  if (!Number.isSafeInteger(value))
    throw new RangeError(`${what} must be a safe integer: ${value}`);
}
