/**
 * The raft protocol itself: one member's state machine. `step` feeds it a message, `tick` advances
 * its clock, and everything it wants done accumulates in `msgs`, `msgsAfterPersist`, the log's
 * unstable tail and `readStates`, which `RawNode` packs into a `Ready`. See index.ts for the
 * caller's contract. The file reads top-down: configuration, state, role transitions
 * (becomeFollower/Candidate/PreCandidate/Leader), the generic `step`, then one step function per
 * role (stepLeader, stepCandidate, stepFollower) and the leader's replication helpers.
 */
import { assert } from './assert.js';
import {
  changeConfig,
  configFromConfState,
  decodeConfChange,
  encodeConfChange,
  isLeaveJoint,
} from './confchange.js';
import { RaftLog } from './log.js';
import {
  configToConfState,
  isJoint,
  majorityCommitted,
  ProgressState,
  ProgressTracker,
  type TrackerConfig,
  VoteResult,
} from './progress.js';
import { PENDING_READS_MAX, ReadOnly } from './read-only.js';
import type { LogStorage } from './storage.js';
import {
  CAMPAIGN_TRANSFER,
  type ConfChange,
  type ConfState,
  type Entry,
  EntryType,
  entrySizeBytes,
  type HardState,
  type Message,
  MessageType,
  NONE,
  type NodeId,
  RaftError,
  type RaftErrorCode,
  type ReadState,
  Role,
  type Snapshot,
  StorageError,
} from './types.js';

/** How linearizable reads are confirmed. */
export type ReadOnlyMode = 'safe' | 'lease';

export interface Logger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

const silentLogger: Logger = { debug() {}, info() {}, warn() {} };

export interface RaftConfig {
  /** This member's id; never 0. */
  readonly id: NodeId;
  readonly storage: LogStorage;
  /** Ticks without hearing from a leader before a follower campaigns (randomized up to 2x). */
  readonly electionTick: number;
  /** Ticks between a leader's heartbeats. Must be < electionTick. */
  readonly heartbeatTick: number;
  /** Limit on the entry bytes in one append message (always at least one entry). */
  readonly maxSizePerMsgBytes: number;
  /** Appends in flight to one follower in replicate state (the pipelining window). */
  readonly maxInflightMsgs: number;
  /** Entry bytes in flight to one follower; defaults to unlimited (only the count bounds it). */
  readonly maxInflightBytes?: number;
  /** Proposals are refused while the leader's uncommitted entries exceed this many bytes. */
  readonly maxUncommittedEntriesBytes: number;
  /** Limit on the bytes of committed entries handed out in one Ready. */
  readonly maxCommittedSizePerReadyBytes?: number;
  /** A leader steps down when it has not heard from a quorum within an election timeout. */
  readonly checkQuorum: boolean;
  /** Campaign only after a pre-vote shows the election could be won (thesis §9.6). */
  readonly preVote: boolean;
  /** 'lease' answers reads from the leader's lease; it requires checkQuorum. */
  readonly readOnly?: ReadOnlyMode;
  /** A seeded source of numbers in [0, 1): the only randomness the core uses. */
  readonly random: () => number;
  /** The index the state machine has applied (on restart); defaults to the snapshot's index. */
  readonly applied?: number;
  readonly logger?: Logger;
}

/** Ticks a lease is shortened by, for members whose ticks are out of phase with the leader's. */
export const LEASE_MARGIN_TICKS = 1;

/** Proposals waiting for the first commit of a new leader's term are bounded. */
export const PENDING_READ_MESSAGES_MAX = PENDING_READS_MAX;

function emptyMessage(type: MessageType, to: NodeId): Message {
  return {
    type,
    to,
    from: NONE,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    snapshot: null,
    reject: false,
    rejectHint: 0,
    context: EMPTY_BYTES,
  };
}

const EMPTY_BYTES = new Uint8Array(0);

/** Builds a message with every field present; `fields` override the defaults. */
export function message(type: MessageType, fields: Partial<Message>): Message {
  return Object.assign(emptyMessage(type, NONE), fields);
}

function isLocalMessage(type: MessageType): boolean {
  return (
    type === MessageType.Hup ||
    type === MessageType.Beat ||
    type === MessageType.Unreachable ||
    type === MessageType.SnapStatus ||
    type === MessageType.CheckQuorum
  );
}

/** Responses that vouch for durable state: they may only be sent after the Ready is persisted. */
function mustWaitForPersist(type: MessageType): boolean {
  return (
    type === MessageType.AppResp ||
    type === MessageType.VoteResp ||
    type === MessageType.PreVoteResp
  );
}

export class Raft {
  readonly id: NodeId;
  /** Invariant: term only grows. Persisted (HardState) before any message that depends on it. */
  term = 0;
  /** Whom we voted for in `term`; NONE if nobody. Persisted before the vote is sent. */
  vote: NodeId = NONE;
  role: Role = Role.Follower;
  /** The leader of `term` we know of, NONE if unknown. */
  lead: NodeId = NONE;
  readonly log: RaftLog;
  readonly trk: ProgressTracker;
  /** Messages that may be sent right away, even before this Ready is persisted. */
  msgs: Message[] = [];
  /** Messages to send only once this Ready's hard state and entries are durable. */
  msgsAfterPersist: Message[] = [];
  readStates: ReadState[] = [];
  isLearner = false;

  /** Leader: the member leadership is being handed to, NONE if no transfer is in progress. */
  leadTransferee: NodeId = NONE;
  /** Leader: index of the latest conf change entry; no new one until it is applied. */
  pendingConfIndex = 0;
  /** Leader: bytes of uncommitted entry payloads. Invariant: >= 0. */
  uncommittedBytes = 0;
  readonly readOnly = new ReadOnly();
  /** Leader: reads that arrived before the first commit of this term; replayed after it. */
  private pendingReadMessages: Message[] = [];
  /** Leader: new entries or a commit to broadcast at the next flush (batches many proposals). */
  private broadcastPending = false;
  private commitBroadcastPending = false;
  /** Leader: a heartbeat carrying the newest read's context is due at the next flush. */
  private readHeartbeatPending = false;
  /** Candidate: our own vote counts only once the hard state carrying it is durable. */
  private selfVotePending = false;
  /** Leader: we are no longer a voter; hand leadership over (see switchToConfig). */
  private stepDownPending = false;
  /** Leader with stepDownPending: the voter the last handover attempt went to. */
  private lastHandoverTarget: NodeId = NONE;

  /** Ticks since the last election timeout reset (follower/candidate) or check (leader). */
  electionElapsed = 0;
  heartbeatElapsed = 0;
  /** Ticks since this member started (lease reads: see stepHigherTerm). */
  private ticksSinceStart = 0;
  /** Lease reads: a restarted member refuses votes for this many ticks after it starts. */
  private startupQuietTicks = 0;
  /** Leader: ticks since it became leader; heartbeats carry it so acks prove when they were sent. */
  private leaderTick = 0;
  randomizedElectionTimeout = 0;

  readonly electionTimeout: number;
  readonly heartbeatTimeout: number;
  readonly checkQuorum: boolean;
  readonly preVote: boolean;
  readonly readOnlyMode: ReadOnlyMode;
  readonly maxMsgBytes: number;
  readonly maxUncommittedBytes: number;
  private readonly random: () => number;
  readonly logger: Logger;

  constructor(config: RaftConfig) {
    validateConfig(config);
    this.id = config.id;
    this.electionTimeout = config.electionTick;
    this.heartbeatTimeout = config.heartbeatTick;
    this.checkQuorum = config.checkQuorum;
    this.preVote = config.preVote;
    this.readOnlyMode = config.readOnly ?? 'safe';
    this.maxMsgBytes = config.maxSizePerMsgBytes;
    this.maxUncommittedBytes = config.maxUncommittedEntriesBytes;
    this.random = config.random;
    this.logger = config.logger ?? silentLogger;
    this.log = new RaftLog(
      config.storage,
      config.maxCommittedSizePerReadyBytes ?? Number.POSITIVE_INFINITY,
    );
    this.trk = new ProgressTracker(
      config.maxInflightMsgs,
      config.maxInflightBytes ?? Number.POSITIVE_INFINITY,
    );
    const { hardState, confState } = config.storage.initialState();
    this.switchToConfig(configFromConfState(confState));
    if (hardState.term !== 0 || hardState.commit !== 0) this.loadHardState(hardState);
    if (this.readOnlyMode === 'lease' && hardState.term > 0) {
      this.startupQuietTicks = this.electionTimeout;
    }
    // A snapshot holds only committed entries, so its index is committed even when the durable
    // hard state is older: the member may apply (and snapshot) entries whose commit index is only
    // written with its next save (drain(), or a Ready that changed nothing but the commit index).
    const snapshotIndex = config.storage.snapshot().metadata.index;
    if (snapshotIndex > this.log.committed) this.log.commitTo(snapshotIndex);
    // The state machine starts from the latest snapshot unless the caller says it applied more.
    const applied = config.applied ?? snapshotIndex;
    if (applied > 0) this.log.appliedTo(applied);
    this.becomeFollower(this.term, NONE);
  }

  private loadHardState(hs: HardState): void {
    const last = this.log.lastIndex();
    assert(hs.commit <= last, () => `hard state commit ${hs.commit} beyond last index ${last}`);
    this.log.committed = Math.max(this.log.committed, hs.commit);
    this.term = hs.term;
    this.vote = hs.vote;
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  /** Whether this member may campaign: it is a voter in the current configuration. */
  promotable(): boolean {
    const pr = this.trk.progress.get(this.id);
    return pr !== undefined && !pr.isLearner && !this.log.unstable.snapshot;
  }

  // ----------------------------------------------------------------------------- sending

  send(m: Message): void {
    if (m.from === NONE) m.from = this.id;
    if (
      m.type === MessageType.Vote ||
      m.type === MessageType.VoteResp ||
      m.type === MessageType.PreVote ||
      m.type === MessageType.PreVoteResp
    ) {
      // Vote messages carry their own term: the campaign term, or the term the vote was cast in.
      assert(m.term !== 0, () => `vote message of type ${m.type} without a term`);
    } else if (
      m.type !== MessageType.Prop &&
      m.type !== MessageType.ReadIndex &&
      m.type !== MessageType.TransferLeader
    ) {
      // Forwarded requests are handled by whoever leads when they arrive: they carry no term.
      m.term = this.term;
    }
    if (mustWaitForPersist(m.type)) this.msgsAfterPersist.push(m);
    else this.msgs.push(m);
  }

  // ----------------------------------------------------------------------------- transitions

  private reset(term: number): void {
    if (this.term !== term) {
      assert(term > this.term, () => `term going backwards: ${this.term} -> ${term}`);
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout =
      this.electionTimeout + Math.floor(this.random() * this.electionTimeout);
    this.leadTransferee = NONE;
    this.trk.resetVotes();
    this.selfVotePending = false;
    this.stepDownPending = false;
    const last = this.log.lastIndex();
    const durable = this.durableLastIndex();
    for (const [id, pr] of this.trk.progress) {
      const fresh = this.trk.newProgress(last + 1, pr.isLearner);
      // The leader counts itself only for entries it has made durable.
      if (id === this.id) fresh.match = durable;
      this.trk.progress.set(id, fresh);
    }
    this.pendingConfIndex = 0;
    this.uncommittedBytes = 0;
    this.readOnly.reset();
    this.pendingReadMessages = [];
    this.broadcastPending = false;
    this.commitBroadcastPending = false;
    this.readHeartbeatPending = false;
  }

  /** The last index whose entry is durable and current (not about to be overwritten). */
  durableLastIndex(): number {
    if (this.log.unstable.snapshot !== null) return 0;
    return Math.min(this.log.storage.lastIndex(), this.log.unstable.offset - 1);
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.role = Role.Follower;
    this.lead = lead;
  }

  private becomePreCandidate(): void {
    assert(this.role !== Role.Leader, 'leader cannot become pre-candidate');
    // A pre-candidate changes neither term nor vote: a lost pre-vote leaves no trace.
    this.trk.resetVotes();
    this.role = Role.PreCandidate;
    this.lead = NONE;
  }

  private becomeCandidate(): void {
    assert(this.role !== Role.Leader, 'leader cannot become candidate');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = Role.Candidate;
    this.selfVotePending = true;
  }

  becomeLeader(): void {
    assert(this.role === Role.Candidate, 'only a candidate can become leader');
    this.reset(this.term);
    this.role = Role.Leader;
    this.lead = this.id;
    this.leaderTick = 0;
    this.trk.progress.get(this.id)!.becomeReplicate();
    // Any conf change in the log may still be uncommitted; refuse new ones until our own term's
    // first entry is applied (this is the fix for single-server changes, see Ongaro's raft-dev
    // post of 2015: a new leader must commit an entry of its term before changing membership).
    this.pendingConfIndex = this.log.lastIndex() + 1;
    this.appendEntries([{ term: 0, index: 0, type: EntryType.Normal, data: EMPTY_BYTES }], true);
    this.checkInvariants();
    this.logger.info({ id: this.id, term: this.term }, 'became leader');
  }

  // ----------------------------------------------------------------------------- ticks

  tick(): void {
    this.ticksSinceStart++;
    if (this.role === Role.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.step(message(MessageType.Hup, { from: this.id }));
    }
  }

  private tickHeartbeat(): void {
    this.leaderTick++;
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) this.step(message(MessageType.CheckQuorum, { from: this.id }));
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.role === Role.Leader && this.leadTransferee !== NONE) this.leadTransferee = NONE;
    }
    if (this.role !== Role.Leader) return;
    // A leader outside the configuration retries its handover until a successor takes over. It
    // learns of the successor's higher term from the answers to its own heartbeats.
    if (this.stepDownPending) this.transferToSuccessor();
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.step(message(MessageType.Beat, { from: this.id }));
    }
  }

  // ----------------------------------------------------------------------------- step

  /**
   * Processes one message. Returns the code of a refused proposal or read (the message then had
   * no effect), or null.
   */
  step(m: Message): RaftErrorCode | null {
    if (m.term > this.term) {
      if (!this.stepHigherTerm(m)) return null;
    } else if (m.term !== 0 && m.term < this.term) {
      this.stepLowerTerm(m);
      return null;
    }
    switch (m.type) {
      case MessageType.Hup:
        this.hup(m.context === CAMPAIGN_TRANSFER);
        return null;
      case MessageType.Vote:
      case MessageType.PreVote:
        this.stepVoteRequest(m);
        return null;
    }
    switch (this.role) {
      case Role.Leader:
        return this.stepLeader(m);
      case Role.Candidate:
      case Role.PreCandidate:
        return this.stepCandidate(m);
      default:
        return this.stepFollower(m);
    }
  }

  /** A message from a higher term. Returns false if the message is to be ignored. */
  private stepHigherTerm(m: Message): boolean {
    if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
      const force = m.context.length > 0 && m.context[0] === CAMPAIGN_TRANSFER[0];
      // With lease reads, a restarted member may have acknowledged a leader's lease before it
      // went down, so it also waits an election timeout before voting for anyone else.
      const knowsLeader = this.lead !== NONE || this.ticksSinceStart < this.startupQuietTicks;
      const inLease =
        this.checkQuorum && knowsLeader && this.electionElapsed < this.electionTimeout;
      // We heard from a leader recently: a disruptive candidate (e.g. one rejoining after a
      // partition) must not depose it. A leadership transfer is exempt.
      if (!force && inLease) return false;
    }
    if (m.type === MessageType.PreVote) return true; // Never change our term for a pre-vote.
    if (m.type === MessageType.PreVoteResp && !m.reject) return true; // Term of a future election.
    const fromLeader =
      m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap;
    this.becomeFollower(m.term, fromLeader ? m.from : NONE);
    return true;
  }

  private stepLowerTerm(m: Message): void {
    if (this.isFromLeader(m)) {
      // A stale leader (e.g. healed from a partition) learns our term from this response and
      // steps down (Raft §5.1: a stale request is answered with the current term).
      this.send(message(MessageType.AppResp, { to: m.from }));
    } else if (m.type === MessageType.PreVote) {
      this.send(message(MessageType.PreVoteResp, { to: m.from, term: this.term, reject: true }));
    }
  }

  private isFromLeader(m: Message): boolean {
    return m.type === MessageType.App || m.type === MessageType.Heartbeat;
  }

  private stepVoteRequest(m: Message): void {
    const isPre = m.type === MessageType.PreVote;
    const respType = isPre ? MessageType.PreVoteResp : MessageType.VoteResp;
    const canVote =
      this.vote === m.from ||
      (this.vote === NONE && this.lead === NONE) ||
      (isPre && m.term > this.term);
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      // The response carries the candidate's term so it is not mistaken for a stale response.
      this.send(message(respType, { to: m.from, term: m.term }));
      if (!isPre) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send(message(respType, { to: m.from, term: this.term, reject: true }));
    }
  }

  private hup(transfer: boolean): void {
    if (this.role === Role.Leader) return;
    if (!this.promotable()) return;
    if (this.hasUnappliedConfChanges()) {
      // A committed conf change could make us a non-voter; apply it before campaigning.
      this.logger.warn({ id: this.id }, 'not campaigning: unapplied conf change');
      return;
    }
    if (this.preVote && !transfer) this.campaign(MessageType.PreVote, false);
    else this.campaign(MessageType.Vote, transfer);
  }

  private hasUnappliedConfChanges(): boolean {
    const log = this.log;
    if (log.applied >= log.committed) return false;
    const hi = Math.min(log.committed, log.lastIndex());
    if (log.applied + 1 < log.firstIndex()) return false;
    for (const entry of log.slice(log.applied + 1, hi + 1, Number.POSITIVE_INFINITY)) {
      if (entry.type === EntryType.ConfChange) return true;
    }
    return false;
  }

  private campaign(type: MessageType, transfer: boolean): void {
    let term: number;
    if (type === MessageType.PreVote) {
      this.becomePreCandidate();
      term = this.term + 1;
      this.trk.recordVote(this.id, true); // A pre-vote needs no durable state.
    } else {
      this.becomeCandidate();
      term = this.term;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const id of [...this.trk.voterIds()].sort((a, b) => a - b)) {
      if (id === this.id) continue;
      this.send(
        message(type, {
          to: id,
          term,
          index: lastIndex,
          logTerm: lastTerm,
          context: transfer ? CAMPAIGN_TRANSFER : EMPTY_BYTES,
        }),
      );
    }
    this.checkElection();
  }

  /** Acts on the votes received so far. */
  private checkElection(): void {
    const result = this.trk.voteResult();
    if (result === VoteResult.Won) {
      if (this.role === Role.PreCandidate) this.campaign(MessageType.Vote, false);
      else {
        this.becomeLeader();
        this.broadcastPending = true;
      }
    } else if (result === VoteResult.Lost) {
      this.becomeFollower(this.term, NONE);
    }
  }

  // ----------------------------------------------------------------------------- roles

  private stepLeader(m: Message): RaftErrorCode | null {
    switch (m.type) {
      case MessageType.Beat:
        this.bcastHeartbeat(null);
        return null;
      case MessageType.CheckQuorum:
        this.checkQuorumActive();
        return null;
      case MessageType.Prop:
        return this.propose(m.entries);
      case MessageType.ReadIndex:
        return this.leaderReadIndex(m);
    }
    const pr = this.trk.progress.get(m.from);
    if (pr === undefined) return null; // From a member no longer in the configuration.
    switch (m.type) {
      case MessageType.AppResp:
        pr.recentActive = true;
        if (m.reject) this.handleAppendRejected(m);
        else this.handleAppendAccepted(m);
        return null;
      case MessageType.HeartbeatResp:
        this.handleHeartbeatResponse(m);
        return null;
      case MessageType.SnapStatus:
        if (pr.state !== ProgressState.Snapshot) return null;
        if (m.reject) pr.pendingSnapshot = 0;
        pr.becomeProbe();
        // Wait for the next heartbeat response before probing: the snapshot may still be landing.
        pr.probeSent = true;
        return null;
      case MessageType.Unreachable:
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        return null;
      case MessageType.TransferLeader:
        this.handleTransferLeader(m.from);
        return null;
    }
    return null;
  }

  private stepCandidate(m: Message): RaftErrorCode | null {
    const myResponse =
      this.role === Role.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp;
    switch (m.type) {
      case MessageType.Prop:
        return 'NO_LEADER';
      case MessageType.ReadIndex:
        return 'NO_LEADER';
      case MessageType.App:
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return null;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return null;
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return null;
      case myResponse:
        this.trk.recordVote(m.from, !m.reject);
        this.checkElection();
        return null;
    }
    return null;
  }

  private stepFollower(m: Message): RaftErrorCode | null {
    switch (m.type) {
      case MessageType.Prop:
        if (this.lead === NONE) return 'NO_LEADER';
        this.send({ ...m, to: this.lead, from: this.id });
        return null;
      case MessageType.App:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return null;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return null;
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return null;
      case MessageType.TransferLeader:
        if (this.lead === NONE) return 'NO_LEADER';
        this.send({ ...m, to: this.lead, term: 0 });
        return null;
      case MessageType.TimeoutNow:
        // The leader asked us to take over: campaign at once, skipping pre-vote and leases.
        this.hup(true);
        return null;
      case MessageType.ReadIndex:
        if (this.lead === NONE) return 'NO_LEADER';
        this.send({ ...m, to: this.lead, from: this.id });
        return null;
      case MessageType.ReadIndexResp:
        this.readStates.push({ index: m.index, requestCtx: m.context });
        return null;
    }
    return null;
  }

  // ----------------------------------------------------------------------------- follower side

  private handleAppendEntries(m: Message): void {
    if (m.index < this.log.committed) {
      // Everything up to our commit index matches the leader's log already.
      this.send(message(MessageType.AppResp, { to: m.from, index: this.log.committed }));
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== null) {
      this.send(message(MessageType.AppResp, { to: m.from, index: lastNew }));
      return;
    }
    // Mismatch: tell the leader where our log might match, skipping our whole conflicting term.
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.send(
      message(MessageType.AppResp, {
        to: m.from,
        index: m.index,
        reject: true,
        rejectHint: hint.index,
        logTerm: hint.term,
      }),
    );
  }

  private handleHeartbeat(m: Message): void {
    // The leader sends min(our match, its commit), so this never exceeds what we hold in common.
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    // Echo the leader's tick so it knows which heartbeat this acknowledges (lease reads).
    this.send(
      message(MessageType.HeartbeatResp, { to: m.from, context: m.context, index: m.index }),
    );
  }

  private handleSnapshot(m: Message): void {
    const snapshot = m.snapshot;
    if (snapshot === null) return;
    if (this.restore(snapshot)) {
      this.logger.info({ id: this.id, index: snapshot.metadata.index }, 'restoring snapshot');
      this.send(message(MessageType.AppResp, { to: m.from, index: this.log.lastIndex() }));
    } else {
      this.send(message(MessageType.AppResp, { to: m.from, index: this.log.committed }));
    }
  }

  /** Installs an incoming snapshot unless our log already covers it. */
  private restore(snapshot: Snapshot): boolean {
    const { index, term } = snapshot.metadata;
    if (index <= this.log.committed) return false;
    if (this.role !== Role.Follower) return false;
    if (this.log.matchTerm(index, term)) {
      // We hold the snapshot's last entry: just fast-forward the commit index.
      this.log.commitTo(index);
      return false;
    }
    this.log.restore(snapshot);
    this.switchToConfig(configFromConfState(snapshot.metadata.confState));
    return true;
  }

  // ----------------------------------------------------------------------------- leader side

  /** Appends proposed entries (the leader's side of a proposal). */
  propose(entries: Entry[]): RaftErrorCode | null {
    if (this.role !== Role.Leader) return this.lead === NONE ? 'NO_LEADER' : 'NOT_LEADER';
    assert(entries.length > 0, 'empty proposal');
    const self = this.trk.progress.get(this.id);
    if (self === undefined || self.isLearner) return 'NOT_LEADER';
    if (this.leadTransferee !== NONE) return 'TRANSFERRING';
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      if (entry.type !== EntryType.ConfChange) continue;
      const refusal = this.checkConfChange(entry);
      if (refusal !== null) return refusal;
      this.pendingConfIndex = this.log.lastIndex() + i + 1;
    }
    if (!this.appendEntries(entries, false)) return 'UNCOMMITTED_LIMIT';
    this.broadcastPending = true;
    return null;
  }

  private checkConfChange(entry: Entry): RaftErrorCode | null {
    if (this.pendingConfIndex > this.log.applied) return 'CONF_CHANGE_PENDING';
    let cc: ConfChange;
    try {
      cc = decodeConfChange(entry.data);
    } catch {
      return 'BAD_CONF_CHANGE';
    }
    const joint = isJoint(this.trk.config);
    if (joint && !isLeaveJoint(cc)) return 'BAD_CONF_CHANGE';
    if (!joint && isLeaveJoint(cc)) return 'BAD_CONF_CHANGE';
    try {
      changeConfig(this.trk.config, cc);
    } catch {
      return 'BAD_CONF_CHANGE';
    }
    return null;
  }

  /**
   * Stamps entries with our term and the next indexes and appends them to our log. Returns false
   * (appending nothing) if they would push the uncommitted bytes over the limit.
   */
  private appendEntries(entries: Entry[], bypassLimit: boolean): boolean {
    let bytes = 0;
    for (const entry of entries) bytes += entry.data.byteLength;
    if (
      !bypassLimit &&
      this.uncommittedBytes > 0 &&
      bytes > 0 &&
      this.uncommittedBytes + bytes > this.maxUncommittedBytes
    ) {
      return false;
    }
    this.uncommittedBytes += bytes;
    let index = this.log.lastIndex();
    const stamped: Entry[] = new Array(entries.length);
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      index++;
      stamped[i] = { term: this.term, index, type: entry.type, data: entry.data };
    }
    this.log.append(stamped);
    return true;
  }

  /** Called as committed entries are applied: they no longer count against the limit. */
  reduceUncommittedBytes(entries: readonly Entry[]): void {
    if (this.role !== Role.Leader) return;
    let bytes = 0;
    for (const entry of entries) bytes += entry.data.byteLength;
    this.uncommittedBytes = Math.max(0, this.uncommittedBytes - bytes);
  }

  /** Advances the commit index to what a quorum holds durably, counting only our term's entries
   *  (Raft §5.4.2, Figure 8). Returns whether it moved. */
  maybeCommit(): boolean {
    const index = this.trk.committed();
    if (index <= this.log.committed) return false;
    if (this.log.term(index) !== this.term) return false;
    this.log.commitTo(index);
    return true;
  }

  private handleAppendRejected(m: Message): void {
    const pr = this.trk.progress.get(m.from)!;
    let probe = m.rejectHint;
    if (m.logTerm > 0) {
      // Fast backup: skip every entry of ours whose term is above the follower's conflicting term.
      probe = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
    }
    if (pr.maybeDecrTo(m.index, probe)) {
      if (pr.state === ProgressState.Replicate) pr.becomeProbe();
      this.maybeSendAppend(m.from, false);
    }
  }

  private handleAppendAccepted(m: Message): void {
    const pr = this.trk.progress.get(m.from)!;
    const wasPaused = pr.isPaused();
    const updated = pr.maybeUpdate(m.index);
    if (!updated && !(pr.match === m.index && pr.state === ProgressState.Probe)) return;
    if (pr.state === ProgressState.Probe) pr.becomeReplicate();
    else if (pr.state === ProgressState.Snapshot && pr.match + 1 >= this.log.firstIndex()) {
      // The follower caught up past our compaction point (by snapshot or otherwise).
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === ProgressState.Replicate) pr.inflights.freeLE(m.index);
    if (this.maybeCommit()) this.onCommitAdvanced();
    else if (wasPaused) this.maybeSendAppend(m.from, false);
    // More entries may be waiting for this follower; the flush sends them in batches.
    if (pr.match < this.log.lastIndex()) this.broadcastPending = true;
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
      this.send(message(MessageType.TimeoutNow, { to: m.from }));
    }
  }

  /** Our own durable log reached `index` (called by RawNode when a Ready is persisted). */
  selfPersisted(index: number): void {
    if (this.role !== Role.Leader) return;
    const self = this.trk.progress.get(this.id);
    if (self === undefined) return;
    if (self.maybeUpdate(index) && this.maybeCommit()) this.onCommitAdvanced();
  }

  private onCommitAdvanced(): void {
    this.commitBroadcastPending = true;
    if (this.pendingReadMessages.length > 0 && this.committedEntryInCurrentTerm()) {
      const waiting = this.pendingReadMessages;
      this.pendingReadMessages = [];
      for (const m of waiting) this.leaderReadIndex(m);
    }
  }

  private committedEntryInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  private handleHeartbeatResponse(m: Message): void {
    const pr = this.trk.progress.get(m.from)!;
    pr.recentActive = true;
    pr.probeSent = false;
    if (m.index > pr.heartbeatAckTick) pr.heartbeatAckTick = m.index;
    // A full window may hold appends that were lost: free one slot so a probe can find out.
    if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
    // An empty append at `next` makes a follower that lost appends reject, which repairs it.
    if (pr.match < this.log.lastIndex()) this.maybeSendAppend(m.from, true);
    if (m.context.length === 0) return;
    const acks = this.readOnly.recvAck(m.from, m.context);
    if (acks === null || this.trk.voteResultOf(acks) !== VoteResult.Won) return;
    for (const status of this.readOnly.advance(m.context)) {
      this.answerRead(status.request, status.index);
    }
  }

  private handleTransferLeader(transferee: NodeId): void {
    const pr = this.trk.progress.get(transferee);
    if (pr === undefined || pr.isLearner) return;
    if (transferee === this.id || this.leadTransferee === transferee) return;
    this.leadTransferee = transferee;
    // The transfer must finish within an election timeout or it is abandoned (tickHeartbeat).
    this.electionElapsed = 0;
    if (pr.match === this.log.lastIndex()) {
      this.send(message(MessageType.TimeoutNow, { to: transferee }));
    } else {
      this.maybeSendAppend(transferee, true);
    }
  }

  private checkQuorumActive(): void {
    const self = this.trk.progress.get(this.id);
    if (self !== undefined) self.recentActive = true;
    if (!this.trk.quorumActive()) {
      this.logger.warn({ id: this.id, term: this.term }, 'lost quorum, stepping down');
      this.becomeFollower(this.term, NONE);
      return;
    }
    for (const [id, pr] of this.trk.progress) if (id !== this.id) pr.recentActive = false;
  }

  // ----------------------------------------------------------------------------- reads

  private leaderReadIndex(m: Message): RaftErrorCode | null {
    if (this.trk.isSingleton()) {
      this.answerRead(m, this.log.committed);
      return null;
    }
    if (!this.committedEntryInCurrentTerm()) {
      // Our commit index may be behind the previous leader's; wait for our term's first commit.
      if (this.pendingReadMessages.length >= PENDING_READ_MESSAGES_MAX) return 'READ_QUEUE_FULL';
      this.pendingReadMessages.push(m);
      return null;
    }
    if (this.readOnlyMode === 'lease' && this.leaseValid()) {
      this.answerRead(m, this.log.committed);
      return null;
    }
    // Safe mode, or the lease lapsed: confirm leadership with a heartbeat round.
    if (this.readOnly.size() >= PENDING_READS_MAX) return 'READ_QUEUE_FULL';
    if (this.readOnly.add(this.log.committed, m)) {
      this.readOnly.recvAck(this.id, m.context);
      this.readHeartbeatPending = true;
    }
    return null;
  }

  /**
   * Whether our lease holds: a quorum acknowledged a heartbeat sent at leader tick t, and each of
   * them refuses to vote for anyone else until an election timeout after receiving it, so no
   * other leader can exist before t + electionTimeout. One tick is kept as a margin for the
   * members' tick phases. This assumes ticks advance at the same rate everywhere (bounded clock
   * drift); a paused leader that resumes must not serve lease reads (see index.ts).
   */
  leaseValid(): boolean {
    if (this.leadTransferee !== NONE) return false; // The transferee may win at once.
    const ackTick = (id: NodeId) =>
      id === this.id ? this.leaderTick : (this.trk.progress.get(id)?.heartbeatAckTick ?? -1);
    const incoming = majorityCommitted(this.trk.config.voters, ackTick);
    const outgoing = majorityCommitted(this.trk.config.votersOutgoing, ackTick);
    const acked = Math.min(incoming, outgoing);
    return acked >= 0 && this.leaderTick < acked + this.electionTimeout - LEASE_MARGIN_TICKS;
  }

  private answerRead(request: Message, index: number): void {
    if (request.from === this.id || request.from === NONE) {
      this.readStates.push({ index, requestCtx: request.context });
    } else {
      this.send(
        message(MessageType.ReadIndexResp, { to: request.from, index, context: request.context }),
      );
    }
  }

  // ----------------------------------------------------------------------------- replication

  /**
   * Sends what accumulated since the last flush: appends for new entries or a new commit index,
   * and one heartbeat for all reads queued. Called once per Ready, so many proposals share one
   * append message and many reads share one heartbeat round.
   */
  flush(): void {
    if (this.role !== Role.Leader) return;
    if (this.broadcastPending || this.commitBroadcastPending) {
      const sendIfEmpty = this.commitBroadcastPending;
      this.broadcastPending = false;
      this.commitBroadcastPending = false;
      for (const id of this.trk.progress.keys()) {
        if (id === this.id) continue;
        let sent = this.maybeSendAppend(id, sendIfEmpty);
        while (sent && this.trk.progress.get(id)!.state === ProgressState.Replicate) {
          sent = this.maybeSendAppend(id, false);
        }
      }
    }
    if (this.readHeartbeatPending) {
      this.readHeartbeatPending = false;
      this.bcastHeartbeat(this.readOnly.lastPendingContext());
    }
  }

  needsFlush(): boolean {
    return (
      this.role === Role.Leader &&
      (this.broadcastPending || this.commitBroadcastPending || this.readHeartbeatPending)
    );
  }

  /**
   * Sends one append (or a snapshot) to `to` if its progress allows. With `sendIfEmpty` an append
   * without entries is sent too (to carry the commit index). Returns whether a message was sent.
   */
  maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.trk.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const lastIndex = this.log.lastIndex();
    if (prevIndex < this.log.firstIndex() - 1) return this.sendSnapshot(to);
    const prevTerm = this.log.term(prevIndex);
    let entries: Entry[];
    try {
      entries =
        pr.state === ProgressState.Replicate || pr.next <= lastIndex
          ? this.log.slice(pr.next, lastIndex + 1, this.maxMsgBytes)
          : [];
    } catch (error) {
      if (error instanceof StorageError && error.code === 'COMPACTED') return this.sendSnapshot(to);
      throw error;
    }
    if (entries.length === 0 && !sendIfEmpty) return false;
    let bytes = 0;
    for (const entry of entries) bytes += entrySizeBytes(entry);
    this.send(
      message(MessageType.App, {
        to,
        index: prevIndex,
        logTerm: prevTerm,
        entries,
        commit: this.log.committed,
      }),
    );
    if (entries.length > 0) pr.sentEntries(entries[entries.length - 1]!.index, bytes);
    else if (pr.state === ProgressState.Probe) pr.probeSent = true;
    return true;
  }

  private sendSnapshot(to: NodeId): boolean {
    const pr = this.trk.progress.get(to)!;
    if (!pr.recentActive) return false; // Do not stream a snapshot to a member that seems down.
    const snapshot = this.log.snapshot();
    assert(snapshot.metadata.index > 0, 'follower needs a snapshot but none exists');
    this.send(message(MessageType.Snap, { to, snapshot }));
    pr.becomeSnapshot(snapshot.metadata.index);
    this.logger.info({ id: this.id, to, index: snapshot.metadata.index }, 'sending snapshot');
    return true;
  }

  private bcastHeartbeat(context: Uint8Array | null): void {
    const ctx = context ?? this.readOnly.lastPendingContext() ?? EMPTY_BYTES;
    for (const [id, pr] of this.trk.progress) {
      if (id === this.id) continue;
      // Never tell a follower a commit index beyond what it holds: it might not match ours.
      const commit = Math.min(pr.match, this.log.committed);
      this.send(
        message(MessageType.Heartbeat, { to: id, commit, context: ctx, index: this.leaderTick }),
      );
    }
  }

  // ----------------------------------------------------------------------------- membership

  /** Applies a committed conf change; returns the resulting membership. */
  applyConfChange(cc: ConfChange): ConfState {
    const config = changeConfig(this.trk.config, cc);
    this.switchToConfig(config);
    return configToConfState(config);
  }

  switchToConfig(config: TrackerConfig): void {
    this.trk.config = config;
    const ids = new Set([...config.voters, ...config.votersOutgoing, ...config.learners]);
    for (const id of [...this.trk.progress.keys()]) {
      if (!ids.has(id)) this.trk.progress.delete(id);
    }
    const last = this.log.lastIndex();
    for (const id of ids) {
      let pr = this.trk.progress.get(id);
      if (pr === undefined) {
        pr = this.trk.newProgress(last + 1, false);
        // A new member counts as active so check-quorum does not fire before it is contacted.
        pr.recentActive = true;
        if (id === this.id) pr.match = this.durableLastIndex();
        this.trk.progress.set(id, pr);
      }
      pr.isLearner = config.learners.has(id);
    }
    const self = this.trk.progress.get(this.id);
    this.isLearner = self?.isLearner ?? false;
    if (this.role !== Role.Leader) {
      this.checkInvariants();
      return;
    }
    if (self === undefined || self.isLearner) {
      // We were removed or demoted. Stepping down at once could strand the new configuration: its
      // members may not know yet that the change committed and may still count votes with the
      // old one. So keep leading (without counting ourselves) until they learn the commit index,
      // and hand leadership to the most up-to-date voter (retried until a successor takes over).
      this.stepDownPending = true;
    }
    if (this.leadTransferee !== NONE && !this.trk.isVoter(this.leadTransferee)) {
      this.leadTransferee = NONE;
    }
    if (this.maybeCommit()) this.onCommitAdvanced();
    this.broadcastPending = true;
    if (this.stepDownPending) this.transferToSuccessor();
    this.checkInvariants();
  }

  /**
   * A leader outside the voters hands over to the voter with the longest durable log. If that
   * attempt timed out (the voter may be down), the next attempt picks someone else.
   */
  private transferToSuccessor(): void {
    if (this.leadTransferee !== NONE) return;
    const candidates = [...this.trk.config.voters]
      .filter((id) => id !== this.id)
      .sort((a, b) => {
        const byMatch =
          (this.trk.progress.get(b)?.match ?? 0) - (this.trk.progress.get(a)?.match ?? 0);
        return byMatch !== 0 ? byMatch : a - b;
      });
    const target = candidates.find((id) => id !== this.lastHandoverTarget) ?? candidates[0];
    if (target === undefined) return;
    this.lastHandoverTarget = target;
    this.handleTransferLeader(target);
  }

  /**
   * Checks the invariants that tie the tracker, the log and the role together. Runs after every
   * configuration change and leadership change; a failure stops the member (InvariantViolation).
   */
  checkInvariants(): void {
    const last = this.log.lastIndex();
    assert(this.log.applied <= this.log.committed, 'applied beyond commit');
    assert(this.log.committed <= last, () => `commit ${this.log.committed} beyond last ${last}`);
    const config = this.trk.config;
    for (const id of [...config.voters, ...config.votersOutgoing, ...config.learners]) {
      assert(this.trk.progress.has(id), () => `member ${id} in the config has no progress`);
    }
    for (const id of config.learners) {
      assert(!config.voters.has(id), () => `member ${id} is both learner and voter`);
    }
    if (this.role !== Role.Leader) return;
    assert(this.lead === this.id, 'a leader leads itself');
    for (const [id, pr] of this.trk.progress) {
      assert(pr.match < pr.next, () => `progress of ${id}: match ${pr.match} >= next ${pr.next}`);
      assert(pr.match <= last, () => `progress of ${id}: match ${pr.match} beyond our log`);
    }
  }

  /** Candidate: the hard state with our own vote became durable; now count it. */
  selfVotePersisted(hs: HardState): void {
    if (!this.selfVotePending || this.role !== Role.Candidate) return;
    if (hs.term !== this.term || hs.vote !== this.id) return;
    this.selfVotePending = false;
    this.trk.recordVote(this.id, true);
    this.checkElection();
  }

  /** Leader: once a joint config with auto-leave is applied, propose leaving it. */
  maybeAutoLeave(): void {
    if (this.role !== Role.Leader) return;
    const config = this.trk.config;
    if (!isJoint(config) || !config.autoLeave) return;
    if (this.pendingConfIndex > this.log.applied) return;
    const leave = encodeConfChange({ transition: 0, changes: [], context: EMPTY_BYTES });
    this.pendingConfIndex = this.log.lastIndex() + 1;
    if (
      this.appendEntries([{ term: 0, index: 0, type: EntryType.ConfChange, data: leave }], true)
    ) {
      this.broadcastPending = true;
    }
  }
}

function validateConfig(config: RaftConfig): void {
  const bad = (why: string) => new RaftError('BAD_CONFIG', why);
  if (!Number.isSafeInteger(config.id) || config.id <= 0)
    throw bad('id must be a positive integer');
  if (config.heartbeatTick <= 0) throw bad('heartbeatTick must be positive');
  if (config.electionTick <= config.heartbeatTick) {
    throw bad('electionTick must be greater than heartbeatTick');
  }
  if (config.maxInflightMsgs <= 0) throw bad('maxInflightMsgs must be positive');
  if (config.maxSizePerMsgBytes <= 0) throw bad('maxSizePerMsgBytes must be positive');
  if (config.maxUncommittedEntriesBytes <= 0) throw bad('maxUncommittedEntriesBytes must be > 0');
  if (config.readOnly === 'lease' && !config.checkQuorum) {
    throw bad('readOnly "lease" requires checkQuorum');
  }
}

export { isLocalMessage };
