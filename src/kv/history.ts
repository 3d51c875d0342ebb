/**
 * History replay for watches: the events of every revision from a start revision, read from the
 * revision-ordered `revs` database, with etcd's rules (a start below the compacted revision is
 * ErrCompacted; a DELETE event's kv carries only the key and the deletion revision; prevKv is the
 * key's value at the previous revision when that revision is not compacted).
 */
import { decodeKeyValue, decodeRevisionKey, revisionLowerBound } from './codec.js';
import { keptAtCompaction } from './compaction.js';
import { errCompacted } from './errors.js';
import { getAt, type ReadContext } from './reader.js';
import { assertSafeInteger, type Event, EventType, type KeyValue } from './types.js';

/** Default bound on the events one readHistory call returns (a revision is never split). */
export const HISTORY_EVENTS_MAX_DEFAULT = 1000;

/** The events of one revision, in sub-revision order. */
export interface RevisionEvents {
  revision: number;
  events: Event[];
}

export interface HistoryOptions {
  /** Stop after the revision that reaches this many events. */
  eventsMax?: number;
  /** Attach each event's previous key-value (costs one lookup per event). */
  prevKv?: boolean;
}

export interface HistoryResult {
  revisions: RevisionEvents[];
  /** Where the next call should start; currentRevision + 1 when the history is exhausted. */
  nextRevision: number;
}

const EMPTY = new Uint8Array(0);

export function readHistory(
  context: ReadContext,
  fromRevision: number,
  options: HistoryOptions,
): HistoryResult {
  assertSafeInteger(fromRevision, 'history start revision');
  if (fromRevision < context.compactRevision) throw errCompacted();
  const eventsMax = Math.max(1, options.eventsMax ?? HISTORY_EVENTS_MAX_DEFAULT);
  const revisions: RevisionEvents[] = [];
  let eventCount = 0;
  let current: RevisionEvents | undefined;
  const start = revisionLowerBound(Math.max(fromRevision, 0));
  for (const entry of context.dbs.revs.getRange({
    start,
    transaction: context.transaction,
  } as never)) {
    const pointer = decodeRevisionKey(entry.key);
    const stored = decodeKeyValue(entry.value);
    // An entry at the compacted revision that compaction removes may not be deleted yet.
    if (
      pointer.main <= context.compactRevision &&
      !keptAtCompaction(context, Buffer.from(stored.key), pointer, context.compactRevision)
    ) {
      continue;
    }
    if (current === undefined || current.revision !== pointer.main) {
      if (eventCount >= eventsMax) return { revisions, nextRevision: pointer.main };
      current = { revision: pointer.main, events: [] };
      revisions.push(current);
    }
    const kv: KeyValue = pointer.tombstone
      ? {
          key: stored.key,
          createRevision: 0,
          modRevision: pointer.main,
          version: 0,
          value: EMPTY,
          lease: 0n,
        }
      : stored;
    const event: Event = { type: pointer.tombstone ? EventType.DELETE : EventType.PUT, kv };
    if (options.prevKv && pointer.main - 1 >= context.compactRevision) {
      const previous = getAt(context, Buffer.from(stored.key), pointer.main - 1);
      if (previous !== undefined) event.prevKv = previous;
    }
    current.events.push(event);
    eventCount += 1;
  }
  return { revisions, nextRevision: context.currentRevision + 1 };
}
