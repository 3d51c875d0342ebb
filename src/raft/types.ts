/**
 * The data types shared by the raft core and everything that stores or carries its output.
 *
 * These types are the contract between the pure consensus core (this folder), the storage layer
 * (`src/storage`, which persists entries, hard state and snapshots) and the simulator. Terms,
 * indexes and member ids are plain numbers: they stay far below 2^53 in any real cluster, and the
 * core asserts that they are safe integers where they are produced.
 */

/** A member id. 0 means "none" (no leader known, no vote cast). */
export type NodeId = number;
export const NONE: NodeId = 0;

export const EntryType = {
  /** A state machine command (or an empty entry that a new leader appends to commit its term). */
  Normal: 0,
  /** A membership change; `data` holds an encoded `ConfChange`. */
  ConfChange: 1,
} as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  /** The command bytes. Empty for the no-op entry a new leader appends. */
  readonly data: Uint8Array;
}

/** What must be durable before a member answers any message that depends on it (Raft Figure 2). */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
}

export const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, vote: NONE, commit: 0 });

/** Which members vote and which only learn. During a joint change both voter sets count. */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  /** Voters of the outgoing configuration while a joint change is in progress; empty otherwise. */
  readonly votersOutgoing: readonly NodeId[];
  /** Voters in the outgoing config that become learners when the joint change is left. */
  readonly learnersNext: readonly NodeId[];
  /** Leave the joint configuration automatically once it is committed. */
  readonly autoLeave: boolean;
}

export const EMPTY_CONF_STATE: ConfState = Object.freeze({
  voters: [],
  learners: [],
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
});

export interface SnapshotMetadata {
  /** The index of the last entry the snapshot covers. */
  readonly index: number;
  /** The term of that entry. */
  readonly term: number;
  /** The membership as of `index`. */
  readonly confState: ConfState;
}

export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  /** The state machine's serialized state. Large snapshots are streamed; see storage/snapshot. */
  readonly data: Uint8Array;
}

export const EMPTY_SNAPSHOT_METADATA: SnapshotMetadata = Object.freeze({
  index: 0,
  term: 0,
  confState: EMPTY_CONF_STATE,
});

/** An error a storage implementation raises for a compacted or not-yet-available index. */
export class StorageError extends Error {
  constructor(
    readonly code: 'COMPACTED' | 'UNAVAILABLE' | 'SNAPSHOT_OUT_OF_DATE' | 'CORRUPT',
    message: string,
  ) {
    super(message);
    this.name = 'StorageError';
  }
}

/** The total size in bytes an entry counts for when batches are limited by bytes. */
export function entrySizeBytes(entry: Entry): number {
  // A fixed overhead for term, index and type, plus the payload.
  return 24 + entry.data.byteLength;
}

// ---------------------------------------------------------------------------------------------
// Messages, membership changes and reads: added for the raft core (src/raft/raft.ts). Every field
// is a number, a boolean, a Uint8Array or an array/object of those, so messages can be encoded
// with msgpack as they are. Every message carries every field (a fixed shape keeps V8 fast).
// ---------------------------------------------------------------------------------------------

export const MessageType = {
  /** Local: start an election (the election timer fired, or `campaign()` was called). */
  Hup: 0,
  /** Local: the leader's heartbeat timer fired. */
  Beat: 1,
  /** A proposal: local, or forwarded by a follower to its leader. */
  Prop: 2,
  /** AppendEntries request. */
  App: 3,
  /** AppendEntries response; `reject` with `rejectHint`/`logTerm` when the log did not match. */
  AppResp: 4,
  Vote: 5,
  VoteResp: 6,
  /** InstallSnapshot request: `snapshot` carries the metadata (and the data, see index.ts). */
  Snap: 7,
  Heartbeat: 8,
  HeartbeatResp: 9,
  /** Local: the transport could not reach `from`. */
  Unreachable: 10,
  /** Local: the transport finished (or failed) sending a snapshot to `from`. */
  SnapStatus: 11,
  /** Local: the leader checks that it still hears from a quorum. */
  CheckQuorum: 12,
  /** Ask the leader to hand leadership to `from` (the transferee). */
  TransferLeader: 13,
  /** The leader tells the transferee to start an election right now (thesis §3.10). */
  TimeoutNow: 14,
  /** A linearizable read request: local, or forwarded by a follower to its leader. */
  ReadIndex: 15,
  ReadIndexResp: 16,
  PreVote: 17,
  PreVoteResp: 18,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export interface Message {
  type: MessageType;
  to: NodeId;
  from: NodeId;
  /** The sender's term; 0 for local messages. For PreVote it is the term the sender would use. */
  term: number;
  /** App: term of the entry at `index`. AppResp reject: term of the follower's entry at the hint. */
  logTerm: number;
  /**
   * App: index of the entry before `entries`. AppResp: last matched (or rejected) index.
   * Heartbeat and HeartbeatResp: the leader's tick count when the heartbeat was sent.
   */
  index: number;
  entries: Entry[];
  /** The sender's commit index (App, Heartbeat). */
  commit: number;
  /** Snap: the snapshot to install. SnapStatus uses no snapshot. */
  snapshot: Snapshot | null;
  reject: boolean;
  /** AppResp reject: the follower's guess of the highest index where the logs may match. */
  rejectHint: number;
  /** ReadIndex: the request context echoed back; Vote: CAMPAIGN_TRANSFER marks a transfer. */
  context: Uint8Array;
}

/** The context of a vote request sent by a transferee: it may disrupt a leader's lease. */
export const CAMPAIGN_TRANSFER: Uint8Array = new Uint8Array([0x74]);

export const ConfChangeType = {
  AddNode: 0,
  RemoveNode: 1,
  AddLearner: 2,
} as const;
export type ConfChangeType = (typeof ConfChangeType)[keyof typeof ConfChangeType];

export const ConfChangeTransition = {
  /** A single voter change is applied directly; anything larger uses a joint configuration that
   *  is left automatically once committed. */
  Auto: 0,
  /** Always use a joint configuration, left automatically. */
  JointImplicit: 1,
  /** Always use a joint configuration; the application proposes an empty change to leave it. */
  JointExplicit: 2,
} as const;
export type ConfChangeTransition = (typeof ConfChangeTransition)[keyof typeof ConfChangeTransition];

export interface ConfChangeSingle {
  readonly type: ConfChangeType;
  readonly nodeId: NodeId;
}

/**
 * A membership change. An empty `changes` list means "leave the joint configuration". `context`
 * is opaque to raft (the member layer puts the new member's address there).
 */
export interface ConfChange {
  readonly transition: ConfChangeTransition;
  readonly changes: readonly ConfChangeSingle[];
  readonly context: Uint8Array;
}

/** A linearizable read is safe once the state machine has applied `index`. */
export interface ReadState {
  readonly index: number;
  readonly requestCtx: Uint8Array;
}

export const Role = {
  Follower: 0,
  Candidate: 1,
  Leader: 2,
  PreCandidate: 3,
} as const;
export type Role = (typeof Role)[keyof typeof Role];

export const ROLE_NAMES: Record<Role, string> = {
  0: 'follower',
  1: 'candidate',
  2: 'leader',
  3: 'pre-candidate',
};

/** Volatile state worth reporting: it changes when a leader is elected or the role changes. */
export interface SoftState {
  readonly lead: NodeId;
  readonly role: Role;
}

/** Error codes a caller of the raft core can receive when a request is refused. */
export type RaftErrorCode =
  | 'NO_LEADER'
  | 'UNCOMMITTED_LIMIT'
  | 'TRANSFERRING'
  | 'CONF_CHANGE_PENDING'
  | 'NOT_LEADER'
  | 'STEP_LOCAL_MESSAGE'
  | 'READY_OUTSTANDING'
  | 'READ_QUEUE_FULL'
  | 'NOT_BOOTSTRAPPABLE'
  | 'BAD_CONFIG'
  | 'BAD_CONF_CHANGE';

/** A refused request. The request had no effect; the caller may retry (often elsewhere). */
export class RaftError extends Error {
  constructor(
    readonly code: RaftErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'RaftError';
  }
}
