/**
 * The safety properties of Raft (paper Figure 3), checked by the simulator as the run goes:
 * election safety, leader append-only, log matching, leader completeness and state machine
 * safety, plus the bookkeeping ones (commit never goes back, entries applied in order, once).
 * A violation throws `SafetyViolation` with a description; the simulator adds the seed.
 */
import type { Entry, NodeId, RawNode } from '../raft/index.js';

export class SafetyViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetyViolation';
  }
}

function fail(message: string): never {
  throw new SafetyViolation(message);
}

/** A short identity for an entry's payload (the simulator's proposals are unique). */
export function entryKey(entry: Entry): string {
  let key = `${entry.type}:`;
  for (let i = 0; i < entry.data.length; i++) key += entry.data[i]!.toString(16).padStart(2, '0');
  return key;
}

export class InvariantChecker {
  /** term -> the leader elected in it. */
  private readonly leaders = new Map<number, NodeId>();
  /** `${id}:${term}` -> the leader's (lastIndex, lastTerm) when last checked. */
  private readonly leaderLogs = new Map<string, { index: number; term: number }>();
  /** `${index}:${term}` -> `${prevTerm}|${payload}` of every entry ever persisted. */
  private readonly entries = new Map<string, string>();
  /** index -> term and payload of the entry applied at that index (by anyone). */
  readonly applied = new Map<number, { term: number; key: string; hash: number }>();
  /** The highest index anyone applied. */
  maxApplied = 0;
  checks = 0;

  /** term -> the highest commit index a leader of that term was seen with. Entries up to it
   *  were committed in that term or earlier. */
  private readonly leaderCommits = new Map<number, number>();

  /** Election safety, leader append-only and leader completeness for one live member. */
  checkMember(id: NodeId, node: RawNode, leaders: readonly RawNode[]): void {
    this.checks++;
    const raft = node.raft;
    if (raft.role !== 2) return;
    const term = raft.term;
    const known = this.leaders.get(term);
    if (known === undefined) {
      this.leaders.set(term, id);
      this.checkCompleteness(node, this.committedBefore(term));
    } else if (known !== id) {
      fail(`election safety: ${known} and ${id} are both leaders of term ${term}`);
    }
    const commit = raft.log.committed;
    if (commit > (this.leaderCommits.get(term) ?? 0)) {
      this.leaderCommits.set(term, commit);
      // Entries committed in this term must be in the log of every leader of a later term.
      for (const other of leaders)
        if (other.raft.term > term) this.checkCompleteness(other, commit);
    }
    const key = `${id}:${term}`;
    const before = this.leaderLogs.get(key);
    const log = raft.log;
    if (before !== undefined) {
      if (log.lastIndex() < before.index) {
        fail(
          `leader append-only: leader ${id} of term ${term} shrank its log below ${before.index}`,
        );
      }
      if (before.index >= log.firstIndex() - 1 && log.term(before.index) !== before.term) {
        fail(`leader append-only: leader ${id} of term ${term} overwrote entry ${before.index}`);
      }
    }
    this.leaderLogs.set(key, { index: log.lastIndex(), term: log.lastTerm() });
  }

  /** The highest index known to be committed in a term before `term`. */
  private committedBefore(term: number): number {
    let highest = 0;
    for (const [t, commit] of this.leaderCommits)
      if (t < term && commit > highest) highest = commit;
    return highest;
  }

  /**
   * Leader completeness (Raft §5.4): a leader's log holds every entry committed in an earlier
   * term, up to `upTo`. Entries are compared with what members applied at those indexes.
   */
  private checkCompleteness(node: RawNode, upTo: number): void {
    const log = node.raft.log;
    const from = Math.max(1, log.firstIndex());
    for (let index = from; index <= upTo; index++) {
      const applied = this.applied.get(index);
      if (applied === undefined) continue;
      if (index > log.lastIndex() || log.term(index) !== applied.term) {
        fail(
          `leader completeness: leader ${node.raft.id} (term ${node.raft.term}) lacks committed entry ${index} of term ${applied.term}`,
        );
      }
    }
  }

  /** Log matching: entries with the same index and term have the same payload and predecessor. */
  checkPersisted(id: NodeId, entries: readonly Entry[], prevTerm: number): void {
    let previous = prevTerm;
    for (const entry of entries) {
      const key = `${entry.index}:${entry.term}`;
      const value = `${previous}|${entryKey(entry)}`;
      const known = this.entries.get(key);
      if (known === undefined) this.entries.set(key, value);
      else if (known !== value) {
        fail(`log matching: member ${id} has entry ${key} as ${value}, another has ${known}`);
      }
      previous = entry.term;
    }
  }

  /** State machine safety: nobody applies a different entry at an index. */
  checkApplied(id: NodeId, entry: Entry, hash: number): void {
    const key = entryKey(entry);
    const known = this.applied.get(entry.index);
    if (known === undefined) {
      this.applied.set(entry.index, { term: entry.term, key, hash });
      if (entry.index > this.maxApplied) this.maxApplied = entry.index;
    } else if (known.term !== entry.term || known.key !== key || known.hash !== hash) {
      fail(
        `state machine safety: member ${id} applied ${entry.index}@${entry.term} (${key}) but another applied ${entry.index}@${known.term} (${known.key})`,
      );
    }
  }

  /** A snapshot installed at `index` must equal the state everyone had there. */
  checkSnapshotState(id: NodeId, index: number, hash: number): void {
    const known = this.applied.get(index);
    if (known !== undefined && known.hash !== hash) {
      fail(`snapshot: member ${id} installed a state at ${index} different from the applied one`);
    }
  }
}
