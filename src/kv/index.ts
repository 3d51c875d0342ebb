/**
 * The public surface of shoal's key-value state machine (see mvcc.ts for how to drive it).
 * Other layers import from here rather than from the individual modules.
 */

export {
  COMMAND_OPS_MAX,
  COMMAND_TXN_DEPTH_MAX,
  decodeKvRequest,
  encodeKvRequest,
  KvCommandError,
  parseKvRequest,
} from './command.js';
export { GRPC_STATUS_CODE, KvError, type KvErrorCode, KvErrorMessage } from './errors.js';
export {
  HISTORY_EVENTS_MAX_DEFAULT,
  type HistoryOptions,
  type HistoryResult,
  type RevisionEvents,
} from './history.js';
export {
  APPLY_BATCH_ENTRIES_MAX,
  APPLY_COMPACTION_STEP_ENTRIES_MAX,
  type ApplyEntry,
  type ApplyResult,
  COMPACTION_STEP_ENTRIES_MAX,
  type EventListener,
  LEASE_TTL_MAX_SECONDS,
  type LeaseInfo,
  MvccStore,
  type MvccStoreOptions,
  QUOTA_BYTES_DEFAULT,
  type RequestResult,
  type StoreStatus,
} from './mvcc.js';
export {
  type Checkpoint,
  removeCheckpoint,
  SNAPSHOT_CHUNK_BYTES_MAX,
  type SnapshotStream,
} from './snapshot.js';
export * from './types.js';
export { KEY_BYTES_MAX, TXN_OPS_MAX_DEFAULT, validateRequest } from './validate.js';
