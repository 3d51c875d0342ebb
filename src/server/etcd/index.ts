/**
 * The public surface of shoal's etcd v3 API layer. Other parts of the server (the CLI, the raft
 * driver once it exists) import from here: the gRPC front end, the backend contract it calls, the
 * API's value types and errors, and the single-member backend on the MVCC store.
 */
export type { EtcdBackend } from './backend.js';
export {
  EtcdError,
  type EtcdErrorName,
  etcdErrors,
  GrpcCode,
  type GrpcCodeNumber,
} from './errors.js';
export {
  etcdApiVersion,
  fromKvError,
  SingleMemberBackend,
  type SingleMemberOptions,
} from './mvcc-backend.js';
export {
  EtcdGrpcServer,
  type EtcdServerOptions,
  grpcOverheadBytes,
  maxRequestBytesDefault,
} from './server.js';
export {
  idFromText,
  type RunningSingleMember,
  type SingleMemberServerOptions,
  startSingleMemberServer,
} from './single-member.js';
export type * from './types.js';
export { txnOpsMaxDefault } from './validate.js';
