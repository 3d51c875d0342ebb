/**
 * The errors ShoalClient throws. Every failure is a `ShoalError` with the gRPC status code name
 * the member (or the transport) answered with, etcd's message, a `reason` a program can switch on
 * without parsing text, and the endpoint that answered. The client decides what is safe to retry
 * from these facts (see `isUnsentFailure`, `isLeaderless`).
 */
import { isRpcError, type StatusCode } from '../rpc/index.js';
import { ETCD_MESSAGE, parseLeaderHint } from './protocol.js';

export type ShoalErrorReason =
  | 'compacted'
  | 'futureRevision'
  | 'noLeader'
  | 'notLeader'
  | 'leaderChanged'
  | 'unavailable'
  | 'timeout'
  | 'invalidArgument'
  | 'other';

export class ShoalError extends Error {
  override readonly name = 'ShoalError';
  readonly code: StatusCode;
  readonly reason: ShoalErrorReason;
  /** host:port of the member that answered (or could not be reached). */
  readonly endpoint: string | undefined;

  constructor(code: StatusCode, message: string, endpoint?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.endpoint = endpoint;
    this.reason = reasonOf(code, message);
  }

  /** Wraps whatever a call failed with. */
  static from(error: unknown, endpoint?: string): ShoalError {
    if (error instanceof ShoalError) return error;
    if (isRpcError(error))
      return new ShoalError(error.code, error.message, endpoint, { cause: error });
    const message = error instanceof Error ? error.message : String(error);
    return new ShoalError('UNKNOWN', message, endpoint, { cause: error });
  }
}

function reasonOf(code: StatusCode, message: string): ShoalErrorReason {
  if (message.startsWith(ETCD_MESSAGE.compacted)) return 'compacted';
  if (message.startsWith(ETCD_MESSAGE.futureRevision)) return 'futureRevision';
  if (message.startsWith(ETCD_MESSAGE.noLeader)) return 'noLeader';
  if (message.startsWith(ETCD_MESSAGE.notLeader)) return 'notLeader';
  if (message.startsWith(ETCD_MESSAGE.leaderChanged)) return 'leaderChanged';
  if (code === 'DEADLINE_EXCEEDED') return 'timeout';
  if (code === 'UNAVAILABLE') return 'unavailable';
  if (code === 'INVALID_ARGUMENT') return 'invalidArgument';
  return 'other';
}

/**
 * True when the transport proves the request never left this process: the dial failed, the peer
 * is in dial backoff, or the connection was already closing when the call started. Only these
 * (and leaderless answers) make a write safe to send again.
 */
export function isUnsentFailure(error: unknown): boolean {
  if (!isRpcError(error, 'UNAVAILABLE')) return false;
  const { message } = error;
  return (
    message.startsWith('cannot connect to ') ||
    message.startsWith('cannot reach ') ||
    (message.startsWith('connection to ') && message.endsWith(' is closing'))
  );
}

/**
 * True for the RPC client's own refusals of a request it could not put on the wire: it could not
 * be encoded, or it is bigger than a frame. Nothing was sent, so nothing was applied.
 */
export function isRefusedBeforeSending(error: unknown): boolean {
  return (
    (isRpcError(error, 'INVALID_ARGUMENT') &&
      error.message.startsWith('request could not be encoded')) ||
    (isRpcError(error, 'RESOURCE_EXHAUSTED') && error.message.includes('exceeds the frame limit'))
  );
}

/** True when the connection broke (the member may have died), whether or not it got the call. */
export function isConnectionFailure(error: unknown): boolean {
  if (!isRpcError(error, 'UNAVAILABLE')) return false;
  return isUnsentFailure(error) || error.message.startsWith('connection to ');
}

/**
 * True for answers saying the member proposed nothing because it has no leader to send to, so the
 * write was not applied: etcd's "no leader" and "not leader". ("leader changed" and timeouts are
 * not in this set: the write may have been applied.)
 */
export function isLeaderless(error: unknown): boolean {
  if (!isRpcError(error)) return false;
  return (
    error.message.startsWith(ETCD_MESSAGE.noLeader) ||
    error.message.startsWith(ETCD_MESSAGE.notLeader)
  );
}

/** The leader hint a member appended to a leaderless answer, if any. */
export function leaderHintOf(error: unknown): string | undefined {
  if (!isRpcError(error)) return undefined;
  return parseLeaderHint(error.message)?.address;
}
