/**
 * Physical compaction of the history, in bounded steps.
 *
 * A Compaction request only moves the compacted revision C (a cheap, deterministic state change
 * applied on every member); the history entries it makes unreachable are deleted afterwards in
 * steps of at most a given number of scanned entries, each inside some write transaction, with the
 * progress (target and cursor) stored in `meta` in that same transaction. This is etcd's design
 * too (its scheduled compaction deletes in batches), and it keeps one compaction from blocking
 * apply, and with it raft's heartbeats, for seconds.
 *
 * Until a step removes them, leftover entries at or below C are invisible: reads at or above C
 * take each key's newest revision, and history replay and HashKV only count entries that a
 * finished compaction keeps (`keptAtCompaction`). So responses never depend on how far physical
 * compaction has progressed, which differs between members.
 */
import {
  decodeKeyValue,
  decodeRevisionKey,
  isLiveRevision,
  type RevisionPointer,
  revisionLowerBound,
} from './codec.js';
import { decodeNumber, encodeNumber, type KvDatabases, MetaKey } from './layout.js';
import { latestAt, type ReadContext } from './reader.js';

/** A physical compaction still to finish: delete what compacting at `target` removes. */
export interface PendingCompaction {
  target: number;
  /** The revision key to resume from; undefined means from the start of the history. */
  cursor: Buffer | undefined;
}

/**
 * True when a finished compaction at `compactRevision` keeps this history entry. `latestCache`
 * memoizes each key's newest revision at or below it (an LMDB cursor seek per key otherwise).
 */
export function keptAtCompaction(
  context: ReadContext,
  key: Buffer,
  pointer: RevisionPointer,
  compactRevision: number,
  latestCache?: Map<string, RevisionPointer | undefined>,
): boolean {
  if (pointer.tombstone) return false;
  let latest: RevisionPointer | undefined;
  const id = latestCache ? key.toString('latin1') : '';
  if (latestCache?.has(id)) latest = latestCache.get(id);
  else {
    latest = latestAt(context, key, compactRevision);
    latestCache?.set(id, latest);
  }
  return isLiveRevision(latest, pointer);
}

export function loadPendingCompaction(dbs: KvDatabases): PendingCompaction | undefined {
  const target = dbs.meta.get(MetaKey.compactPendingTarget);
  if (target === undefined) return undefined;
  return { target: decodeNumber(target, 0), cursor: dbs.meta.get(MetaKey.compactCursor) };
}

export function savePendingCompaction(dbs: KvDatabases, pending: PendingCompaction | undefined) {
  if (pending === undefined) {
    dbs.meta.removeSync(MetaKey.compactPendingTarget);
    dbs.meta.removeSync(MetaKey.compactCursor);
    return;
  }
  dbs.meta.putSync(MetaKey.compactPendingTarget, encodeNumber(pending.target));
  if (pending.cursor === undefined) dbs.meta.removeSync(MetaKey.compactCursor);
  else dbs.meta.putSync(MetaKey.compactCursor, pending.cursor);
}

export interface CompactionStepResult {
  removed: number;
  /** The compaction left to do, or undefined when this step finished it. */
  pending: PendingCompaction | undefined;
}

/**
 * Scans at most `entriesMax` history entries from the cursor and deletes those the compaction
 * does not keep, and forgets them in the key index. Must run inside a write transaction.
 */
export function compactionStep(
  context: ReadContext,
  pending: PendingCompaction,
  entriesMax: number,
): CompactionStepResult {
  const { dbs } = context;
  const end = revisionLowerBound(pending.target + 1);
  const doomed: { revisionKey: Buffer; key: Buffer; pointer: RevisionPointer }[] = [];
  let scanned = 0;
  let cursor = pending.cursor;
  // Bounded by entriesMax: at most one cached pointer per scanned entry.
  const latestCache = new Map<string, RevisionPointer | undefined>();
  const options =
    cursor === undefined ? { end, limit: entriesMax } : { start: cursor, end, limit: entriesMax };
  for (const entry of dbs.revs.getRange(options)) {
    scanned += 1;
    // The smallest key after this one: resume strictly after it.
    cursor = Buffer.concat([entry.key, Buffer.from([0])]);
    const pointer = decodeRevisionKey(entry.key);
    const key = Buffer.from(decodeKeyValue(entry.value).key);
    if (!keptAtCompaction(context, key, pointer, pending.target, latestCache)) {
      doomed.push({ revisionKey: entry.key, key, pointer });
    }
  }
  for (const { revisionKey, key, pointer } of doomed) {
    dbs.revs.removeSync(revisionKey);
    context.keys.remove(key, pointer.main, pointer.sub);
  }
  const done = scanned < entriesMax;
  return { removed: doomed.length, pending: done ? undefined : { target: pending.target, cursor } };
}
