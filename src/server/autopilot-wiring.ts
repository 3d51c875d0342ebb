/**
 * Runs the autopilot (autopilot.ts) in a member process: every AUTOPILOT_INTERVAL_MS, on the raft
 * leader only, it feeds the planner the registry, the leader's view of each member's progress and
 * the SWIM view, and carries out the action it returns through the cluster's conf-change path
 * (cluster.ts), one change at a time. A member that is not leader drops its planner, so a new
 * leader starts its stabilization and dead-voter clocks afresh (it never acts on stale times).
 */
import type { Logger } from 'pino';
import { type AutopilotAction, type AutopilotInput, AutopilotPlanner } from './autopilot.js';
import type { MemberCore } from './member-core.js';
import type { MembershipWiring } from './membership-wiring.js';

export const AUTOPILOT_INTERVAL_MS = 1000;
/** Learners autopilot keeps at most (standby replacements for voters). */
export const AUTOPILOT_LEARNERS_MAX = 4;

export class AutopilotRunner {
  private timer: NodeJS.Timeout | null = null;
  private planner: AutopilotPlanner | null = null;
  /** The action being carried out, so that a slow conf change is not started twice. */
  private busy = false;

  constructor(
    private readonly core: MemberCore,
    private readonly membership: MembershipWiring,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), AUTOPILOT_INTERVAL_MS);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private input(): AutopilotInput {
    const status = this.core.raft.node.status();
    return {
      leaderId: this.core.id,
      leaderLastIndex: status.progress?.get(this.core.id)?.match ?? status.lastIndex,
      raft: this.core.registry.list().map((m) => ({
        id: m.id,
        peerUrls: m.peerUrls,
        isLearner: m.isLearner,
        match: status.progress?.get(m.id)?.match,
      })),
      gossip: this.membership
        .list()
        .map((m) => ({ name: m.name, state: m.swimState, role: m.role, peerUrls: m.peerUrls })),
    };
  }

  private async tick(): Promise<void> {
    if (!this.core.isLeader || this.core.removed) {
      this.planner = null;
      return;
    }
    if (this.busy) return;
    const config = this.core.config;
    this.planner ??= new AutopilotPlanner({
      targetVoters: config.autopilotVoters,
      stabilizationMs: config.autopilotStabilizationMs,
      deadVoterMs: config.autopilotDeadVoterMs,
    });
    const action = this.planner.step(this.input(), performance.now());
    if (action === null) return;
    this.busy = true;
    try {
      this.log.info({ action }, 'autopilot membership change');
      await this.apply(action);
    } catch (error) {
      this.log.warn({ err: error, action }, 'autopilot membership change failed');
    } finally {
      this.busy = false;
    }
  }

  private async apply(action: AutopilotAction): Promise<void> {
    const cluster = this.core.cluster;
    switch (action.type) {
      case 'addLearner':
        await cluster.add(action.peerUrls, true, AUTOPILOT_LEARNERS_MAX);
        return;
      case 'promote':
        await cluster.promote(BigInt(action.id));
        return;
      case 'remove':
        await cluster.remove(BigInt(action.id));
        return;
    }
  }
}
