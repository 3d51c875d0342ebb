/**
 * Prometheus metrics of one member (prom-client, in a registry of its own so several members can
 * run in one process in tests). Names follow etcd's where etcd has the same metric.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { ReadyInfo } from './raft-node.js';

const LATENCY_BUCKETS_SECONDS = [
  0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048,
];

export class MemberMetrics {
  readonly registry = new Registry();
  private readonly proposalsCommitted: Counter;
  readonly proposalsFailed: Counter;
  /** Raft proposals that replicate lease renewals (leases.ts), counted on the leader. */
  readonly leaseRenewalProposals: Counter;
  private readonly applyLatency: Histogram;
  private readonly walFsyncLatency: Histogram;
  private readonly term: Gauge;
  private readonly isLeader: Gauge;
  private readonly hasLeader: Gauge;
  private readonly leaderChanges: Counter;
  private readonly appliedIndex: Gauge;
  readonly grpcRequests: Counter<'method' | 'code'>;
  readonly grpcLatency: Histogram<'method'>;
  private lastLead = 0;

  constructor(labels: Record<string, string>) {
    const registers = [this.registry];
    this.registry.setDefaultLabels(labels);
    collectDefaultMetrics({ register: this.registry });
    this.proposalsCommitted = new Counter({
      name: 'etcd_server_proposals_committed_total',
      help: 'Committed raft entries applied by this member.',
      registers,
    });
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
    this.applyLatency = new Histogram({
      name: 'shoal_apply_batch_duration_seconds',
      help: 'Time to apply one batch of committed entries.',
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
    this.walFsyncLatency = new Histogram({
      name: 'etcd_disk_wal_fsync_duration_seconds',
      help: 'Time for one durable WAL save (group commit) of a Ready.',
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
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
    this.grpcRequests = new Counter({
      name: 'grpc_server_handled_total',
      help: 'gRPC requests handled, by method and status code.',
      labelNames: ['method', 'code'],
      registers,
    });
    this.grpcLatency = new Histogram({
      name: 'grpc_server_handling_seconds',
      help: 'gRPC request latency by method.',
      labelNames: ['method'],
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
  }

  observeReady(info: ReadyInfo): void {
    if (info.committed > 0) {
      this.proposalsCommitted.inc(info.committed);
      this.applyLatency.observe(info.applyMs / 1000);
    }
    if (info.entries > 0) this.walFsyncLatency.observe(info.persistMs / 1000);
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
    this.grpcRequests.inc({ method, code: String(code) });
    this.grpcLatency.observe({ method }, seconds);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
