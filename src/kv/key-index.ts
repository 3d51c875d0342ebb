/**
 * The key index of the MVCC store, in memory (etcd's treeIndex): for every key with history, the
 * revisions at which it changed, oldest first.
 *
 * It answers "which revision of key K was current at revision R" (a read at a past revision, a
 * watch's prevKv, compaction's keep rule, HashKV) and lists keys in key order for ranges at a past
 * revision. The durable history stays in LMDB's `revs`; this index is derived from it: built by one
 * scan of `revs` when the store opens or restores a snapshot, then kept equal to it by the same
 * code that writes `revs` (a put, a delete, a compaction step), inside the same write transaction.
 * When such a transaction aborts, the store rebuilds the index from `revs` (see mvcc.ts).
 *
 * Why in memory: it was an LMDB dupsort table, and its insert was the most expensive of a put's
 * LMDB writes (about a third of applying a put). etcd keeps this index in memory for the same
 * reason. Memory: a few dozen bytes per key plus about 16 bytes per revision kept (compaction
 * removes what it removes from `revs`).
 *
 * Keys are held as latin1 strings: one character per byte, so JavaScript's string order (code
 * unit by code unit, which sorted-btree's default comparator uses) is the keys' bytewise order,
 * etcd's key order, and a string is a cheaper map key than a Buffer. Lookups go through a Map; the
 * ordered B+ tree that ranges need is built on the first range and kept up to date from then on,
 * so a store that never reads a range at a past revision never pays for it (building it for 100k
 * keys: about 0.2 s).
 */
import type { Database } from 'lmdb';
import BTreeModule from 'sorted-btree';
import { decodeKeyOfKeyValue, decodeRevisionKey, type RevisionPointer } from './codec.js';

// sorted-btree is CommonJS: its class is the module's `default` property.
const BTree = BTreeModule.default;
type OrderedKeys = InstanceType<typeof BTree<string, KeyHistory>>;

/**
 * One key's changes in revision order, interleaved: `[main, sub, main, sub, ...]` where a
 * tombstone's sub is stored as `-(sub + 1)`. One small array per key (most keys have a few).
 */
type KeyHistory = number[];

export class KeyIndex {
  private readonly byKey = new Map<string, KeyHistory>();
  /** Every key of `byKey` in key order; undefined until a range needs it. */
  private ordered: OrderedKeys | undefined;
  private revisionCount = 0;

  /** Keys with at least one revision (tombstoned ones included until compaction removes them). */
  get keyCount(): number {
    return this.byKey.size;
  }

  /** Revisions held over all keys. */
  get revisions(): number {
    return this.revisionCount;
  }

  /**
   * Records that `key` changed at (main, sub). A key's changes must arrive in revision order, as
   * the store makes them; anything else is a bug that would corrupt reads, so it throws.
   */
  add(key: Uint8Array, main: number, sub: number, tombstone: boolean): void {
    const id = keyId(key);
    const history = this.byKey.get(id);
    if (history === undefined) {
      const created: KeyHistory = [main, tombstone ? -(sub + 1) : sub];
      this.byKey.set(id, created);
      this.ordered?.set(id, created);
    } else {
      const lastMain = history[history.length - 2]!;
      const lastSub = subOf(history[history.length - 1]!);
      if (lastMain > main || (lastMain === main && lastSub >= sub)) {
        throw new Error(
          `key index: revision ${main}.${sub} of a key arrived after ${lastMain}.${lastSub}`,
        );
      }
      history.push(main, tombstone ? -(sub + 1) : sub);
    }
    this.revisionCount += 1;
  }

  /** Records one history entry as stored in `revs` (its revision key and KeyValue bytes). */
  addEntry(revisionKey: Uint8Array, keyValue: Uint8Array): void {
    const pointer = decodeRevisionKey(revisionKey);
    this.add(decodeKeyOfKeyValue(keyValue), pointer.main, pointer.sub, pointer.tombstone);
  }

  /** The key's newest change at or below `revision`, or undefined when it has none. */
  latestAt(key: Uint8Array, revision: number): RevisionPointer | undefined {
    const history = this.byKey.get(keyId(key));
    return history === undefined ? undefined : latestIn(history, revision);
  }

  /**
   * Forgets one change of `key` (physical compaction removed it from `revs`); the key goes when
   * its last change does. Unknown changes are ignored.
   */
  remove(key: Uint8Array, main: number, sub: number): void {
    const id = keyId(key);
    const history = this.byKey.get(id);
    if (history === undefined) return;
    for (let i = 0; i < history.length; i += 2) {
      if (history[i] === main && subOf(history[i + 1]!) === sub) {
        history.splice(i, 2);
        this.revisionCount -= 1;
        break;
      }
    }
    if (history.length === 0) {
      this.byKey.delete(id);
      this.ordered?.delete(id);
    }
  }

  /**
   * Each key in [start, end) in key order with its newest change at or below `revision` (keys
   * with none are skipped); `end` undefined means every key from `start` on.
   */
  *latestInRange(
    start: Uint8Array,
    end: Uint8Array | undefined,
    revision: number,
  ): Generator<[key: Buffer, pointer: RevisionPointer]> {
    const endId = end === undefined ? undefined : keyId(end);
    for (const [id, history] of this.orderedKeys().entries(keyId(start))) {
      if (endId !== undefined && id >= endId) return;
      const pointer = latestIn(history, revision);
      if (pointer !== undefined) yield [Buffer.from(id, 'latin1'), pointer];
    }
  }

  /** Whether any key exists (its newest change at or below `revision` is not a tombstone). */
  anyAliveAt(revision: number): boolean {
    for (const history of this.byKey.values()) {
      const pointer = latestIn(history, revision);
      if (pointer !== undefined && !pointer.tombstone) return true;
    }
    return false;
  }

  private orderedKeys(): OrderedKeys {
    if (this.ordered === undefined) {
      const ordered: OrderedKeys = new BTree<string, KeyHistory>();
      // Inserting in key order fills the tree's nodes from the left: the cheapest way to build it.
      for (const id of [...this.byKey.keys()].sort()) ordered.set(id, this.byKey.get(id)!);
      this.ordered = ordered;
    }
    return this.ordered;
  }

  clear(): void {
    this.byKey.clear();
    this.ordered = undefined;
    this.revisionCount = 0;
  }

  /** Replaces the whole index with the one `revs` (the history table) implies: one ordered scan. */
  rebuild(revs: Database<Buffer, Buffer>): void {
    this.clear();
    for (const { key, value } of revs.getRange({})) this.addEntry(key, value);
  }
}

function keyId(key: Uint8Array): string {
  const bytes = Buffer.isBuffer(key) ? key : Buffer.from(key.buffer, key.byteOffset, key.length);
  return bytes.toString('latin1');
}

function subOf(encoded: number): number {
  return encoded < 0 ? -encoded - 1 : encoded;
}

/** Binary search for the last change with main revision <= revision (its highest sub). */
function latestIn(history: KeyHistory, revision: number): RevisionPointer | undefined {
  let low = 0;
  let high = history.length / 2;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (history[2 * middle]! <= revision) low = middle + 1;
    else high = middle;
  }
  if (low === 0) return undefined;
  const encoded = history[2 * low - 1]!;
  return { main: history[2 * low - 2]!, sub: subOf(encoded), tombstone: encoded < 0 };
}
