/**
 * Errors the key-value state machine returns, with etcd 3.4's gRPC status codes and messages
 * (etcdserver/api/v3rpc/rpctypes), so clients such as etcdctl and the etcd3 npm package recognise
 * them by message. The server maps `code` onto the gRPC status code of the same name.
 */

/** gRPC status code names used by the key-value errors. */
export type KvErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'OUT_OF_RANGE'
  | 'FAILED_PRECONDITION'
  | 'RESOURCE_EXHAUSTED';

/** The numeric gRPC status code of each name (google.rpc.Code). */
export const GRPC_STATUS_CODE: Readonly<Record<KvErrorCode, number>> = {
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  FAILED_PRECONDITION: 9,
  RESOURCE_EXHAUSTED: 8,
  OUT_OF_RANGE: 11,
};

/** A request-level error: applying the request changed nothing, and the client gets this status. */
export class KvError extends Error {
  readonly code: KvErrorCode;

  constructor(code: KvErrorCode, message: string) {
    super(message);
    this.name = 'KvError';
    this.code = code;
  }

  /** The numeric gRPC status code to send. */
  get grpcCode(): number {
    return GRPC_STATUS_CODE[this.code];
  }
}

/** etcd's messages, verbatim; clients match on them. */
export const KvErrorMessage = {
  emptyKey: 'etcdserver: key is not provided',
  keyNotFound: 'etcdserver: key not found',
  valueProvided: 'etcdserver: value is provided',
  leaseProvided: 'etcdserver: lease is provided',
  tooManyOps: 'etcdserver: too many operations in txn request',
  duplicateKey: 'etcdserver: duplicate key given in txn request',
  invalidSortOption: 'etcdserver: invalid sort option',
  compacted: 'etcdserver: mvcc: required revision has been compacted',
  futureRev: 'etcdserver: mvcc: required revision is a future revision',
  noSpace: 'etcdserver: mvcc: database space exceeded',
  leaseNotFound: 'etcdserver: requested lease not found',
  leaseExist: 'etcdserver: lease already exists',
  leaseTtlTooLarge: 'etcdserver: too large lease TTL',
} as const;

export const errEmptyKey = (): KvError => new KvError('INVALID_ARGUMENT', KvErrorMessage.emptyKey);
export const errKeyNotFound = (): KvError =>
  new KvError('INVALID_ARGUMENT', KvErrorMessage.keyNotFound);
export const errValueProvided = (): KvError =>
  new KvError('INVALID_ARGUMENT', KvErrorMessage.valueProvided);
export const errLeaseProvided = (): KvError =>
  new KvError('INVALID_ARGUMENT', KvErrorMessage.leaseProvided);
export const errTooManyOps = (): KvError =>
  new KvError('INVALID_ARGUMENT', KvErrorMessage.tooManyOps);
export const errDuplicateKey = (): KvError =>
  new KvError('INVALID_ARGUMENT', KvErrorMessage.duplicateKey);
export const errInvalidSortOption = (): KvError =>
  new KvError('INVALID_ARGUMENT', KvErrorMessage.invalidSortOption);
export const errCompacted = (): KvError => new KvError('OUT_OF_RANGE', KvErrorMessage.compacted);
export const errFutureRev = (): KvError => new KvError('OUT_OF_RANGE', KvErrorMessage.futureRev);
export const errNoSpace = (): KvError => new KvError('RESOURCE_EXHAUSTED', KvErrorMessage.noSpace);
export const errLeaseNotFound = (): KvError =>
  new KvError('NOT_FOUND', KvErrorMessage.leaseNotFound);
export const errLeaseExist = (): KvError =>
  new KvError('FAILED_PRECONDITION', KvErrorMessage.leaseExist);
export const errLeaseTtlTooLarge = (): KvError =>
  new KvError('OUT_OF_RANGE', KvErrorMessage.leaseTtlTooLarge);

/**
 * shoal's own limit: LMDB keys are at most 1978 bytes, so longer etcd keys are refused with this
 * error instead of failing deep inside the store. (etcd itself allows keys up to the request size.)
 */
export const errKeyTooLong = (maxBytes: number): KvError =>
  new KvError('INVALID_ARGUMENT', `shoal: key is longer than ${maxBytes} bytes`);
