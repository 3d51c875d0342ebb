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

export class AppendTimes {
  // A ring of records as three columns (typed arrays: no object per record for the collector to
  // copy; a record lives about a second, long enough to survive young-generation collections).
  private readonly firstIndexes = new Float64Array(APPEND_TIME_RECORDS_MAX);
  private readonly lastIndexes = new Float64Array(APPEND_TIME_RECORDS_MAX);
  private readonly atMs = new Float64Array(APPEND_TIME_RECORDS_MAX);
  /** Where the next record goes; the newest is just before it. */
  private next = 0;
  private recorded = 0;

  /** Entries firstIndex..lastIndex were appended (handed to storage) at atMs. */
  record(firstIndex: number, lastIndex: number, atMs: number): void {
    if (lastIndex < firstIndex)
      throw new RangeError(`bad append range ${firstIndex}..${lastIndex}`);
    this.firstIndexes[this.next] = firstIndex;
    this.lastIndexes[this.next] = lastIndex;
    this.atMs[this.next] = atMs;
    this.next = (this.next + 1) % APPEND_TIME_RECORDS_MAX;
    if (this.recorded < APPEND_TIME_RECORDS_MAX) this.recorded++;
  }

  /** When the entry now at `index` was appended, or undefined when no record covers it. */
  appendedAtMs(index: number): number | undefined {
    for (let i = 1; i <= this.recorded; i++) {
      const slot = (this.next - i + APPEND_TIME_RECORDS_MAX) % APPEND_TIME_RECORDS_MAX;
      if (index >= this.firstIndexes[slot]! && index <= this.lastIndexes[slot]!) {
        return this.atMs[slot];
      }
    }
    return undefined;
  }
}
