/**
 * Autopilot's decisions, pure: given the raft membership and progress as the leader sees it, the
 * SWIM view and the time, it says which membership change to make next. It keeps only the time
 * each learner became healthy and each voter was first seen dead, so that promotions wait for a
 * stabilization time and replacements for a dead time. No I/O, no clock: the wiring
 * (autopilot-wiring.ts) calls `step` every second on the leader and carries out the action.
 *
 * Rules, one action per step (a conf change must apply before the next is decided):
 * 1. A gossip member that is alive, says it was never a member (role "none", so that a member an
 *    operator just removed is not added back) and whose peer URLs are not in raft is added as a
 *    learner.
 * 2. A learner that is alive in SWIM and caught up (match within CATCH_UP_ENTRIES_MAX of the
 *    leader's) continuously for `stabilizationMs` is promoted while voters < `targetVoters`, or,
 *    while a voter has been dead longer than `deadVoterMs`, to replace it (voters + 1 at most).
 * 3. With more voters than the target, a voter dead longer than `deadVoterMs` is removed, only if
 *    the voters left stay at least the target and the live voters keep a majority of them.
 */

/** A learner counts as caught up when its match index is at most this far behind the leader's. */
export const CATCH_UP_ENTRIES_MAX = 100;
/** Voter counts the autopilot may hold (odd sizes only: an even size adds no fault tolerance). */
export const AUTOPILOT_VOTERS_ALLOWED = [3, 5] as const;

export interface AutopilotOptions {
  targetVoters: number;
  stabilizationMs: number;
  deadVoterMs: number;
}

export interface RaftMemberView {
  id: number;
  peerUrls: readonly string[];
  isLearner: boolean;
  /** The leader's match index for this member (undefined when unknown). */
  match: number | undefined;
}

export interface GossipMemberView {
  name: string;
  /** alive, suspect, dead or left. */
  state: string;
  /**
   * The role it gossips: voter, learner, none (never a member: a newcomer) or removed (removed
   * and about to stop: it must not be added back).
   */
  role: string;
  peerUrls: readonly string[];
}

export interface AutopilotInput {
  leaderId: number;
  leaderLastIndex: number;
  raft: readonly RaftMemberView[];
  gossip: readonly GossipMemberView[];
}

export type AutopilotAction =
  | { type: 'addLearner'; peerUrls: string[]; name: string }
  | { type: 'promote'; id: number; reason: 'grow' | 'replace' }
  | { type: 'remove'; id: number };

export class AutopilotPlanner {
  private readonly healthySinceMs = new Map<number, number>();
  private readonly deadSinceMs = new Map<number, number>();

  constructor(private readonly options: AutopilotOptions) {
    if (!(AUTOPILOT_VOTERS_ALLOWED as readonly number[]).includes(options.targetVoters)) {
      throw new Error(`autopilot voters must be one of ${AUTOPILOT_VOTERS_ALLOWED.join(', ')}`);
    }
  }

  /** The next action, or null when the membership is as it should be. */
  step(input: AutopilotInput, nowMs: number): AutopilotAction | null {
    const byUrl = gossipByUrl(input.gossip);
    this.track(input, byUrl, nowMs);
    const voters = input.raft.filter((m) => !m.isLearner);
    const deadVoters = voters.filter((m) => this.deadLongEnough(m.id, nowMs));
    const removable = this.removableDeadVoter(voters, deadVoters);
    if (removable !== null) return { type: 'remove', id: removable };
    const ready = input.raft.find((m) => m.isLearner && this.stable(m.id, nowMs));
    if (ready !== undefined) {
      if (voters.length < this.options.targetVoters) {
        return { type: 'promote', id: ready.id, reason: 'grow' };
      }
      if (deadVoters.length > 0 && voters.length === this.options.targetVoters) {
        return { type: 'promote', id: ready.id, reason: 'replace' };
      }
    }
    const known = new Set(input.raft.flatMap((m) => m.peerUrls));
    const newcomer = input.gossip.find(
      (g) =>
        g.state === 'alive' &&
        g.role === 'none' &&
        g.peerUrls.length > 0 &&
        !g.peerUrls.some((u) => known.has(u)),
    );
    if (newcomer !== undefined) {
      return { type: 'addLearner', peerUrls: [...newcomer.peerUrls], name: newcomer.name };
    }
    return null;
  }

  /** Updates the healthy-since and dead-since times from this step's view. */
  private track(input: AutopilotInput, byUrl: Map<string, GossipMemberView>, nowMs: number): void {
    const ids = new Set(input.raft.map((m) => m.id));
    for (const id of [...this.healthySinceMs.keys()])
      if (!ids.has(id)) this.healthySinceMs.delete(id);
    for (const id of [...this.deadSinceMs.keys()]) if (!ids.has(id)) this.deadSinceMs.delete(id);
    for (const member of input.raft) {
      const gossip = member.peerUrls.map((u) => byUrl.get(u)).find((g) => g !== undefined);
      const state = member.id === input.leaderId ? 'alive' : gossip?.state;
      const caughtUp =
        member.match !== undefined && input.leaderLastIndex - member.match <= CATCH_UP_ENTRIES_MAX;
      if (member.isLearner && state === 'alive' && caughtUp) {
        if (!this.healthySinceMs.has(member.id)) this.healthySinceMs.set(member.id, nowMs);
      } else {
        this.healthySinceMs.delete(member.id);
      }
      if (!member.isLearner && (state === 'dead' || state === 'left')) {
        if (!this.deadSinceMs.has(member.id)) this.deadSinceMs.set(member.id, nowMs);
      } else {
        this.deadSinceMs.delete(member.id);
      }
    }
  }

  private stable(id: number, nowMs: number): boolean {
    const since = this.healthySinceMs.get(id);
    return since !== undefined && nowMs - since >= this.options.stabilizationMs;
  }

  private deadLongEnough(id: number, nowMs: number): boolean {
    const since = this.deadSinceMs.get(id);
    return since !== undefined && nowMs - since >= this.options.deadVoterMs;
  }

  /**
   * A dead voter that may go: there are more voters than the target, the voters left are at least
   * the target, and the live voters are a majority of the voters left.
   */
  private removableDeadVoter(
    voters: readonly RaftMemberView[],
    deadVoters: readonly RaftMemberView[],
  ): number | null {
    const victim = deadVoters[0];
    if (victim === undefined || voters.length <= this.options.targetVoters) return null;
    const remaining = voters.length - 1;
    const liveRemaining = remaining - (deadVoters.length - 1);
    if (remaining < this.options.targetVoters || liveRemaining <= remaining / 2) return null;
    return victim.id;
  }
}

function gossipByUrl(gossip: readonly GossipMemberView[]): Map<string, GossipMemberView> {
  const map = new Map<string, GossipMemberView>();
  for (const g of gossip) for (const url of g.peerUrls) map.set(url, g);
  return map;
}
