/**
 * When this member appended recent raft entries to its log, by index: one record per Ready that
 * carried entries, in a ring of APPEND_TIME_RECORDS_MAX. Lease deadlines (leases.ts) count from
 * the moment a member first had a renewal entry rather than from when it learned the entry was
 * committed: a follower that had not yet heard of the commit when the leader died applies the
 * renewal only after the next election, and counting from then would keep the lease alive for
 * the length of the election beyond its TTL. An entry at an index is never re-appended unchanged
 * and a committed entry is never overwritten, so the newest record covering an index is when the
 * entry applied at that index arrived. Older entries (evicted, or from before a restart) have no
 * time, and callers fall back to their apply time, which is later and so never shortens a lease.
 */

/** Readies remembered (about a second of appends on a busy member, far more than apply lags). */
export const APPEND_TIME_RECORDS_MAX = 1024;

interface AppendRecord {
  firstIndex: number;
  lastIndex: number;
  atMs: number;
}

export class AppendTimes {
  private readonly records: (AppendRecord | undefined)[] = new Array(APPEND_TIME_RECORDS_MAX);
  /** Where the next record goes; the newest is just before it. */
  private next = 0;

  /** Entries firstIndex..lastIndex were appended (handed to storage) at atMs. */
  record(firstIndex: number, lastIndex: number, atMs: number): void {
    if (lastIndex < firstIndex)
      throw new RangeError(`bad append range ${firstIndex}..${lastIndex}`);
    this.records[this.next] = { firstIndex, lastIndex, atMs };
    this.next = (this.next + 1) % APPEND_TIME_RECORDS_MAX;
  }

  /** When the entry now at `index` was appended, or undefined when no record covers it. */
  appendedAtMs(index: number): number | undefined {
    for (let i = 1; i <= APPEND_TIME_RECORDS_MAX; i++) {
      const record =
        this.records[(this.next - i + APPEND_TIME_RECORDS_MAX) % APPEND_TIME_RECORDS_MAX];
      if (record === undefined) return undefined;
      if (index >= record.firstIndex && index <= record.lastIndex) return record.atMs;
    }
    return undefined;
  }
}
