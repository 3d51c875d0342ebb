/**
 * The write side of one request inside an apply batch: etcd's storeTxnWrite.
 *
 * A `WriteRequest` holds the revision the request started at and the changes made so far. Every
 * change of one request shares one main revision (beginRevision + 1) and gets the next sub
 * revision, as in etcd; a request that changes nothing does not consume a revision. Reads through
 * `readContext()` see the changes already made, exactly like etcd's write transaction.
 */
import { decodeKeyValue, encodeKeyValue, encodeLeaseId, encodeRevisionKey } from './codec.js';
import type { KeyIndex } from './key-index.js';
import type { KvDatabases } from './layout.js';
import { getAt, type RangeBounds, type ReadContext, rangeKeys } from './reader.js';
import { type Event, EventType, type KeyValue } from './types.js';

const EMPTY = new Uint8Array(0);

export class WriteRequest {
  readonly events: Event[] = [];
  /** The first key this request wrote, and (from the second event on) every key it wrote. */
  private firstKey: Buffer | undefined;
  private touchedKeys: Set<string> | undefined;

  constructor(
    private readonly dbs: KvDatabases,
    private readonly keys: KeyIndex,
    readonly beginRevision: number,
    private readonly compactRevision: number,
  ) {}

  get changes(): number {
    return this.events.length;
  }

  /** The revision a read inside this request sees (etcd: beginRev, +1 once something changed). */
  get revision(): number {
    return this.beginRevision + (this.events.length > 0 ? 1 : 0);
  }

  readContext(): ReadContext {
    return {
      dbs: this.dbs,
      keys: this.keys,
      currentRevision: this.revision,
      compactRevision: this.compactRevision,
    };
  }

  /** etcd's storeTxnWrite.put: the caller has already validated the lease and the flags. */
  put(key: Buffer, value: Uint8Array, lease: bigint): number {
    const revision = this.beginRevision + 1;
    const sub = this.events.length;
    const previousBytes = this.dbs.live.get(key);
    const previous = previousBytes === undefined ? undefined : decodeKeyValue(previousBytes);
    const kv: KeyValue = {
      key,
      createRevision: previous ? previous.createRevision : revision,
      modRevision: revision,
      version: previous ? previous.version + 1 : 1,
      value,
      lease,
    };
    const bytes = encodeKeyValue(kv);
    this.dbs.revs.putSync(encodeRevisionKey(revision, sub, false), bytes);
    this.dbs.live.putSync(key, bytes);
    this.keys.add(key, revision, sub, false);
    if (previous && previous.lease !== 0n) {
      this.dbs.leaseKeys.removeSync(encodeLeaseId(previous.lease), key);
    }
    if (lease !== 0n) this.dbs.leaseKeys.putSync(encodeLeaseId(lease), key);
    this.pushEvent({ type: EventType.PUT, kv }, key, previous);
    return revision;
  }

  /** etcd's storeTxnWrite.deleteRange: tombstones every live key of the range; returns the count. */
  deleteRange(bounds: RangeBounds): number {
    const { kvs } = rangeKeys(this.readContext(), bounds, 0, 0, false);
    for (const previous of kvs) this.deleteKey(previous);
    return kvs.length;
  }

  private deleteKey(previous: KeyValue): void {
    const revision = this.beginRevision + 1;
    const sub = this.events.length;
    const key = Buffer.from(previous.key);
    const tombstone: KeyValue = {
      key,
      createRevision: 0,
      modRevision: 0,
      version: 0,
      value: EMPTY,
      lease: 0n,
    };
    this.dbs.revs.putSync(encodeRevisionKey(revision, sub, true), encodeKeyValue(tombstone));
    this.dbs.live.removeSync(key);
    this.keys.add(key, revision, sub, true);
    if (previous.lease !== 0n) this.dbs.leaseKeys.removeSync(encodeLeaseId(previous.lease), key);
    // A DELETE event carries the key and the deletion's revision only, as etcd's watch does.
    this.pushEvent(
      { type: EventType.DELETE, kv: { ...tombstone, modRevision: revision } },
      key,
      previous,
    );
  }

  /**
   * Adds an event with etcd's prevKv: the key's value before this request (etcd's watch reads it
   * at modRevision - 1). That differs from `previous` only when the request already wrote the key,
   * which etcd's duplicate-key check allows around a DeleteRange ending in "\\0".
   */
  private pushEvent(event: Event, key: Buffer, previous: KeyValue | undefined): void {
    let prevKv = previous;
    if (this.touchedBefore(key)) prevKv = getAt(this.readContext(), key, this.beginRevision);
    if (prevKv !== undefined) event.prevKv = prevKv;
    this.events.push(event);
  }

  /**
   * Whether this request already wrote `key`, and records that it has now. Most requests write
   * one key, so the set of written keys is only built at the second event.
   */
  private touchedBefore(key: Buffer): boolean {
    if (this.events.length === 0) {
      this.firstKey = key;
      return false;
    }
    if (this.touchedKeys === undefined) {
      this.touchedKeys = new Set([this.firstKey!.toString('latin1')]);
    }
    const id = key.toString('latin1');
    const seen = this.touchedKeys.has(id);
    this.touchedKeys.add(id);
    return seen;
  }
}
