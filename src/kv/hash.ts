/**
 * etcd's HashKV (mvcc store.HashByRev), bit for bit: CRC-32C (Castagnoli) over the bucket name
 * "key" followed by every history entry's revision key and value up to the requested revision.
 * Entries at or below the compacted revision count only if they are the key's live value at the
 * requested revision (etcd's `keep` set), which makes the hash independent of how far a physical
 * compaction has progressed, and equal on every member with the same history.
 */
import { crc32c } from '@node-rs/crc32';
import { decodeKeyValue, decodeRevisionKey, revisionLowerBound } from './codec.js';
import { errCompacted, errFutureRev } from './errors.js';
import { latestAt, type ReadContext } from './reader.js';
import { assertSafeInteger, type HashKVResponse } from './types.js';

const BUCKET_NAME = Buffer.from('key');

export function computeHashKv(context: ReadContext, requestedRevision: number): HashKVResponse {
  assertSafeInteger(requestedRevision, 'hash revision');
  const { compactRevision, currentRevision } = context;
  if (requestedRevision > 0 && requestedRevision <= compactRevision) throw errCompacted();
  if (requestedRevision > 0 && requestedRevision > currentRevision) throw errFutureRev();
  const revision = requestedRevision === 0 ? currentRevision : requestedRevision;
  let keepIsEmpty: boolean | undefined;
  let hash = crc32c(BUCKET_NAME);
  const end = revisionLowerBound(revision + 1);
  for (const entry of context.dbs.revs.getRange({
    end,
    transaction: context.transaction,
  } as never)) {
    const pointer = decodeRevisionKey(entry.key);
    if (pointer.main <= compactRevision) {
      const key = Buffer.from(decodeKeyValue(entry.value).key);
      const latest = latestAt(context, key, revision);
      const kept =
        !pointer.tombstone &&
        latest !== undefined &&
        latest[2] === 0 &&
        -latest[0] === pointer.main &&
        -latest[1] === pointer.sub;
      if (!kept) {
        keepIsEmpty ??= !anyKeyAliveAt(context, revision);
        if (!keepIsEmpty) continue;
      }
    }
    hash = crc32c(entry.key, hash);
    hash = crc32c(entry.value, hash);
  }
  return {
    header: { clusterId: 0n, memberId: 0n, revision: currentRevision, raftTerm: 0 },
    hash,
    compactRevision,
  };
}

function anyKeyAliveAt(context: ReadContext, revision: number): boolean {
  for (const key of context.dbs.index.getKeys({ transaction: context.transaction } as never)) {
    const latest = latestAt(context, key, revision);
    if (latest !== undefined && latest[2] === 0) return true;
  }
  return false;
}
