/**
 * Prometheus metrics of one member (prom-client, in a registry of its own so several members can
 * run in one process in tests). Names follow etcd's where etcd has the same metric.
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { FastCounter, FastHistogram } from './fast-metrics.js';
import type { ReadyInfo } from './raft-node.js';

const LATENCY_BUCKETS_SECONDS = [
  0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048,
];

const SNAPSHOT_BUCKETS_SECONDS = [0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100];

export class MemberMetrics {
  readonly registry = new Registry();
  /** Per Ready and per request: the cheap kind (fast-metrics.ts). */
  private readonly proposalsCommitted: FastCounter;
  readonly proposalsFailed: Counter;
  /** Raft proposals that replicate lease renewals (leases.ts), counted on the leader. */
  readonly leaseRenewalProposals: Counter;
  private readonly applyLatency: FastHistogram;
  private readonly walFsyncLatency: FastHistogram;
  private readonly snapshotDuration: FastHistogram;
  private readonly term: Gauge;
  private readonly isLeader: Gauge;
  private readonly hasLeader: Gauge;
  private readonly leaderChanges: Counter;
  private readonly appliedIndex: Gauge;
  private readonly grpcRequests: FastCounter;
  private readonly grpcLatency: FastHistogram;
  private lastLead = 0;

  constructor(labels: Record<string, string>) {
    const registers = [this.registry];
    this.registry.setDefaultLabels(labels);
    collectDefaultMetrics({ register: this.registry });
    this.proposalsCommitted = new FastCounter(
      'etcd_server_proposals_committed_total',
      'Committed raft entries applied by this member.',
      [],
    ).register(this.registry);
    this.proposalsFailed = new Counter({
      name: 'etcd_server_proposals_failed_total',
      help: 'Proposals that failed (refused or timed out).',
      registers,
    });
    this.leaseRenewalProposals = new Counter({
      name: 'shoal_lease_renewal_proposals_total',
      help: 'Raft proposals the leader made to replicate batched lease renewals.',
      registers,
    });
    this.applyLatency = new FastHistogram(
      'shoal_apply_batch_duration_seconds',
      'Time to apply one batch of committed entries.',
      [],
      LATENCY_BUCKETS_SECONDS,
    ).register(this.registry);
    this.walFsyncLatency = new FastHistogram(
      'etcd_disk_wal_fsync_duration_seconds',
      'Time for one durable WAL save (group commit) of a Ready.',
      [],
      LATENCY_BUCKETS_SECONDS,
    ).register(this.registry);
    // etcd's etcd_debugging_snap_save_total_duration_seconds; its count is the snapshots taken.
    this.snapshotDuration = new FastHistogram(
      'shoal_snapshot_duration_seconds',
      'Time to take one snapshot (checkpoint the store, write the snapshot record).',
      [],
      SNAPSHOT_BUCKETS_SECONDS,
    ).register(this.registry);
    this.term = new Gauge({ name: 'shoal_raft_term', help: 'The current raft term.', registers });
    this.isLeader = new Gauge({
      name: 'etcd_server_is_leader',
      help: '1 if this member is the leader.',
      registers,
    });
    this.hasLeader = new Gauge({
      name: 'etcd_server_has_leader',
      help: '1 if a leader is known.',
      registers,
    });
    this.leaderChanges = new Counter({
      name: 'etcd_server_leader_changes_seen_total',
      help: 'Leader changes seen.',
      registers,
    });
    this.appliedIndex = new Gauge({
      name: 'shoal_raft_applied_index',
      help: 'The last applied raft index.',
      registers,
    });
    this.grpcRequests = new FastCounter(
      'grpc_server_handled_total',
      'gRPC requests handled, by method and status code.',
      ['method', 'code'],
    ).register(this.registry);
    this.grpcLatency = new FastHistogram(
      'grpc_server_handling_seconds',
      'gRPC request latency by method.',
      ['method'],
      LATENCY_BUCKETS_SECONDS,
    ).register(this.registry);
  }

  observeReady(info: ReadyInfo): void {
    if (info.committed > 0) {
      this.proposalsCommitted.inc([], info.committed);
      this.applyLatency.observe([], info.applyMs / 1000);
    }
    if (info.entries > 0) this.walFsyncLatency.observe([], info.persistMs / 1000);
  }

  leaderChanged(lead: number, isLeader: boolean, term: number): void {
    this.term.set(term);
    this.isLeader.set(isLeader ? 1 : 0);
    this.hasLeader.set(lead !== 0 ? 1 : 0);
    if (lead !== 0 && lead !== this.lastLead) this.leaderChanges.inc();
    if (lead !== 0) this.lastLead = lead;
  }

  applied(index: number): void {
    this.appliedIndex.set(index);
  }

  /** Records a gRPC request's outcome; `code` is the gRPC status code number. */
  grpcHandled(method: string, code: number, seconds: number): void {
    this.grpcRequests.inc([method, String(code)]);
    this.grpcLatency.observe([method], seconds);
  }

  /** A snapshot was taken in `seconds`. */
  observeSnapshot(seconds: number): void {
    this.snapshotDuration.observe([], seconds);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
