/**
 * The errors the storage layer raises, each with a code a caller can branch on.
 *
 * Corruption reuses the raft contract's `StorageError` code `CORRUPT` (so the raft core and the
 * server treat it like any other storage failure) and adds where it was found. Everything else the
 * WAL and the snapshot store can refuse or fail with is a `WalError`.
 */
import { StorageError } from '../raft/types.js';

export type WalErrorCode =
  /** A write or fdatasync failed; the log can no longer promise durability and refuses all writes. */
  | 'IO'
  /** The storage was closed. */
  | 'CLOSED'
  /** Too many bytes are queued for the disk; the write was refused without any effect. */
  | 'OVERLOADED'
  /** One write or snapshot is larger than the named maximum. */
  | 'TOO_LARGE'
  /** The arguments break the contract (a gap, non-contiguous entries, a compacted index). */
  | 'INVALID_ARGUMENT'
  /** A snapshot being received failed its checksum or framing; nothing was installed. */
  | 'BAD_SNAPSHOT'
  /** Another process (or another open in this one) holds the storage directory. */
  | 'LOCKED';

export class WalError extends Error {
  constructor(
    readonly code: WalErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'WalError';
  }
}

/**
 * Damage found in a file that was completely written and synced: a bad record in the middle of the
 * log, a snapshot whose checksum does not match, a missing range of entries. The member must stop;
 * docs/operations-wal.md says how to recover.
 */
export class CorruptionError extends StorageError {
  constructor(
    readonly file: string,
    readonly offsetBytes: number,
    detail: string,
  ) {
    super('CORRUPT', `${file} at byte ${offsetBytes}: ${detail}`);
    this.name = 'CorruptionError';
  }
}
