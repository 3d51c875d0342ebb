/**
 * One member's replicated core, without its client-facing servers: DiskStorage (WAL and snapshot
 * files in <data-dir>), the MVCC store (<data-dir>/kv), the member registry (<data-dir>/member),
 * the raft driver, the peer transport, proposals and reads. `Member` (member.ts) adds the gRPC and
 * HTTP front ends.
 *
 * Start-up: a new data dir with `--initial-cluster-state new` bootstraps raft with the initial
 * cluster's voters; with `existing` it asks a peer for the cluster id and registry and waits for
 * the leader to send it the log or a snapshot. A data dir in use resumes: raft replays committed
 * entries from its snapshot and the store skips those it has already applied. If the store is
 * behind the raft snapshot (a store from before an interrupted restore, or copied in by hand), it
 * is restored from that snapshot first. The store commits without fsync (a commit blocked the
 * event loop for about 0.3 ms, which halved a member's throughput at one client): what the store
 * loses or a machine crash damages is rebuilt the same way, from the raft snapshot and log, which
 * are durable before anything is acknowledged (src/kv/crash-guard.ts says how a damaged store is
 * recognised).
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { errNoSpace, type KvError } from '../kv/errors.js';
import { MvccStore, requestCost } from '../kv/mvcc.js';
import type { KvRequest } from '../kv/types.js';
import { type ConfState, RaftError, type ReadState, Role, type Snapshot } from '../raft/index.js';
import { DiskStorage } from '../storage/index.js';
import { ClusterOps } from './cluster.js';
import type { MemberConfig } from './config.js';
import { createDataDir } from './data-dir.js';
import { etcdErrors } from './etcd/errors.js';
import type { Member as ApiMember } from './etcd/types.js';
import { LeaseKeeper } from './leases.js';
import type { MemberMetrics } from './metrics.js';
import { Proposer, raftRefusal } from './proposer.js';
import { RaftNode } from './raft-node.js';
import { ReadQueue } from './read-queue.js';
import { ALARM_NOSPACE, MemberRegistry } from './registry.js';
import { SnapshotInbox } from './snapshot-inbox.js';
import {
  checkpointSnapshotHead,
  decodeSnapshotData,
  restoreStore,
  StateMachine,
} from './state-machine.js';
import { PeerTransport, peerAddress } from './transport.js';

/** The etcd version shoal reports (the API level it implements). */
export const ETCD_VERSION = '3.4.0';
/** Entries kept behind a snapshot so that slightly lagging followers get entries, not a snapshot. */
export const SNAPSHOT_CATCH_UP_ENTRIES_MAX = 5000;
/** The data dir's folder for partially received snapshots (snapshot-inbox.ts). */
export const SNAPSHOT_INBOX_DIR = 'snap-incoming';
const JOIN_INFO_TIMEOUT_MS = 2000;
const PUBLISH_INTERVAL_MS = 1000;
/** A member removed by the log waits at least this long for a re-add before it stops. */
const REMOVAL_GRACE_MS_MIN = 1000;
const REMOVAL_CHECK_MS = 100;
/** Most checks (REMOVAL_CHECK_MS apart) before a removed member stops regardless. */
const REMOVAL_CHECKS_MAX = 600;
const QUOTA_REFRESH_MS = 100;
/** Above the largest request (64 MiB max-request-bytes) plus growth within one refresh period. */
const QUOTA_MARGIN_BYTES = 256 * 1024 * 1024;

export class MemberCore {
  readonly id: number;
  readonly version = ETCD_VERSION;
  readonly raft: RaftNode;
  readonly stateMachine: StateMachine;
  readonly proposer: Proposer;
  readonly reads: ReadQueue;
  readonly transport: PeerTransport;
  readonly cluster: ClusterOps;
  readonly leases: LeaseKeeper;
  readonly requestTimeoutMs: number;
  private snapshotting = false;
  private compactionScheduled = false;
  private compactionWaiters: (() => void)[] = [];
  /** The store's pages in use when last read (what the quota is measured against). */
  private dbSizeInUseBytes = 0;
  /** True while this member's proposal raising NOSPACE is in flight (one at a time). */
  private raisingNoSpace = false;
  private dbSizeCheckedAtMs = Number.NEGATIVE_INFINITY;
  private lastSnapshotIndex: number;
  /** Applied entries after `lastSnapshotIndex` that trigger the next snapshot (snapshotInterval). */
  private snapshotEvery: number;
  /** The last snapshot's checkpoint size, and the WAL's bytes written then (snapshotDue). */
  private lastCheckpointBytes = 0;
  private walBytesAtSnapshot = 0;
  private publishTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  removed = false;
  onRemoved: () => void = () => {};
  onFatal: (error: unknown) => void = () => {};

  private constructor(
    readonly config: MemberConfig,
    readonly storage: DiskStorage,
    readonly kv: MvccStore,
    readonly registry: MemberRegistry,
    readonly log: Logger,
    readonly metrics: MemberMetrics,
    bootstrapVoters: number[] | null,
    snapshotInbox: SnapshotInbox,
  ) {
    this.id = config.memberId;
    this.requestTimeoutMs = 5000 + 2 * config.electionTimeoutMs;
    this.lastSnapshotIndex = storage.snapshot().metadata.index;
    this.snapshotEvery = snapshotInterval(config.snapshotCount, this.id, this.lastSnapshotIndex);
    this.transport = new PeerTransport(
      this.id,
      registry.clusterId,
      {
        step: (m) => this.raft.step(m),
        reportUnreachable: (id) => this.raft.reportUnreachable(id),
        reportSnapshot: (id, status) => this.raft.reportSnapshot(id, status),
        info: () => ({ registry: this.registry.state() }),
        promote: (id) => this.cluster.promoteOnLeader(id),
        removed: () => this.selfRemoved(),
        lease: async (op, id) =>
          op === 'keepAlive'
            ? { ttlSeconds: await this.leases.keepAlive(id), grantedTtlSeconds: 0 }
            : this.leases.timeToLive(id),
      },
      log.child({ component: 'transport' }),
      { snapshotInbox },
    );
    this.stateMachine = new StateMachine(
      kv,
      registry,
      this.id,
      {
        applyConfChange: (cc) => this.raft.node.applyConfChange(cc),
        onApplied: (id, outcome) => this.proposer.applied(id, outcome),
        onRegistryChanged: () => this.updatePeers(),
        onSelfRemoved: () => this.selfRemovedByLog(),
        onRemoved: (id) => this.transport.markRemoved(id),
        onLeaseApplied: (request, entry) =>
          this.leases.applied(
            request,
            entry.term,
            this.raft.appendTimes.appendedAtMs(entry.index) ?? performance.now(),
          ),
        onStoreRestored: () => this.leases.reload(true),
      },
      log,
      this.lastSnapshotIndex,
    );
    this.raft = new RaftNode({
      id: this.id,
      storage,
      stateMachine: this.stateMachine,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      electionTimeoutMs: config.electionTimeoutMs,
      send: (messages, atEndOfTurn) => this.transport.send(messages, atEndOfTurn),
      logger: log,
      onSoftState: (soft, term) => this.softStateChanged(soft.lead, soft.role, term),
      onReadStates: (states: readonly ReadState[]) => this.reads.onReadStates(states),
      onApplied: (index) => this.applied(index),
      onReady: (info) => metrics.observeReady(info),
      onFatal: (error) => this.onFatal(error),
    });
    if (bootstrapVoters !== null) this.raft.node.bootstrap(bootstrapVoters);
    this.proposer = new Proposer({
      memberId: this.id,
      requestTimeoutMs: this.requestTimeoutMs,
      leaderWaitMs: Math.min(this.requestTimeoutMs, 3 * config.electionTimeoutMs),
      leader: () => this.raft.lead,
      propose: (data) => this.raft.propose(data),
      onFailed: () => metrics.proposalsFailed.inc(),
    });
    this.reads = new ReadQueue({
      memberId: this.id,
      readIndex: (context) => this.raft.readIndex(context),
      appliedIndex: () => this.stateMachine.appliedIndex,
      timeoutMs: this.requestTimeoutMs,
      mapError: raftRefusal,
    });
    this.cluster = new ClusterOps(this);
    this.leases = new LeaseKeeper(kv, {
      promotionGraceMs: config.electionTimeoutMs,
      checkpointIntervalMs: config.leaseCheckpointIntervalMs,
      checkpoint: (checkpoints) =>
        this.proposer.propose({ kv: { leaseCheckpoint: { checkpoints } } }),
      revoke: (id) => this.proposer.propose({ kv: { leaseRevoke: { ID: id } } }),
      onRenewalProposal: () => metrics.leaseRenewalProposals.inc(),
    });
    this.updatePeers();
  }

  /** Opens (or creates) the member's data dir and its stores; see the module comment. */
  static async open(
    config: MemberConfig,
    log: Logger,
    metrics: MemberMetrics,
  ): Promise<MemberCore> {
    await createDataDir(join(config.dataDir, 'kv'));
    const storage = await DiskStorage.open(config.dataDir, {
      logger: log.child({ component: 'storage' }),
    });
    const kv = MvccStore.open({
      path: join(config.dataDir, 'kv', 'db'),
      quotaBytes: config.quotaBackendBytes,
      // Unsynced commits: raft's WAL and snapshot are the durable copy, and the crash guard
      // discards a store a machine crash may have damaged (src/kv/crash-guard.ts); the raft
      // replay below rebuilds it. SHOAL_TEST_BOOT_ID lets tests simulate a machine restart.
      noSync: true,
      bootId: process.env.SHOAL_TEST_BOOT_ID || undefined,
      minLeaseTtlSeconds: Math.ceil((3 * config.electionTimeoutMs) / 2000),
      logger: log.child({ component: 'kv' }),
    });
    const registryPath = join(config.dataDir, 'member', 'registry.json');
    let registry = MemberRegistry.load(registryPath);
    const fresh = storage.lastIndex() === 0 && storage.snapshot().metadata.index === 0;
    let bootstrap: number[] | null = null;
    if (registry === null || fresh) {
      // A member joining a running cluster (etcd's "existing" state, or shoal's --join for a new
      // member) takes the cluster's id and registry from a peer and never bootstraps raft.
      const joining = fresh && (config.initialClusterState === 'existing' || config.joinOnly);
      const state = joining
        ? await fetchRegistry(config, log)
        : {
            index: 0,
            clusterId: config.clusterId,
            members: config.initialCluster.map((m) => ({
              id: m.id,
              name: m.name,
              peerUrls: m.peerUrls.map((u) => u.href.replace(/\/$/, '')),
              clientUrls: [],
              isLearner: false,
            })),
          };
      registry = MemberRegistry.create(registryPath, state);
      await registry.save();
      if (fresh && config.initialClusterState === 'new' && !config.joinOnly)
        bootstrap = config.initialCluster.map((m) => m.id);
    }
    await recoverStoreFromSnapshot(storage, kv, registry, log);
    // Partially received snapshots (resumable transfers, see transport.ts) live beside the log.
    const snapshotInbox = await SnapshotInbox.open(join(config.dataDir, SNAPSHOT_INBOX_DIR), {
      installedIndex: storage.snapshot().metadata.index,
      logger: log.child({ component: 'snapshot-inbox' }),
    });
    return new MemberCore(config, storage, kv, registry, log, metrics, bootstrap, snapshotInbox);
  }

  async start(): Promise<{ peerPort: number }> {
    const url = this.config.listenPeerUrls[0]!;
    this.transport.selfAddress = peerAddress(
      this.config.initialAdvertisePeerUrls[0]?.href ?? url.href,
    );
    const { port } = await this.transport.listen(
      peerAddress(url.href).split(':')[0]!,
      Number(url.port),
    );
    this.raft.start();
    this.publishTimer = setInterval(() => this.publish(), PUBLISH_INTERVAL_MS);
    this.leases.start();
    // A compaction left unfinished by a previous run resumes in the background.
    this.scheduleCompaction();
    return { peerPort: port };
  }

  get isLeader(): boolean {
    return this.raft.role === Role.Leader;
  }

  /** The member registry as etcd's MemberList reports it. */
  members(): ApiMember[] {
    return this.registry.list().map((m) => ({
      id: BigInt(m.id),
      name: m.name,
      peerUrls: m.peerUrls,
      clientUrls: m.clientUrls,
      isLearner: m.isLearner,
    }));
  }

  /**
   * The store's quota check, skipped while the database is far below the quota: reading LMDB's
   * statistics on every write would cost more than the write. The size is refreshed at most every
   * QUOTA_REFRESH_MS, and writes within QUOTA_MARGIN_BYTES of the quota are always checked.
   */
  quotaCheck(request: KvRequest): KvError | undefined {
    const now = performance.now();
    if (now - this.dbSizeCheckedAtMs > QUOTA_REFRESH_MS) {
      this.dbSizeInUseBytes = this.kv.status().dbSizeInUseBytes;
      this.dbSizeCheckedAtMs = now;
    }
    // Puts, txns with a put in either branch and lease grants; etcd's capped applier refuses
    // the same requests.
    const grows = requestCost(request) > 0;
    // Like etcd, a raised NOSPACE alarm (replicated: raised by any member) refuses every write
    // that could grow the store until an operator disarms it, after compacting.
    if (grows && this.registry.hasAlarm(ALARM_NOSPACE)) return errNoSpace();
    if (this.dbSizeInUseBytes + QUOTA_MARGIN_BYTES < this.config.quotaBackendBytes) {
      return undefined;
    }
    const refused = this.kv.quotaCheck(request);
    if (refused !== undefined) this.raiseNoSpace();
    return refused;
  }

  /**
   * A write refused by the quota raises NOSPACE for this member through raft, as etcd's API layer
   * does, so that every member refuses growing writes and lists the same alarm. The proposal runs
   * in the background; the refused request has its answer already.
   */
  private raiseNoSpace(): void {
    if (this.raisingNoSpace || this.registry.hasAlarm(ALARM_NOSPACE)) return;
    this.raisingNoSpace = true;
    this.changeAlarm('activate', this.id, ALARM_NOSPACE)
      .catch((error: unknown) => this.log.warn({ err: error }, 'could not raise NOSPACE'))
      .finally(() => {
        this.raisingNoSpace = false;
      });
  }

  /** Raised alarms, replicated: the same list on every member. */
  alarms(type = 0): { memberId: bigint; alarm: number }[] {
    return this.registry
      .alarms(type)
      .map((alarm) => ({ memberId: BigInt(alarm.memberId), alarm: alarm.alarm }));
  }

  /**
   * Alarm ACTIVATE or DEACTIVATE through raft (etcdctl alarm disarm sends DEACTIVATE for each
   * listed alarm). Resolves once applied here with what etcd answers: the alarm raised, or the
   * alarm cleared if it was raised.
   */
  async changeAlarm(
    action: 'activate' | 'deactivate',
    memberId: number,
    alarm: number,
  ): Promise<{ memberId: bigint; alarm: number }[]> {
    const held = () => this.registry.alarms(alarm).some((a) => a.memberId === memberId);
    const wasHeld = held();
    await this.proposer.propose({ registry: { alarm: { action, memberId, alarm } } });
    const changed = action === 'activate' ? held() : wasHeld;
    return changed ? [{ memberId: BigInt(memberId), alarm }] : [];
  }

  /** This member was removed from the cluster (applied, or told by a peer): it must stop. */
  private selfRemoved(): void {
    if (this.removed) return;
    this.removed = true;
    queueMicrotask(() => this.onRemoved());
  }

  /**
   * The log removed this member. A member re-added with the same id (a removed member restarted
   * with a fresh data dir, re-added by autopilot) replays its own earlier removal while it catches
   * up, so it counts as removed only if it is still missing from the registry after a grace
   * period with everything it knows to be committed applied.
   */
  private selfRemovedByLog(): void {
    const graceMs = Math.max(REMOVAL_GRACE_MS_MIN, 2 * this.config.electionTimeoutMs);
    const since = performance.now();
    let checks = 0;
    const check = () => {
      if (this.stopping || this.removed || this.registry.get(this.id) !== undefined) return;
      const status = this.raft.node.status();
      const settled = status.applied >= status.commit && performance.now() - since >= graceMs;
      if (settled || ++checks >= REMOVAL_CHECKS_MAX) {
        this.selfRemoved();
        return;
      }
      setTimeout(check, REMOVAL_CHECK_MS);
    };
    setTimeout(check, REMOVAL_CHECK_MS);
  }

  /** Resolves when a linearizable read may be served locally (after a batched ReadIndex). */
  async linearizableRead(): Promise<void> {
    if (this.stopping) throw etcdErrors.stopped();
    await this.proposer.waitForLeader();
    await this.reads.wait();
  }

  private softStateChanged(lead: number, role: Role, term: number): void {
    this.metrics.leaderChanged(lead, role === Role.Leader, term);
    this.leases.setLeading(role === Role.Leader, term);
    this.proposer.leaderChanged(lead);
    if (lead !== 0) this.publish();
  }

  /**
   * Physical compaction runs in bounded steps between apply batches (the store's contract), one
   * step per event-loop turn, so removing a large history never stalls raft for long.
   */
  private scheduleCompaction(): void {
    if (this.compactionScheduled || this.stopping) return;
    this.compactionScheduled = true;
    setImmediate(() => {
      this.compactionScheduled = false;
      if (this.stopping) return;
      let more = false;
      try {
        more = this.kv.compactStep();
      } catch (error) {
        this.log.error({ err: error }, 'compaction step failed');
      }
      if (!more) {
        for (const wake of this.compactionWaiters.splice(0)) wake();
      } else if (this.kv.hashing) {
        // Steps wait for a running HashKV: resume when it ends instead of polling every turn.
        this.compactionScheduled = true;
        void this.kv.hashesDone().then(() => {
          this.compactionScheduled = false;
          this.scheduleCompaction();
        });
      } else {
        this.scheduleCompaction();
      }
    });
  }

  /** Resolves once the store has physically removed the compacted history (bounded wait). */
  async compactionDone(): Promise<void> {
    if (!this.kv.status().compactionPending) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(etcdErrors.timeout()), this.requestTimeoutMs);
      this.compactionWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
      this.scheduleCompaction();
    });
  }

  private applied(index: number): void {
    this.reads.onApplied(index);
    this.scheduleCompaction();
    this.metrics.applied(index);
    const since = index - this.lastSnapshotIndex;
    if (
      since >= this.snapshotEvery &&
      !this.snapshotting &&
      snapshotDue(
        since,
        this.snapshotEvery,
        this.storage.walStats().bytesWritten - this.walBytesAtSnapshot,
        this.lastCheckpointBytes,
      )
    ) {
      this.snapshotting = true;
      this.takeSnapshot()
        .catch((error: unknown) => this.log.error({ err: error }, 'snapshot failed'))
        .finally(() => {
          this.snapshotting = false;
        });
    }
  }

  /**
   * Snapshots the store and registry, records the snapshot, compacts the WAL. The store's part is
   * a checkpoint (an LMDB copy made off the event loop, see src/kv/snapshot.ts); the snapshot's
   * index is the one the copy holds, and the registry and configuration taken with it are the
   * current ones, which is right only when no membership entry was applied after that index (the
   * rare case that is not so is skipped: the next applied batch tries again).
   */
  private async takeSnapshot(): Promise<void> {
    // Replaying after a restart (the store is ahead of the entries handed to apply): a copy now
    // could not match the registry, so none is made until the replay caught up.
    if (this.stateMachine.appliedIndex < this.kv.appliedIndex) return;
    const started = performance.now();
    const checkpoint = await this.kv.checkpoint();
    try {
      const index = checkpoint.appliedIndex;
      const copied = performance.now();
      const consistent =
        index > this.lastSnapshotIndex &&
        index <= this.stateMachine.appliedIndex &&
        this.stateMachine.membershipIndex <= index;
      if (!consistent) {
        this.log.info(
          {
            checkpoint: index,
            applied: this.stateMachine.appliedIndex,
            membership: this.stateMachine.membershipIndex,
          },
          'snapshot skipped: the checkpoint does not match the registry and configuration',
        );
        return;
      }
      const registry = this.registry.state();
      const confState: ConfState = this.stateMachine.confState;
      const checkpointBytes = statSync(checkpoint.file).size;
      // The checkpoint file becomes the snapshot's data file as it is: no copy of the store.
      await this.storage.createSnapshotWithFile(
        index,
        confState,
        checkpointSnapshotHead(registry, checkpointBytes),
        checkpoint.file,
        checkpointBytes,
      );
      const written = performance.now();
      this.metrics.observeSnapshot((written - started) / 1000);
      this.lastSnapshotIndex = index;
      this.snapshotEvery = snapshotInterval(this.config.snapshotCount, this.id, index);
      this.lastCheckpointBytes = checkpointBytes;
      this.walBytesAtSnapshot = this.storage.walStats().bytesWritten;
      const margin = Math.min(SNAPSHOT_CATCH_UP_ENTRIES_MAX, this.config.snapshotCount);
      const compactTo = index - margin;
      if (compactTo > this.storage.firstIndex() - 1) await this.storage.compact(compactTo);
      this.log.info(
        {
          index,
          checkpointBytes,
          compactedTo: compactTo,
          checkpointMs: Math.round(copied - started),
          writeMs: Math.round(written - copied),
        },
        'snapshot taken',
      );
    } finally {
      await this.kv.dropCheckpoint();
    }
  }

  /** Proposes this member's name and client URLs until the registry holds them. */
  private publish(): void {
    if (this.raft.lead === 0 || this.stopping) return;
    const self = this.registry.get(this.id);
    const clientUrls = this.config.advertiseClientUrls.map((u) => u.href.replace(/\/$/, ''));
    if (self === undefined) return;
    if (self.name === this.config.name && sameList(self.clientUrls, clientUrls)) {
      if (this.publishTimer !== null) clearInterval(this.publishTimer);
      this.publishTimer = null;
      return;
    }
    this.proposer
      .propose({ registry: { publish: { id: this.id, name: this.config.name, clientUrls } } })
      .catch(() => {});
  }

  private updatePeers(): void {
    const peers = new Map<number, string>();
    for (const member of this.registry.list()) {
      const url = member.peerUrls[0];
      if (url !== undefined) peers.set(member.id, peerAddress(url));
    }
    this.transport.setPeers(peers);
  }

  /** Stops raft and the peer transport, fails waiting requests, closes the stores. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.publishTimer !== null) clearInterval(this.publishTimer);
    this.leases.stop();
    await this.raft.stop();
    this.proposer.close(etcdErrors.stopped());
    this.reads.close(etcdErrors.stopped());
    await this.transport.close();
    await this.storage.close();
    await this.kv.close();
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** A joining member asks the peers of --initial-cluster for the cluster's id and registry. */
async function fetchRegistry(config: MemberConfig, log: Logger) {
  const probe = new PeerTransport(
    config.memberId,
    0,
    {
      step() {},
      reportUnreachable() {},
      reportSnapshot() {},
      info: () => {
        throw new Error('not ready');
      },
      promote: async () => ({ ok: false, code: 14, message: 'etcdserver: not leader' }),
      lease: () => ({ ttlSeconds: -1, grantedTtlSeconds: 0 }),
      removed() {},
    },
    log,
  );
  // --join seeds are peer addresses (gossip runs on the peer port), so they answer too.
  const urls = config.joinOnly
    ? config.join.map((seed) => `http://${seed}`)
    : config.initialCluster
        .filter((member) => member.id !== config.memberId)
        .flatMap((member) => member.peerUrls.map((url) => url.href));
  try {
    for (const url of urls) {
      try {
        const info = await probe.fetchInfo(url, JOIN_INFO_TIMEOUT_MS);
        return { ...info.registry, index: 0 };
      } catch (error) {
        log.warn({ peer: url, err: error }, 'could not reach peer to join');
      }
    }
  } finally {
    await probe.close();
  }
  throw new Error('joining a running cluster: no peer of --initial-cluster or --join answered');
}

/** Restores the store (and registry) from the raft snapshot when the store is behind it. */
async function recoverStoreFromSnapshot(
  storage: DiskStorage,
  kv: MvccStore,
  registry: MemberRegistry,
  log: Logger,
): Promise<void> {
  const snapshot: Snapshot = storage.snapshot();
  if (snapshot.metadata.index === 0 || kv.appliedIndex >= snapshot.metadata.index) return;
  log.warn(
    { store: kv.appliedIndex, snapshot: snapshot.metadata.index },
    'store behind the raft snapshot: restoring it',
  );
  const decoded = decodeSnapshotData(snapshot.data);
  await restoreStore(kv, decoded);
  registry.replace({ ...decoded.registry, index: snapshot.metadata.index });
  await registry.save();
}

export { RaftError };

/** Below this checkpoint size a snapshot is taken every `snapshotInterval` entries, as etcd does. */
export const SNAPSHOT_DEFER_FROM_BYTES = 64 * 1024 * 1024;
/** A deferred snapshot waits at most this many intervals (bounds the log kept, and its index). */
export const SNAPSHOT_DEFER_INTERVALS_MAX = 8;

/**
 * Whether a member that has applied `sinceEntries` entries since its last snapshot (at least its
 * `every`, see snapshotInterval) takes the next one now. etcd's snapshot costs it little: its
 * store is durable by itself, so a snapshot writes a small file. shoal's store is not (see
 * src/kv/crash-guard.ts), so a snapshot copies the whole store and reads the copy back for its
 * checksum: on the 2-core VM of bench/README.md, 0.3 to 0.5 s of CPU per member for a 100 MB
 * store, about 10 µs per put at 256 clients with the default count, and growing with the store.
 *
 * So once the last copy was big (`SNAPSHOT_DEFER_FROM_BYTES`), the next snapshot also waits until
 * the log written since (`logBytesSince`, the WAL's own bytes) is as big as that copy, the rule
 * the Raft dissertation gives for log compaction (section 5.1.3): copying the store then costs at
 * most about one byte per byte logged, whatever its size, and the log kept stays within the
 * store's size. It never waits past `SNAPSHOT_DEFER_INTERVALS_MAX` intervals, which bounds the
 * entries kept (and their in-memory index, about 60 bytes each) for stores of small entries.
 * After a machine crash a member rebuilds its store from the snapshot and replays the log since,
 * so that is also the most it replays; a process restart replays only what the store lacks. The
 * first snapshot after a restart follows the count alone (the copy's size is known once made).
 */
export function snapshotDue(
  sinceEntries: number,
  every: number,
  logBytesSince: number,
  lastCheckpointBytes: number,
): boolean {
  if (sinceEntries < every) return false;
  if (lastCheckpointBytes < SNAPSHOT_DEFER_FROM_BYTES) return true;
  if (sinceEntries >= every * SNAPSHOT_DEFER_INTERVALS_MAX) return true;
  return logBytesSince >= lastCheckpointBytes;
}

/**
 * How many applied entries this member waits before its next snapshot: more than
 * `--snapshot-count`, as etcd (which snapshots once the applied index is more than the count past
 * the last snapshot), plus up to half the count again, drawn per member and per snapshot
 * (ZooKeeper spreads its snapCount the same way). Every member applies the same entries, so a
 * fixed count had all of them snapshot the whole store at the same index, stalling the cluster
 * together; with the spread a quorum usually keeps going while one member snapshots.
 * Deterministic for a given member and index, so a member's behaviour can be replayed.
 *
 * The spread used to go downwards (half the count to all of it): members then snapshotted a third
 * more often than etcd at the same flag, and at 256 clients a put run holding a snapshot measured
 * 11-14k puts/s against 17-24k without (bench/README.md).
 */
export function snapshotInterval(
  snapshotCount: number,
  memberId: number,
  fromIndex: number,
): number {
  if (snapshotCount < 1) return 1;
  // One round of a 32-bit integer hash (xorshift-multiply) over the member id and the index.
  let h = (Math.imul(memberId % 0x7fff_ffff, 0x9e37_79b1) ^ fromIndex) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85eb_ca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2_ae35) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  const half = Math.floor(snapshotCount / 2);
  return snapshotCount + 1 + (h % (half + 1));
}
