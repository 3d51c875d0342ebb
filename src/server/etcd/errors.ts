/**
 * Errors the etcd API returns, with etcd's exact gRPC status codes and messages. Clients match on
 * these strings (etcdctl prints them, client libraries turn some into typed errors), so a backend
 * signals a condition by throwing one of the `EtcdError`s built here, never a free-form error.
 */

/** gRPC status codes used by the etcd API (the numbers are gRPC's, fixed by its spec). */
export const GrpcCode = {
  ok: 0,
  cancelled: 1,
  unknown: 2,
  invalidArgument: 3,
  deadlineExceeded: 4,
  notFound: 5,
  failedPrecondition: 9,
  outOfRange: 11,
  unimplemented: 12,
  internal: 13,
  unavailable: 14,
  dataLoss: 15,
  resourceExhausted: 8,
} as const;
export type GrpcCodeNumber = (typeof GrpcCode)[keyof typeof GrpcCode];

/** An error that crosses the etcd API: a gRPC status code and the message clients expect. */
export class EtcdError extends Error {
  readonly code: GrpcCodeNumber;
  constructor(code: GrpcCodeNumber, message: string) {
    super(message);
    this.name = 'EtcdError';
    this.code = code;
  }
}

function define(code: GrpcCodeNumber, message: string): () => EtcdError {
  return () => new EtcdError(code, message);
}

const c = GrpcCode;

/** The catalogue of etcd's server errors that shoal can produce (etcd 3.4 wording). */
export const etcdErrors = {
  emptyKey: define(c.invalidArgument, 'etcdserver: key is not provided'),
  keyNotFound: define(c.invalidArgument, 'etcdserver: key not found'),
  valueProvided: define(c.invalidArgument, 'etcdserver: value is provided'),
  leaseProvided: define(c.invalidArgument, 'etcdserver: lease is provided'),
  tooManyOps: define(c.invalidArgument, 'etcdserver: too many operations in txn request'),
  duplicateKey: define(c.invalidArgument, 'etcdserver: duplicate key given in txn request'),
  invalidSortOption: define(c.invalidArgument, 'etcdserver: invalid sort option'),
  compacted: define(c.outOfRange, 'etcdserver: mvcc: required revision has been compacted'),
  futureRevision: define(c.outOfRange, 'etcdserver: mvcc: required revision is a future revision'),
  noSpace: define(c.resourceExhausted, 'etcdserver: mvcc: database space exceeded'),
  leaseNotFound: define(c.notFound, 'etcdserver: requested lease not found'),
  leaseExists: define(c.failedPrecondition, 'etcdserver: lease already exists'),
  leaseTtlTooLarge: define(c.outOfRange, 'etcdserver: too large lease TTL'),
  memberNotFound: define(c.notFound, 'etcdserver: member not found'),
  requestTooLarge: define(c.invalidArgument, 'etcdserver: request is too large'),
  tooManyRequests: define(c.resourceExhausted, 'etcdserver: too many requests'),
  noLeader: define(c.unavailable, 'etcdserver: no leader'),
  notLeader: define(c.failedPrecondition, 'etcdserver: not leader'),
  leaderChanged: define(c.unavailable, 'etcdserver: leader changed'),
  stopped: define(c.unavailable, 'etcdserver: server stopped'),
  timeout: define(c.unavailable, 'etcdserver: request timed out'),
  timeoutDueToLeaderFail: define(
    c.unavailable,
    'etcdserver: request timed out, possibly due to previous leader failure',
  ),
  timeoutDueToConnectionLost: define(
    c.unavailable,
    'etcdserver: request timed out, possibly due to connection lost',
  ),
  unhealthy: define(c.unavailable, 'etcdserver: unhealthy cluster'),
  corrupt: define(c.dataLoss, 'etcdserver: corrupt cluster'),
  notSupportedForLearner: define(c.unavailable, 'etcdserver: rpc not supported for learner'),
} as const;

export type EtcdErrorName = keyof typeof etcdErrors;

/**
 * An argument that is malformed in a way etcd has no dedicated message for (for example an enum
 * value outside the proto's range). The message names the field so the caller can fix it.
 */
export function invalidArgument(detail: string): EtcdError {
  return new EtcdError(c.invalidArgument, `etcdserver: ${detail}`);
}
