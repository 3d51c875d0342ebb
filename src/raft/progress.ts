/**
 * What a leader knows about each follower's log (`Progress`), the window of appends in flight to
 * it (`Inflights`), and the tracker that turns those into commit indexes and election results for
 * a (possibly joint) configuration.
 *
 * A follower's progress is in one of three states (as in etcd's raft):
 * - Probe: we do not know where its log ends; send one append per heartbeat interval and wait.
 * - Replicate: it accepted our last append; stream appends optimistically, bounded by `inflights`.
 * - Snapshot: it needs a snapshot; send nothing else until the transport reports the outcome.
 */
import { assert } from './assert.js';
import type { ConfState, NodeId } from './types.js';

export const ProgressState = { Probe: 0, Replicate: 1, Snapshot: 2 } as const;
export type ProgressState = (typeof ProgressState)[keyof typeof ProgressState];

/** A ring buffer of the last index (and the bytes) of each append in flight to one follower. */
export class Inflights {
  private readonly indexes: Float64Array;
  private readonly bytes: Float64Array;
  private start = 0;
  count = 0;
  private totalBytes = 0;

  constructor(
    readonly maxCount: number,
    readonly maxBytes: number,
  ) {
    assert(maxCount > 0, 'inflight window must hold at least one message');
    this.indexes = new Float64Array(maxCount);
    this.bytes = new Float64Array(maxCount);
  }

  full(): boolean {
    return this.count === this.maxCount || this.totalBytes >= this.maxBytes;
  }

  add(lastIndex: number, bytes: number): void {
    assert(this.count < this.maxCount, 'inflights: add to a full window');
    const slot = (this.start + this.count) % this.maxCount;
    if (this.count > 0) {
      const previous = this.indexes[(slot + this.maxCount - 1) % this.maxCount]!;
      assert(lastIndex > previous, () => `inflights: ${lastIndex} not after ${previous}`);
    }
    this.indexes[slot] = lastIndex;
    this.bytes[slot] = bytes;
    this.count++;
    this.totalBytes += bytes;
  }

  /** Frees every append whose last index is <= `index` (they were acknowledged). */
  freeLE(index: number): void {
    while (this.count > 0 && this.indexes[this.start]! <= index) {
      this.totalBytes -= this.bytes[this.start]!;
      this.start = (this.start + 1) % this.maxCount;
      this.count--;
    }
    if (this.count === 0) {
      this.start = 0;
      this.totalBytes = 0;
    }
  }

  /** Frees the oldest slot (its append was probably lost). */
  freeFirstOne(): void {
    if (this.count > 0) this.freeLE(this.indexes[this.start]!);
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
    this.totalBytes = 0;
  }
}

export class Progress {
  /** Highest index known to be durable on the follower. Invariant: 0 <= match < next. */
  match = 0;
  /** Next index to send. */
  next: number;
  state: ProgressState = ProgressState.Probe;
  /** In Snapshot state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** The leader tick carried by the newest heartbeat this follower acknowledged; -1 if none. */
  heartbeatAckTick = -1;
  /** Heard from since the last check-quorum round (the leader itself is always active). */
  recentActive = false;
  /** Probe state: an append is outstanding, wait for a response or the next heartbeat. */
  probeSent = false;
  readonly inflights: Inflights;
  isLearner: boolean;

  constructor(next: number, isLearner: boolean, maxInflightMsgs: number, maxInflightBytes: number) {
    this.next = next;
    this.isLearner = isLearner;
    this.inflights = new Inflights(maxInflightMsgs, maxInflightBytes);
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot) {
      // The snapshot made (or will make) the follower's log reach at least pendingSnapshot.
      const pending = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshotIndex;
  }

  /** An append covering up to `lastIndex` was sent. */
  sentEntries(lastIndex: number, bytes: number): void {
    if (this.state === ProgressState.Replicate) {
      if (lastIndex >= this.next) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex, bytes);
      }
    } else if (this.state === ProgressState.Probe) {
      this.probeSent = true;
    }
  }

  /** The follower acknowledged `index`. Returns false if the ack is stale. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * The follower rejected an append at `rejected`; `hint` is where it thinks the logs may match.
   * Returns false if the rejection is stale (from an older append).
   */
  maybeDecrTo(rejected: number, hint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      // In replicate state rejections of anything at or below match are duplicates or reordered.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // In probe state only the rejection of the last probe (at next - 1) counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, hint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** Whether the leader should hold back appends to this follower for now. */
  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.full();
      default:
        return true;
    }
  }
}

/** Reused by `majorityCommitted`: it runs for every append acknowledgement on the leader. */
const matchScratch: number[] = [];

/**
 * A voter set's quorum arithmetic: a simple majority. The highest index a majority holds is the
 * (n/2)-th largest match index. Sorted by insertion into a reused array: Array.prototype.sort
 * allocates about a kilobyte of work space per call, which on the leader's hot path was a tenth
 * of everything it allocated per put.
 */
export function majorityCommitted(voters: ReadonlySet<NodeId>, matchOf: (id: NodeId) => number) {
  const n = voters.size;
  if (n === 0) return Number.MAX_SAFE_INTEGER; // An empty config is no constraint (joint half).
  const matches = matchScratch;
  let count = 0;
  for (const id of voters) {
    // Insertion, keeping matches[0..count) in descending order.
    const match = matchOf(id);
    let at = count++;
    while (at > 0 && matches[at - 1]! < match) {
      matches[at] = matches[at - 1]!;
      at--;
    }
    matches[at] = match;
  }
  return matches[Math.floor(n / 2)]!;
}

export const VoteResult = { Pending: 0, Lost: 1, Won: 2 } as const;
export type VoteResult = (typeof VoteResult)[keyof typeof VoteResult];

function majorityVoteResult(voters: ReadonlySet<NodeId>, votes: ReadonlyMap<NodeId, boolean>) {
  if (voters.size === 0) return VoteResult.Won;
  let granted = 0;
  let missing = 0;
  for (const id of voters) {
    const vote = votes.get(id);
    if (vote === undefined) missing++;
    else if (vote) granted++;
  }
  const quorum = Math.floor(voters.size / 2) + 1;
  if (granted >= quorum) return VoteResult.Won;
  if (granted + missing >= quorum) return VoteResult.Pending;
  return VoteResult.Lost;
}

/** A (possibly joint) membership configuration. */
export interface TrackerConfig {
  /** The incoming voters (the only voters outside a joint change). */
  voters: Set<NodeId>;
  /** The outgoing voters during a joint change; empty otherwise. */
  votersOutgoing: Set<NodeId>;
  learners: Set<NodeId>;
  /** Outgoing voters that become learners when the joint change is left. */
  learnersNext: Set<NodeId>;
  autoLeave: boolean;
}

export function emptyTrackerConfig(): TrackerConfig {
  return {
    voters: new Set(),
    votersOutgoing: new Set(),
    learners: new Set(),
    learnersNext: new Set(),
    autoLeave: false,
  };
}

export function configToConfState(config: TrackerConfig): ConfState {
  const sorted = (set: Set<NodeId>) => [...set].sort((a, b) => a - b);
  return {
    voters: sorted(config.voters),
    learners: sorted(config.learners),
    votersOutgoing: sorted(config.votersOutgoing),
    learnersNext: sorted(config.learnersNext),
    autoLeave: config.autoLeave,
  };
}

export function isJoint(config: TrackerConfig): boolean {
  return config.votersOutgoing.size > 0;
}

export class ProgressTracker {
  config: TrackerConfig = emptyTrackerConfig();
  progress = new Map<NodeId, Progress>();
  votes = new Map<NodeId, boolean>();

  constructor(
    readonly maxInflightMsgs: number,
    readonly maxInflightBytes: number,
  ) {}

  isVoter(id: NodeId): boolean {
    return this.config.voters.has(id) || this.config.votersOutgoing.has(id);
  }

  /** Every voter id, incoming and outgoing, once. */
  voterIds(): Set<NodeId> {
    const ids = new Set(this.config.voters);
    for (const id of this.config.votersOutgoing) ids.add(id);
    return ids;
  }

  isSingleton(): boolean {
    return this.config.voters.size === 1 && this.config.votersOutgoing.size === 0;
  }

  /** The highest index durable on a quorum (on both quorums during a joint change). */
  committed(): number {
    const incoming = majorityCommitted(this.config.voters, this.#matchOf);
    const outgoing = majorityCommitted(this.config.votersOutgoing, this.#matchOf);
    return Math.min(incoming, outgoing);
  }

  /** A voter's durable match index (0 when unknown); one closure for the tracker's lifetime. */
  readonly #matchOf = (id: NodeId): number => this.progress.get(id)?.match ?? 0;

  resetVotes(): void {
    this.votes.clear();
  }

  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  voteResult(): VoteResult {
    const incoming = majorityVoteResult(this.config.voters, this.votes);
    const outgoing = majorityVoteResult(this.config.votersOutgoing, this.votes);
    if (incoming === outgoing) return incoming;
    if (incoming === VoteResult.Lost || outgoing === VoteResult.Lost) return VoteResult.Lost;
    return VoteResult.Pending;
  }

  tallyVotes(): { granted: number; rejected: number } {
    let granted = 0;
    let rejected = 0;
    for (const [id, vote] of this.votes) {
      if (!this.isVoter(id)) continue;
      if (vote) granted++;
      else rejected++;
    }
    return { granted, rejected };
  }

  /** Whether the voters marked recently active form a quorum (used by check-quorum). */
  quorumActive(): boolean {
    const active = new Map<NodeId, boolean>();
    for (const [id, pr] of this.progress) {
      if (!pr.isLearner) active.set(id, pr.recentActive);
    }
    return this.voteResultOf(active) === VoteResult.Won;
  }

  /** The election result if `votes` were the votes received. */
  voteResultOf(votes: ReadonlyMap<NodeId, boolean>): VoteResult {
    const incoming = majorityVoteResult(this.config.voters, votes);
    const outgoing = majorityVoteResult(this.config.votersOutgoing, votes);
    if (incoming === outgoing) return incoming;
    if (incoming === VoteResult.Lost || outgoing === VoteResult.Lost) return VoteResult.Lost;
    return VoteResult.Pending;
  }

  newProgress(next: number, isLearner: boolean): Progress {
    return new Progress(next, isLearner, this.maxInflightMsgs, this.maxInflightBytes);
  }
}
