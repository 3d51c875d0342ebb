/**
 * Checks that a decoded value from the network is a well-formed SWIM message before the core sees
 * it. Everything from outside is untrusted: a value that is not exactly one of the message shapes,
 * with bounded names and metadata, is rejected (the transport counts and drops it).
 */
import {
  type BroadcastMessage,
  META_BYTES_MAX,
  MemberState,
  type Message,
  NAME_LENGTH_MAX,
  type PushPullEntry,
} from './types.js';

/** Most entries one push-pull message may carry; larger ones are rejected. */
export const PUSH_PULL_ENTRIES_MAX = 8192;

type Fields = Record<string, unknown>;

function isName(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= NAME_LENGTH_MAX;
}
function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
function isMeta(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array && value.byteLength <= META_BYTES_MAX;
}
function isState(value: unknown): value is MemberState {
  return (
    value === MemberState.alive ||
    value === MemberState.suspect ||
    value === MemberState.dead ||
    value === MemberState.left
  );
}

function parseEntry(value: unknown): PushPullEntry | null {
  if (typeof value !== 'object' || value === null) return null;
  const f = value as Fields;
  if (!isName(f.name) || !isName(f.address) || !isCount(f.incarnation)) return null;
  if (!isState(f.state) || !isMeta(f.meta)) return null;
  return {
    name: f.name,
    address: f.address,
    incarnation: f.incarnation,
    state: f.state,
    meta: f.meta,
  };
}

function parseBroadcast(f: Fields): BroadcastMessage | null {
  if (!isName(f.name) || !isCount(f.incarnation)) return null;
  if (f.type === 'alive') {
    if (!isName(f.address) || !isMeta(f.meta)) return null;
    return {
      type: 'alive',
      name: f.name,
      address: f.address,
      incarnation: f.incarnation,
      meta: f.meta,
    };
  }
  if (!isName(f.from)) return null;
  const type = f.type === 'suspect' ? 'suspect' : 'dead';
  return { type, name: f.name, incarnation: f.incarnation, from: f.from };
}

function parsePushPull(f: Fields): Message | null {
  if (typeof f.join !== 'boolean' || typeof f.reply !== 'boolean') return null;
  if (!Array.isArray(f.states) || f.states.length > PUSH_PULL_ENTRIES_MAX) return null;
  const states: PushPullEntry[] = [];
  for (const raw of f.states) {
    const entry = parseEntry(raw);
    if (entry === null) return null;
    states.push(entry);
  }
  return { type: 'pushPull', join: f.join, reply: f.reply, states };
}

/** Returns the message `value` is, or null when it is malformed in any way. */
export function parseMessage(value: unknown): Message | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const f = value as Fields;
  switch (f.type) {
    case 'ping':
      if (!isCount(f.seq) || !isName(f.target) || !isName(f.source)) return null;
      if (!isName(f.sourceAddress)) return null;
      return {
        type: 'ping',
        seq: f.seq,
        target: f.target,
        source: f.source,
        sourceAddress: f.sourceAddress,
      };
    case 'pingReq':
      if (!isCount(f.seq) || !isName(f.target) || !isName(f.targetAddress)) return null;
      if (!isName(f.source) || !isName(f.sourceAddress) || typeof f.nack !== 'boolean') return null;
      return {
        type: 'pingReq',
        seq: f.seq,
        target: f.target,
        targetAddress: f.targetAddress,
        source: f.source,
        sourceAddress: f.sourceAddress,
        nack: f.nack,
      };
    case 'ack':
    case 'nack':
      return isCount(f.seq) ? { type: f.type, seq: f.seq } : null;
    case 'alive':
    case 'suspect':
    case 'dead':
      return parseBroadcast(f);
    case 'pushPull':
      return parsePushPull(f);
    default:
      return null;
  }
}
