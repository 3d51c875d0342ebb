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
    let notices = 0;
    for (const message of messages) {
      if (isCommitNotice(message)) {
        this.held.set(message.to, message);
        notices++;
      } else if (this.held.size > 0) {
        this.coveredBy(message);
      }
    }
    if (this.held.size > 0 && !this.armed) {
      this.armed = true;
      if (this.timer === null) this.timer = this.timers.set(() => this.release(), this.holdMs);
      else this.timers.restart(this.timer);
    }
    // Most Readies carry no notice: they go out as they are, without a copy.
    return notices === 0 ? messages : messages.filter((message) => !isCommitNotice(message));
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
