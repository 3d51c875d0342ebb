/**
 * etcd's HashKV (mvcc store.HashByRev), bit for bit: CRC-32C (Castagnoli) over the bucket name
 * "key" followed by every history entry's revision key and value up to the requested revision.
 * Entries at or below the compacted revision count only if they are the key's live value at the
 * requested revision (etcd's `keep` set). Entries a finished compaction removes never count, so the
 * hash does not depend on how far physical compaction has progressed (compaction.ts) and is equal
 * on every member with the same history.
 */
import { crc32c } from '@node-rs/crc32';
import { decodeKeyValue, decodeRevisionKey, isLiveRevision, revisionLowerBound } from './codec.js';
import { keptAtCompaction } from './compaction.js';
import { errCompacted, errFutureRev } from './errors.js';
import { latestAt, type ReadContext } from './reader.js';
import { assertSafeInteger, type HashKVResponse } from './types.js';

const BUCKET_NAME = Buffer.from('key');

/** History entries hashed between two yields to the event loop. */
export const HASH_STEP_ENTRIES_MAX = 5_000;

/**
 * Computes HashKV over `context`, which must carry a read transaction: the hash walks the whole
 * history, so it yields to the event loop every HASH_STEP_ENTRIES_MAX entries (raft heartbeats
 * keep flowing) while the read transaction keeps its view fixed.
 */
export async function computeHashKv(
  context: ReadContext,
  requestedRevision: number,
): Promise<HashKVResponse> {
  assertSafeInteger(requestedRevision, 'hash revision');
  const { compactRevision, currentRevision } = context;
  if (requestedRevision > 0 && requestedRevision <= compactRevision) throw errCompacted();
  if (requestedRevision > 0 && requestedRevision > currentRevision) throw errFutureRev();
  const revision = requestedRevision === 0 ? currentRevision : requestedRevision;
  const state = { hash: crc32c(BUCKET_NAME), keepIsEmpty: undefined as boolean | undefined };
  const end = revisionLowerBound(revision + 1);
  let start: Buffer | undefined;
  for (;;) {
    const options = { end, limit: HASH_STEP_ENTRIES_MAX, transaction: context.transaction };
    let scanned = 0;
    for (const entry of context.dbs.revs.getRange(
      (start ? { ...options, start } : options) as never,
    )) {
      scanned += 1;
      start = Buffer.concat([entry.key, Buffer.from([0])]);
      if (counts(context, entry, revision, state)) {
        state.hash = crc32c(entry.value, crc32c(entry.key, state.hash));
      }
    }
    if (scanned < HASH_STEP_ENTRIES_MAX) break;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return {
    header: { clusterId: 0n, memberId: 0n, revision: currentRevision, raftTerm: 0 },
    hash: state.hash,
    compactRevision,
  };
}

/** Whether a history entry at or below `revision` counts in etcd's hash. */
function counts(
  context: ReadContext,
  entry: { key: Buffer; value: Buffer },
  revision: number,
  state: { keepIsEmpty: boolean | undefined },
): boolean {
  const pointer = decodeRevisionKey(entry.key);
  const { compactRevision } = context;
  if (pointer.main > compactRevision) return true;
  const key = Buffer.from(decodeKeyValue(entry.value).key);
  // What a finished compaction deleted does not count, deleted yet or not.
  if (!keptAtCompaction(context, key, pointer, compactRevision)) return false;
  if (isLiveRevision(latestAt(context, key, revision), pointer)) return true;
  // No order needed: asking the index directly does not build its ordered tree.
  state.keepIsEmpty ??= !context.keys.anyAliveAt(revision);
  return state.keepIsEmpty;
}
