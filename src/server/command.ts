/**
 * The bytes a member puts into raft entries. A normal entry carries one `Command` (msgpack): the id
 * of the request that proposed it, so the proposing member can hand the apply result back to its
 * caller, and exactly one operation — a key-value request for the MVCC store or a change to the
 * replicated member registry. A conf change entry's `context` carries a `ConfChangeContext` naming
 * the member being added, promoted or removed. An empty entry is the no-op a new leader appends.
 *
 * Every member applies the same entries, so results are identical everywhere; only the proposer,
 * recognised by `RequestId.member` and `RequestId.incarnation` (random per process start, so
 * entries proposed before a restart never match a new waiter), resolves a waiting request.
 */
import { Packr, Unpackr } from 'msgpackr';
import type { KvRequest } from '../kv/types.js';

const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false, int64AsType: 'bigint' });

export interface RequestId {
  member: number;
  incarnation: number;
  sequence: number;
}

/** Publishes a member's name and client URLs (etcd publishes its attributes the same way). */
export interface PublishCommand {
  publish: { id: number; name: string; clientUrls: string[] };
}

/** MemberUpdate: new peer URLs for a member (not a raft membership change). */
export interface UpdatePeerUrlsCommand {
  updatePeerUrls: { id: number; peerUrls: string[] };
}

/**
 * etcd's AlarmRequest ACTIVATE / DEACTIVATE: raises or clears an alarm (1 = NOSPACE) held for a
 * member. Alarms are replicated state, so every member refuses the same writes and lists the same
 * alarms.
 */
export interface AlarmCommand {
  alarm: { action: 'activate' | 'deactivate'; memberId: number; alarm: number };
}

export type RegistryCommand = PublishCommand | UpdatePeerUrlsCommand | AlarmCommand;

export interface Command {
  id: RequestId;
  kv?: KvRequest;
  registry?: RegistryCommand;
}

/** What a conf change entry's context holds. */
export interface ConfChangeContext {
  id: RequestId;
  member: { id: number; name: string; peerUrls: string[]; isLearner: boolean };
  /** 'promote' for a learner becoming a voter (raft AddNode on an existing learner). */
  action: 'add' | 'remove' | 'promote';
}

export function encodeCommand(command: Command): Uint8Array {
  return packr.pack(command);
}

export function encodeConfChangeContext(context: ConfChangeContext): Uint8Array {
  return packr.pack(context);
}

function isRequestId(value: unknown): value is RequestId {
  const v = value as RequestId;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.member === 'number' &&
    typeof v.incarnation === 'number' &&
    typeof v.sequence === 'number'
  );
}

/**
 * Decodes a committed entry's command. Entries are written only by members of this cluster, so a
 * malformed one means a bug or corruption: the caller treats the error as fatal.
 */
export function decodeCommand(data: Uint8Array): Command {
  const value = unpackr.unpack(data) as Command;
  if (typeof value !== 'object' || value === null || !isRequestId(value.id)) {
    throw new Error('raft entry does not hold a shoal command');
  }
  return value;
}

export function decodeConfChangeContext(data: Uint8Array): ConfChangeContext | null {
  if (data.length === 0) return null;
  const value = unpackr.unpack(data) as ConfChangeContext;
  if (typeof value !== 'object' || value === null || !isRequestId(value.id)) return null;
  return value;
}

export function requestKey(id: RequestId): string {
  return `${id.incarnation}:${id.sequence}`;
}
