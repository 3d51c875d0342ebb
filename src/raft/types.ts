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
