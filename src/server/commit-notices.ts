/**
 * Holds a leader's commit notices briefly, so that the next append carries them instead.
 *
 * When an entry commits, the raft core tells every follower the new commit index with an append
 * that has no entries (a commit notice). Under a steady stream of writes the very next append, a
 * fraction of a millisecond later, carries the same commit index along with new entries, so the
 * notice was one socket write on the leader, one wake-up, one decode and one acknowledgement on
 * each follower, and one more read on the leader, for nothing. At one client that doubled the raft
 * messages per put.
 *
 * So a notice waits here up to `holdMs`. Any later append to the same follower replaces it (an
 * append always carries the leader's whole commit index, which never decreases), and so does a
 * heartbeat whose commit index reaches the notice's; otherwise the notice goes out when the hold
 * ends. Nothing waits on a follower learning the commit index early: a write is acknowledged once
 * the leader applied it, and a follower's linearizable read waits for the commit index its
 * heartbeat round brings. What the hold delays is only when a follower applies an entry (its
 * watchers and serializable reads), by at most `holdMs` when writes stop.
 *
 * Except for a follower that forwarded proposals of its own clients: it answers them only once it
 * applied them, so a notice that commits one of them goes at once (`awaited`), as it did before
 * the hold. Otherwise a put sent to a follower waited for the next append or the hold's end.
 *
 * Raft may lose any message, so holding, replacing or (at stop) dropping a notice is always safe.
 */
import { type Message, MessageType } from '../raft/index.js';

/** Timer functions, injectable for deterministic tests. */
export interface HoldTimers {
  set(callback: () => void, delayMs: number): unknown;
  /** Starts a timer `set` returned again, after it fired or was cleared. */
  restart(handle: unknown): void;
  clear(handle: unknown): void;
}

const realTimers: HoldTimers = {
  set: (callback, delayMs) => setTimeout(callback, delayMs),
  // One Timeout object serves every hold: refresh() re-arms it without allocating a new one.
  restart: (handle) => (handle as NodeJS.Timeout).refresh(),
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export function isCommitNotice(message: Message): boolean {
  return message.type === MessageType.App && message.entries.length === 0;
}

export class CommitNotices {
  /** The latest held notice per follower. */
  private readonly held = new Map<number, Message>();
  /**
   * Per follower, the last index of the leader's log after it stepped proposals that follower
   * forwarded: a commit index reaching it answers that follower's clients. Forgotten once any
   * append tells the follower a commit index that high.
   */
  private readonly awaitedBy = new Map<number, number>();
  /** The hold's timer, created once and restarted for later holds. */
  private timer: unknown = null;
  private armed = false;

  constructor(
    private readonly holdMs: number,
    private readonly send: (messages: readonly Message[]) => void,
    private readonly timers: HoldTimers = realTimers,
  ) {}

  /** Held notices (for tests and metrics). */
  get size(): number {
    return this.held.size;
  }

  /**
   * Takes one Ready's messages in order: holds the commit notices, returns the rest to send now
   * (and forgets held notices those make redundant).
   */
  route(messages: readonly Message[]): readonly Message[] {
    // Most Readies hold nothing: they go out as they are, without a copy.
    let now: Message[] | null = null;
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i]!;
      let hold = false;
      if (this.awaitedBy.size > 0 && this.toldAwaited(message)) {
        // Sent now; it makes an older held notice to the same follower redundant.
        this.held.delete(message.to);
      } else if (isCommitNotice(message)) {
        this.held.set(message.to, message);
        hold = true;
      } else if (this.held.size > 0) {
        this.coveredBy(message);
      }
      if (hold) now ??= messages.slice(0, i);
      else now?.push(message);
    }
    if (this.held.size > 0 && !this.armed) {
      this.armed = true;
      if (this.timer === null) this.timer = this.timers.set(() => this.release(), this.holdMs);
      else this.timers.restart(this.timer);
    }
    return now ?? messages;
  }

  /**
   * The leader's log ends at `lastIndex` after stepping proposals `follower` forwarded: the notice
   * whose commit index reaches it goes at once instead of being held.
   */
  awaited(follower: number, lastIndex: number): void {
    if (lastIndex > (this.awaitedBy.get(follower) ?? 0)) this.awaitedBy.set(follower, lastIndex);
  }

  /** Sends every held notice now. */
  release(): void {
    this.armed = false;
    if (this.held.size === 0) return;
    const messages = [...this.held.values()];
    this.held.clear();
    this.send(messages);
  }

  /** Drops what is held (the member is stopping). */
  clear(): void {
    if (this.timer !== null) this.timers.clear(this.timer);
    // A cleared Timeout cannot be restarted: the next hold makes a new one.
    this.timer = null;
    this.armed = false;
    this.held.clear();
    this.awaitedBy.clear();
  }

  /**
   * Whether `message` is an append that tells its follower a commit index the follower awaits
   * (forgetting the wait): a commit notice so marked is sent at once.
   */
  private toldAwaited(message: Message): boolean {
    if (message.type !== MessageType.App) return false;
    const awaited = this.awaitedBy.get(message.to);
    if (awaited === undefined || message.commit < awaited) return false;
    this.awaitedBy.delete(message.to);
    return true;
  }

  private coveredBy(message: Message): void {
    const held = this.held.get(message.to);
    if (held === undefined) return;
    const covers =
      message.type === MessageType.App ||
      (message.type === MessageType.Heartbeat && message.commit >= held.commit);
    if (covers) this.held.delete(message.to);
  }
}
