/**
 * shoal's replicated key-value state machine: an MVCC store on LMDB that behaves like etcd 3.4's.
 *
 * Usage by the member process:
 * 1. `MvccStore.open({ path })` once; `appliedIndex` says where raft must resume applying.
 * 2. For each batch of committed raft entries, call `applyBatch(entries)`. The whole batch is one
 *    LMDB write transaction that also records the last applied index, so after a crash a batch is
 *    either entirely applied or not at all, and entries at or below `appliedIndex` are skipped:
 *    re-delivering entries after a restart is harmless. Apply is deterministic: the same entries
 *    give the same state and the same responses on every member.
 * 3. After the commit, subscribers (`subscribe`) receive the events of every new revision in
 *    order; `readHistory` replays older revisions for watches that start in the past.
 * 4. Serializable reads call `range` directly (outside raft); linearizable ones call it after
 *    ReadIndex. `hashKv`, `status`, `snapshot`/`restore` and `quotaCheck` serve Maintenance.
 * 5. While `status().compactionPending`, call `compactStep()` when apply is idle (for example from
 *    setImmediate); each apply batch also does a small step (see compaction.ts).
 * Commands travel in raft entries as `encodeKvRequest` bytes (command.ts); the decoder validates.
 *
 * Revisions follow etcd: a new store is at revision 1 and the first write creates revision 2; a
 * request that changes nothing does not create a revision; compact revision -1 means "never
 * compacted". The LMDB layout is described in layout.ts; etcd's rules for each request in
 * reader.ts (Range) and txn.ts (Put, DeleteRange, Txn).
 */
import { rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { type Logger, pino } from 'pino';
import { encodeLeaseId } from './codec.js';
import {
  compactionStep,
  loadPendingCompaction,
  type PendingCompaction,
  savePendingCompaction,
} from './compaction.js';
import { bootId, guardClose, guardOpen } from './crash-guard.js';
import {
  errCompacted,
  errFutureRev,
  errLeaseExist,
  errLeaseNotFound,
  errLeaseTtlTooLarge,
  errNoSpace,
  KvError,
} from './errors.js';
import { computeHashKv } from './hash.js';
import {
  type HistoryOptions,
  type HistoryResult,
  type RevisionEvents,
  readHistory,
} from './history.js';
import { KeyIndex } from './key-index.js';

export type { HistoryOptions, HistoryResult, RevisionEvents };

import {
  decodeLeaseRecord,
  decodeNumber,
  encodeLeaseRecord,
  encodeNumber,
  type KvDatabases,
  MetaKey,
  openDatabases,
} from './layout.js';
import { boundsOf, header, type ReadContext, rangeRequest } from './reader.js';
import {
  type Checkpoint,
  checkCheckpointImage,
  emptyCheckpointDir,
  readCheckpoint,
  removeCheckpoint,
  restoreSnapshot,
  type SnapshotStream,
  writeCheckpoint,
  writeSnapshot,
} from './snapshot.js';

export type { SnapshotStream };

import { applyDeleteRange, applyPut, applyTxnOps, checkTxnPath, compareToPath } from './txn.js';
import type {
  CompactionRequest,
  CompactionResponse,
  HashKVResponse,
  KvRequest,
  KvResponse,
  LeaseCheckpointRequest,
  LeaseCheckpointResponse,
  LeaseGrantRequest,
  LeaseGrantResponse,
  LeaseRevokeRequest,
  LeaseRevokeResponse,
  RangeRequest,
  RangeResponse,
  TxnRequest,
  TxnResponse,
} from './types.js';
import { assertSafeInteger } from './types.js';
import { TXN_OPS_MAX_DEFAULT, validateRequest } from './validate.js';
import { WriteRequest } from './write.js';

/** Where checkpoints are made (`checkpoint`) and received (`restoreCheckpoint`), after the path. */
const CHECKPOINT_DIR_SUFFIXES = ['-checkpoint-out', '-checkpoint-in'] as const;

/** Entries per applyBatch call; the caller splits larger commits (bounds one LMDB transaction). */
export const APPLY_BATCH_ENTRIES_MAX = 8192;
/**
 * A checkpoint compacts the copy when less than this share of the store's pages is in use (the
 * rest free); otherwise it copies the pages as they are.
 */
export const CHECKPOINT_COMPACT_BELOW_IN_USE = 0.75;
/** etcd's MaxLeaseTTL: 9,000,000,000 seconds. */
export const LEASE_TTL_MAX_SECONDS = 9_000_000_000;
/** etcd's default --quota-backend-bytes (2 GiB). */
export const QUOTA_BYTES_DEFAULT = 2 * 1024 * 1024 * 1024;
/**
 * History entries examined by one compactStep() call: a few milliseconds of work on a quiet
 * machine, so the event loop (and raft's heartbeats) never waits long on compaction.
 */
export const COMPACTION_STEP_ENTRIES_MAX = 2_000;
/** History entries examined at the end of each apply batch while a compaction is pending. */
export const APPLY_COMPACTION_STEP_ENTRIES_MAX = 500;
/** etcd's per-request size overheads used by its quota cost estimate. */
const KV_OVERHEAD_BYTES = 256;
const LEASE_OVERHEAD_BYTES = 64;
const INITIAL_REVISION = 1;
const NEVER_COMPACTED = -1;

export interface MvccStoreOptions {
  /** The LMDB file (a lock file `<path>-lock` sits next to it). */
  path: string;
  /** Database size above which writes fail with NOSPACE. */
  quotaBytes?: number;
  /** etcd's --max-txn-ops. */
  txnOpsMax?: number;
  /** Leases granted with a shorter TTL get this one (etcd derives it from the election timeout). */
  minLeaseTtlSeconds?: number;
  /** History entries physical compaction may scan at the end of each apply batch (0: none). */
  applyCompactionStepEntriesMax?: number;
  /**
   * Commit without fsync. By default applyBatch returns after its transaction is flushed to disk
   * (lmdb-js transactionSync, about 0.3 ms of blocked event loop). With noSync a commit is about
   * 15 µs, and the crash guard (crash-guard.ts) discards the store at open when the machine
   * crashed while it was open, so the caller must be able to rebuild it (the member replays raft's
   * snapshot and log). Where the boot id is unknown the store syncs anyway.
   */
  noSync?: boolean;
  /** The kernel boot id the crash guard compares (tests inject one; default: the running one). */
  bootId?: string;
  logger?: Logger;
}

export interface ApplyEntry {
  index: number;
  /**
   * Undefined for raft entries that are not key-value commands (they only advance the index),
   * unless `batch` is given.
   */
  request?: KvRequest;
  /**
   * Several requests carried by one raft entry (instead of `request`): applied in order, each as
   * its own request with its own revision and result, exactly as consecutive entries would be.
   * They are in the batch's transaction together, so a crash keeps all of them or none.
   */
  batch?: readonly KvRequest[];
}

/** The outcome of one request: its response, or the error it was refused with. */
export type RequestResult =
  | { index: number; status: 'ok'; response: KvResponse }
  | { index: number; status: 'error'; error: KvError };

export type ApplyResult =
  | RequestResult
  | { index: number; status: 'batch'; results: RequestResult[] }
  | { index: number; status: 'noop' }
  | { index: number; status: 'skipped' };

export type EventListener = (revisions: readonly RevisionEvents[]) => void;

export interface StoreStatus {
  currentRevision: number;
  compactRevision: number;
  appliedIndex: number;
  /** High-water mark of the LMDB file (etcd's dbSize). */
  dbSizeBytes: number;
  /** Pages holding live data (etcd's dbSizeInUse). */
  dbSizeInUseBytes: number;
  /** Entries in the history table (drops as physical compaction progresses). */
  historyEntries: number;
  /** True while a compaction's physical deletion is unfinished. */
  compactionPending: boolean;
}

export interface LeaseInfo {
  id: bigint;
  ttlSeconds: number;
  /** Seconds left at the leader's last checkpoint; undefined when never (or no longer) set. */
  remainingTtlSeconds?: number;
  keys: Uint8Array[];
}

export class MvccStore {
  private currentRevision: number;
  private compactRevision: number;
  private appliedIndexValue: number;
  private pendingCompaction: PendingCompaction | undefined;
  private readonly listeners = new Set<EventListener>();
  /** Each key's revisions (key-index.ts), rebuilt from `revs` whenever it could differ from it. */
  private readonly keys = new KeyIndex();
  /** HashKV computations in progress: they read the key index, so compaction steps wait. */
  private hashesRunning = 0;
  /** Called once no HashKV runs any more (see `hashesDone`). */
  private readonly hashWaiters: (() => void)[] = [];
  /** Bumped when the key index is rebuilt or replaced (an aborted transaction, a restore). */
  private keysGeneration = 0;
  private readonly quotaBytes: number;
  private readonly txnOpsMax: number;
  private readonly minLeaseTtlSeconds: number;
  private readonly applyCompactionStepEntriesMax: number;
  private readonly log: Logger;
  private closed = false;
  /** Set while a snapshot restore rewrites the databases; the store refuses work meanwhile. */
  private unavailableReason: string | undefined;
  /** True when open discarded a store left open by a machine crash (see crash-guard.ts). */
  readonly discardedAfterMachineCrash: boolean;
  /** The store's path when the crash guard is in use (noSync with a known boot id). */
  private readonly guardedPath: string | undefined;
  /** The LMDB path (checkpoints are kept beside it). */
  private readonly path: string;

  private constructor(
    private readonly dbs: KvDatabases,
    options: MvccStoreOptions,
    guard: { path: string | undefined; discarded: boolean },
  ) {
    this.guardedPath = guard.path;
    this.path = options.path;
    this.discardedAfterMachineCrash = guard.discarded;
    this.quotaBytes = options.quotaBytes ?? QUOTA_BYTES_DEFAULT;
    this.txnOpsMax = options.txnOpsMax ?? TXN_OPS_MAX_DEFAULT;
    this.minLeaseTtlSeconds = options.minLeaseTtlSeconds ?? 2;
    this.applyCompactionStepEntriesMax =
      options.applyCompactionStepEntriesMax ?? APPLY_COMPACTION_STEP_ENTRIES_MAX;
    this.log = options.logger ?? pino({ name: 'kv', level: process.env.SHOAL_LOG_LEVEL ?? 'info' });
    if (dbs.meta.get(MetaKey.restoring) !== undefined) {
      throw new Error(
        `kv store ${options.path} holds an unfinished snapshot restore; restore again`,
      );
    }
    this.currentRevision = decodeNumber(dbs.meta.get(MetaKey.currentRevision), INITIAL_REVISION);
    this.compactRevision = decodeNumber(dbs.meta.get(MetaKey.compactRevision), NEVER_COMPACTED);
    this.appliedIndexValue = decodeNumber(dbs.meta.get(MetaKey.appliedIndex), 0);
    this.pendingCompaction = loadPendingCompaction(dbs);
    this.rebuildKeyIndex('open');
  }

  /**
   * Builds the key index from `revs`: at open and after an aborted write transaction (whose
   * changes to the index LMDB did not keep). A restore builds it from the records it writes.
   */
  private rebuildKeyIndex(why: string): void {
    const started = performance.now();
    this.keys.rebuild(this.dbs.revs);
    this.keysGeneration += 1;
    this.log.info(
      {
        why,
        keys: this.keys.keyCount,
        revisions: this.keys.revisions,
        ms: Math.round(performance.now() - started),
      },
      'kv key index built',
    );
  }

  static open(options: MvccStoreOptions): MvccStore {
    const boot = options.noSync ? (options.bootId ?? bootId()) : undefined;
    const guarded = boot !== undefined;
    const { discarded, staleBootId } = guarded
      ? guardOpen(options.path, boot)
      : { discarded: false, staleBootId: undefined };
    const dbs = openDatabases({ path: options.path, noSync: guarded });
    // A checkpoint left by a process that died while making or restoring one is only a copy.
    for (const suffix of CHECKPOINT_DIR_SUFFIXES) {
      rmSync(`${options.path}${suffix}`, { recursive: true, force: true });
    }
    const store = new MvccStore(dbs, options, {
      path: guarded ? options.path : undefined,
      discarded,
    });
    if (discarded) {
      store.log.warn(
        { path: options.path, staleBootId },
        'the machine crashed while the unsynced store was open: discarded it, to be rebuilt',
      );
    }
    store.log.info(
      {
        path: options.path,
        revision: store.currentRevision,
        compactRevision: store.compactRevision,
        appliedIndex: store.appliedIndexValue,
      },
      'kv store opened',
    );
    return store;
  }

  get appliedIndex(): number {
    return this.appliedIndexValue;
  }

  get revision(): number {
    return this.currentRevision;
  }

  get compactedRevision(): number {
    return this.compactRevision;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    await this.dbs.env.close();
    if (this.guardedPath !== undefined) guardClose(this.guardedPath);
  }

  /** Registers a listener for the events committed by each apply batch; returns unsubscribe. */
  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Applies committed raft entries in one LMDB write transaction (see the module comment). */
  applyBatch(entries: readonly ApplyEntry[]): ApplyResult[] {
    if (entries.length > APPLY_BATCH_ENTRIES_MAX) {
      throw new RangeError(
        `apply batch of ${entries.length} entries exceeds ${APPLY_BATCH_ENTRIES_MAX}`,
      );
    }
    this.assertAvailable();
    const saved = [
      this.currentRevision,
      this.compactRevision,
      this.appliedIndexValue,
      this.pendingCompaction,
    ] as const;
    const results: ApplyResult[] = [];
    const revisions: RevisionEvents[] = [];
    try {
      this.dbs.env.transactionSync(() => {
        for (const entry of entries) results.push(this.applyEntry(entry, revisions));
        if (this.appliedIndexValue === saved[2]) return;
        if (this.applyCompactionStepEntriesMax > 0) {
          this.compactionStepInTransaction(this.applyCompactionStepEntriesMax);
        }
        this.writeMeta();
      });
    } catch (error) {
      [this.currentRevision, this.compactRevision, this.appliedIndexValue, this.pendingCompaction] =
        saved;
      this.rebuildKeyIndex('an apply batch aborted');
      throw error;
    }
    if (revisions.length > 0) this.emit(revisions);
    return results;
  }

  private applyEntry(entry: ApplyEntry, revisions: RevisionEvents[]): ApplyResult {
    assertSafeInteger(entry.index, 'raft index');
    if (entry.index <= this.appliedIndexValue) return { index: entry.index, status: 'skipped' };
    this.appliedIndexValue = entry.index;
    const { batch } = entry;
    if (batch !== undefined) {
      const results = new Array<RequestResult>(batch.length);
      for (let i = 0; i < batch.length; i++) {
        results[i] = this.applyOneRequest(entry.index, batch[i]!, revisions);
      }
      return { index: entry.index, status: 'batch', results };
    }
    if (entry.request === undefined) return { index: entry.index, status: 'noop' };
    return this.applyOneRequest(entry.index, entry.request, revisions);
  }

  private applyOneRequest(
    index: number,
    request: KvRequest,
    revisions: RevisionEvents[],
  ): RequestResult {
    const write = new WriteRequest(this.dbs, this.keys, this.currentRevision, this.compactRevision);
    try {
      const invalid = validateRequest(request, this.txnOpsMax);
      if (invalid) throw invalid;
      const response = this.applyRequest(request, write);
      this.finishWrite(write, revisions);
      return { index, status: 'ok', response };
    } catch (error) {
      if (!(error instanceof KvError)) throw error;
      // Requests check everything before writing; an error after a write would leave a partial
      // request behind, so it must abort the whole batch instead of being answered.
      if (write.changes > 0) throw new Error(`request failed after writing: ${error.message}`);
      return { index, status: 'error', error };
    }
  }

  private finishWrite(write: WriteRequest, revisions: RevisionEvents[]): void {
    if (write.changes === 0) return;
    this.currentRevision = write.beginRevision + 1;
    revisions.push({ revision: this.currentRevision, events: write.events });
  }

  private writeMeta(): void {
    this.dbs.meta.putSync(MetaKey.currentRevision, encodeNumber(this.currentRevision));
    this.dbs.meta.putSync(MetaKey.compactRevision, encodeNumber(this.compactRevision));
    this.dbs.meta.putSync(MetaKey.appliedIndex, encodeNumber(this.appliedIndexValue));
    savePendingCompaction(this.dbs, this.pendingCompaction);
  }

  private applyRequest(request: KvRequest, write: WriteRequest): KvResponse {
    if ('range' in request) return { range: this.range(request.range) };
    if ('put' in request) {
      const lease = request.put.lease ?? 0n;
      if (lease !== 0n && !this.leaseExists(lease)) throw errLeaseNotFound();
      return { put: applyPut(write, request.put) };
    }
    if ('deleteRange' in request)
      return { deleteRange: applyDeleteRange(write, request.deleteRange) };
    if ('txn' in request) return { txn: this.applyTxn(request.txn, write) };
    if ('compaction' in request) return { compaction: this.applyCompaction(request.compaction) };
    if ('leaseGrant' in request) return { leaseGrant: this.applyLeaseGrant(request.leaseGrant) };
    if ('leaseRevoke' in request) {
      return { leaseRevoke: this.applyLeaseRevoke(request.leaseRevoke, write) };
    }
    if ('leaseCheckpoint' in request) {
      return { leaseCheckpoint: this.applyLeaseCheckpoint(request.leaseCheckpoint) };
    }
    throw new KvError('INVALID_ARGUMENT', 'shoal: unknown key-value request');
  }

  private assertAvailable(): void {
    if (this.unavailableReason !== undefined) {
      throw new Error(`kv store unavailable: ${this.unavailableReason}`);
    }
  }

  private readContext(): ReadContext {
    this.assertAvailable();
    return {
      dbs: this.dbs,
      keys: this.keys,
      currentRevision: this.currentRevision,
      compactRevision: this.compactRevision,
    };
  }

  /** A Range at the committed state: serves serializable reads outside raft. */
  range(request: RangeRequest): RangeResponse {
    const invalid = validateRequest({ range: request }, this.txnOpsMax);
    if (invalid) throw invalid;
    return rangeRequest(this.readContext(), request);
  }

  private applyTxn(txn: TxnRequest, write: WriteRequest): TxnResponse {
    const before = this.readContext();
    const path = compareToPath(before, txn);
    checkTxnPath(before, txn, path, (lease) => this.leaseExists(lease));
    const response = applyTxnOps(write, txn, path);
    response.header = header(write.revision);
    return response;
  }

  private applyCompaction(request: CompactionRequest): CompactionResponse {
    requireSafeInteger(request.revision, 'compaction revision');
    if (request.revision <= this.compactRevision) throw errCompacted();
    if (request.revision > this.currentRevision) throw errFutureRev();
    this.compactRevision = request.revision;
    // A newer target restarts the scan: entries kept for the older one may now be removable.
    this.pendingCompaction = { target: request.revision, cursor: undefined };
    this.log.info({ revision: request.revision }, 'kv history compaction scheduled');
    return { header: header(this.currentRevision) };
  }

  /** Runs one bounded physical compaction step inside the current write transaction. */
  private compactionStepInTransaction(entriesMax: number): void {
    if (this.pendingCompaction === undefined) return;
    // A HashKV walks a fixed LMDB view but reads the live key index: the index must not lose
    // revisions that view still holds until the hash is done (compaction resumes afterwards).
    if (this.hashesRunning > 0) return;
    const result = compactionStep(this.readContext(), this.pendingCompaction, entriesMax);
    this.pendingCompaction = result.pending;
    if (result.pending === undefined) {
      this.log.info({ revision: this.compactRevision }, 'kv history compaction finished');
    }
  }

  /**
   * Does one step of pending physical compaction in its own transaction; returns true while more
   * remains. The server calls it when apply is idle (apply batches also do a small step each).
   * While a HashKV runs, a step does nothing (not even open a transaction) and returns true: call
   * again once `hashesDone()` settles.
   */
  compactStep(entriesMax: number = COMPACTION_STEP_ENTRIES_MAX): boolean {
    this.assertAvailable();
    if (this.pendingCompaction === undefined) return false;
    if (this.hashesRunning > 0) return true;
    const saved = this.pendingCompaction;
    try {
      this.dbs.env.transactionSync(() => {
        this.compactionStepInTransaction(entriesMax);
        savePendingCompaction(this.dbs, this.pendingCompaction);
      });
    } catch (error) {
      this.pendingCompaction = saved;
      this.rebuildKeyIndex('a compaction step aborted');
      throw error;
    }
    return this.pendingCompaction !== undefined;
  }

  private leaseExists(lease: bigint): boolean {
    return this.dbs.leases.get(encodeLeaseId(lease)) !== undefined;
  }

  private applyLeaseGrant(request: LeaseGrantRequest): LeaseGrantResponse {
    requireSafeInteger(request.TTL, 'lease TTL');
    if (request.ID === 0n) throw errLeaseNotFound();
    if (request.TTL > LEASE_TTL_MAX_SECONDS) throw errLeaseTtlTooLarge();
    if (this.leaseExists(request.ID)) throw errLeaseExist();
    const ttlSeconds = Math.max(request.TTL, this.minLeaseTtlSeconds);
    this.dbs.leases.putSync(encodeLeaseId(request.ID), encodeLeaseRecord({ ttlSeconds }));
    return { header: header(this.currentRevision), ID: request.ID, TTL: ttlSeconds, error: '' };
  }

  /** Records remaining TTLs; leases gone since the leader proposed are skipped (no revision). */
  private applyLeaseCheckpoint(request: LeaseCheckpointRequest): LeaseCheckpointResponse {
    for (const { ID, remainingTtl } of request.checkpoints) {
      const key = encodeLeaseId(ID);
      const record = this.dbs.leases.get(key);
      if (record === undefined) continue;
      const { ttlSeconds } = decodeLeaseRecord(record);
      const remainingTtlSeconds = remainingTtl > 0 ? remainingTtl : undefined;
      this.dbs.leases.putSync(key, encodeLeaseRecord({ ttlSeconds, remainingTtlSeconds }));
    }
    return { header: header(this.currentRevision) };
  }

  /** Deletes every key attached to the lease in one revision (key order), then the lease. */
  private applyLeaseRevoke(request: LeaseRevokeRequest, write: WriteRequest): LeaseRevokeResponse {
    if (!this.leaseExists(request.ID)) throw errLeaseNotFound();
    const id = encodeLeaseId(request.ID);
    const keys = [...this.dbs.leaseKeys.getValues(id)];
    for (const key of keys) write.deleteRange(boundsOf(key, undefined));
    // Deleting each key detached it already; clearing the list guards against a stale entry.
    this.dbs.leaseKeys.removeSync(id);
    this.dbs.leases.removeSync(id);
    return { header: header(write.revision) };
  }

  /** A lease and its attached keys, or undefined (for the Lease API's TimeToLive and Leases). */
  lease(id: bigint): LeaseInfo | undefined {
    const record = this.dbs.leases.get(encodeLeaseId(id));
    if (record === undefined) return undefined;
    const keys = [...this.dbs.leaseKeys.getValues(encodeLeaseId(id))];
    const { ttlSeconds, remainingTtlSeconds } = decodeLeaseRecord(record);
    return remainingTtlSeconds === undefined
      ? { id, ttlSeconds, keys }
      : { id, ttlSeconds, remainingTtlSeconds, keys };
  }

  /** Every lease id, ascending by their signed 64-bit big-endian encoding. */
  leaseIds(): bigint[] {
    const ids: bigint[] = [];
    for (const key of this.dbs.leases.getKeys()) ids.push(key.readBigInt64BE(0));
    return ids;
  }

  private emit(revisions: readonly RevisionEvents[]): void {
    for (const listener of this.listeners) {
      try {
        listener(revisions);
      } catch (error) {
        this.log.error({ err: error }, 'kv event listener threw');
      }
    }
  }

  /** Events of revisions >= fromRevision for watch replay; ErrCompacted below the compaction. */
  readHistory(fromRevision: number, options: HistoryOptions = {}): HistoryResult {
    return readHistory(this.readContext(), fromRevision, options);
  }

  /**
   * etcd's HashKV: CRC-32C of the history up to `revision` (0: current), as etcd computes it, on
   * the state at the call; yields to the event loop while it walks the history.
   */
  async hashKv(revision = 0): Promise<HashKVResponse> {
    const context = this.readContext();
    const transaction = this.dbs.env.useReadTransaction();
    const generation = this.keysGeneration;
    this.hashesRunning += 1;
    try {
      const response = await computeHashKv({ ...context, transaction }, revision);
      if (this.keysGeneration !== generation) {
        throw new Error('the kv store was replaced (a snapshot restore) while HashKV ran');
      }
      return response;
    } finally {
      this.hashesRunning -= 1;
      transaction.done();
      if (this.hashesRunning === 0) for (const wake of this.hashWaiters.splice(0)) wake();
    }
  }

  /** Whether a HashKV is running now (compaction steps wait for it). */
  get hashing(): boolean {
    return this.hashesRunning > 0;
  }

  /** Settles once no HashKV runs: at once when none does. Compaction schedulers wait on it. */
  hashesDone(): Promise<void> {
    if (this.hashesRunning === 0) return Promise.resolve();
    return new Promise((resolve) => this.hashWaiters.push(resolve));
  }

  /**
   * NOSPACE when the request would write and the database is at its quota (etcd's backend quota).
   * The server calls this before proposing; later the NOSPACE alarm will gate writes in apply.
   *
   * The size measured is the pages in use, not the file's high-water mark (etcd's dbSize): LMDB
   * reuses the pages a deletion or compaction frees, so they are free space, and the file never
   * shrinks by itself. etcd counts its whole file because only a defragmentation gives bolt's free
   * pages back; shoal needs none (Defragment is a no-op), so after deleting and compacting, writes
   * fit again as they do in etcd after `etcdctl defrag`.
   */
  quotaCheck(request: KvRequest): KvError | undefined {
    const cost = requestCost(request);
    if (cost === 0) return undefined;
    return this.status().dbSizeInUseBytes + cost >= this.quotaBytes ? errNoSpace() : undefined;
  }

  status(): StoreStatus {
    const stats = this.dbs.env.getStats() as { pageSize: number; lastPageNumber: number };
    let inUsePages = 0;
    for (const db of [this.dbs.meta, this.dbs.revs, this.dbs.live]) {
      inUsePages += pagesOf(db.getStats());
    }
    inUsePages += pagesOf(this.dbs.leases.getStats()) + pagesOf(this.dbs.leaseKeys.getStats());
    return {
      currentRevision: this.currentRevision,
      compactRevision: this.compactRevision,
      appliedIndex: this.appliedIndexValue,
      dbSizeBytes: (stats.lastPageNumber + 1) * stats.pageSize,
      dbSizeInUseBytes: inUsePages * stats.pageSize,
      historyEntries: (this.dbs.revs.getStats() as { entryCount: number }).entryCount,
      compactionPending: this.pendingCompaction !== undefined,
    };
  }

  /** The whole state now, as bounded chunks from one read transaction (see snapshot.ts). */
  snapshot(): SnapshotStream {
    return writeSnapshot(this.dbs);
  }

  /**
   * Copies the whole state into a checkpoint (an LMDB file in `<path>-checkpoint-out`, replacing
   * the previous one) without blocking the event loop; see snapshot.ts. `dropCheckpoint` deletes
   * it once read.
   */
  checkpoint(): Promise<Checkpoint> {
    this.assertAvailable();
    // A plain copy keeps the file's free pages; worth compacting only when they are a good part
    // of it (after a compaction or a burst of deletes). Otherwise the compacting walk costs CPU
    // (hundreds of ms for a store of a few hundred MB, while members are busy) to save little.
    const { dbSizeBytes, dbSizeInUseBytes } = this.status();
    const compact = dbSizeInUseBytes < dbSizeBytes * CHECKPOINT_COMPACT_BELOW_IN_USE;
    return writeCheckpoint(
      this.dbs,
      this.path,
      `${this.path}${CHECKPOINT_DIR_SUFFIXES[0]}`,
      compact,
    );
  }

  /** Deletes the checkpoint `checkpoint` made. */
  dropCheckpoint(): Promise<void> {
    return removeCheckpoint(`${this.path}${CHECKPOINT_DIR_SUFFIXES[0]}`);
  }

  /**
   * Replaces the whole state with a checkpoint's (the bytes of its LMDB file), read as snapshot
   * chunks, so the same checks as `restore` apply.
   */
  async restoreCheckpoint(image: Uint8Array): Promise<void> {
    checkCheckpointImage(image);
    const dir = `${this.path}${CHECKPOINT_DIR_SUFFIXES[1]}`;
    try {
      const file = await emptyCheckpointDir(dir);
      await writeFile(file, image);
      await readCheckpoint(file, (copy) => this.restore(writeSnapshot(copy).chunks));
    } finally {
      await removeCheckpoint(dir);
    }
  }

  /** Replaces the whole state with a snapshot's; subscribers get no events for it. */
  async restore(chunks: AsyncIterable<Uint8Array>): Promise<void> {
    this.assertAvailable();
    this.unavailableReason = 'a snapshot restore is in progress';
    this.keys.clear();
    this.keysGeneration += 1;
    try {
      await restoreSnapshot(this.dbs, chunks, (revisionKey, keyValue) =>
        this.keys.addEntry(revisionKey, keyValue),
      );
    } catch (error) {
      this.unavailableReason = `a snapshot restore failed: ${(error as Error).message}`;
      throw error;
    }
    this.unavailableReason = undefined;
    this.currentRevision = decodeNumber(
      this.dbs.meta.get(MetaKey.currentRevision),
      INITIAL_REVISION,
    );
    this.compactRevision = decodeNumber(
      this.dbs.meta.get(MetaKey.compactRevision),
      NEVER_COMPACTED,
    );
    this.appliedIndexValue = decodeNumber(this.dbs.meta.get(MetaKey.appliedIndex), 0);
    this.pendingCompaction = loadPendingCompaction(this.dbs);
    this.log.info(
      {
        revision: this.currentRevision,
        appliedIndex: this.appliedIndexValue,
        keys: this.keys.keyCount,
      },
      'kv store restored from snapshot',
    );
  }
}

/** A request field that must be an integer: a bad one is the request's error, not the member's. */
function requireSafeInteger(value: number, what: string): void {
  if (!Number.isSafeInteger(value)) {
    throw new KvError('INVALID_ARGUMENT', `shoal: ${what} must be an integer, got ${value}`);
  }
}

function pagesOf(stats: unknown): number {
  const s = stats as {
    treeBranchPageCount: number;
    treeLeafPageCount: number;
    overflowPages: number;
  };
  return s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages;
}

/** etcd's quota cost: a write costs its key and value plus a fixed overhead; reads cost nothing. */
export function requestCost(request: KvRequest): number {
  if ('put' in request) {
    return KV_OVERHEAD_BYTES + request.put.key.length + (request.put.value?.length ?? 0);
  }
  if ('txn' in request) return txnCost(request.txn);
  if ('leaseGrant' in request) return LEASE_OVERHEAD_BYTES;
  return 0;
}

function txnCost(txn: TxnRequest): number {
  const branchCost = (ops: TxnRequest['success']): number => {
    let cost = 0;
    for (const op of ops ?? []) {
      if ('requestPut' in op) {
        cost += KV_OVERHEAD_BYTES + op.requestPut.key.length + (op.requestPut.value?.length ?? 0);
      } else if ('requestTxn' in op) cost += txnCost(op.requestTxn);
    }
    return cost;
  };
  return Math.max(branchCost(txn.success), branchCost(txn.failure));
}
