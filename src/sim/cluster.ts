/**
 * The deterministic simulator: N raft cores in one process, a simulated network (network.ts),
 * simulated disks with a durability delay, crashes, restarts and pauses, all driven by one seed.
 *
 * Time is an integer count of units; each member ticks once every TICK_UNITS units (at its own
 * offset). Every unit the simulator delivers due messages, completes due disk writes, ticks, and
 * handles each member's Ready exactly as a real member must (see src/raft/index.ts):
 *   - `messages` go to the network at once (a leader's appends race its own disk write);
 *   - entries and hard state reach the member's MemoryStorage only when the simulated write
 *     completes, and a crash before that loses them;
 *   - `messagesAfterPersist` are sent only after that, then `advance()`.
 * After every unit the invariant checker (invariants.ts) looks at every live member.
 */
import {
  type ConfChange,
  type ConfState,
  decodeConfChange,
  EMPTY_CONF_STATE,
  type Entry,
  EntryType,
  MemoryStorage,
  type Message,
  MessageType,
  type NodeId,
  RaftError,
  type RaftErrorCode,
  RawNode,
  type ReadState,
  type Ready,
  type Snapshot,
} from '../raft/index.js';
import { entryKey, InvariantChecker, SafetyViolation } from './invariants.js';
import { type NetworkFaults, SimNetwork } from './network.js';
import { Rng } from './rng.js';

export const TICK_UNITS = 10;

export interface SimOptions {
  readonly seed: number;
  /** Founding voters get ids 1..voters. */
  readonly voters: number;
  /** Founding learners, with ids after the voters. */
  readonly learners?: number;
  readonly preVote?: boolean;
  readonly checkQuorum?: boolean;
  readonly readOnly?: 'safe' | 'lease';
  readonly electionTick?: number;
  readonly heartbeatTick?: number;
  readonly diskDelayMinUnits?: number;
  readonly diskDelayMaxUnits?: number;
  /** Take a state machine snapshot every this many applied entries; 0 never. */
  readonly snapshotEveryEntries?: number;
  /** Entries kept behind a snapshot for slow followers. */
  readonly compactKeepEntries?: number;
  readonly maxSizePerMsgBytes?: number;
  readonly maxInflightMsgs?: number;
  readonly maxUncommittedEntriesBytes?: number;
  /**
   * While a member's write is in flight, take what `RawNode.drain()` offers every unit (messages,
   * newly committed entries, confirmed reads), as a real member does; otherwise that work waits
   * for the next Ready.
   */
  readonly drainWhileWriting?: boolean;
  /**
   * Deliberately breaks the persistence contract (sends `messagesAfterPersist` before the write
   * is durable). Only for tests proving the checker catches what the contract prevents.
   */
  readonly unsafeSendBeforePersist?: boolean;
}

/** The replicated state machine of the simulation: a running hash of every applied entry. */
interface StateMachine {
  applied: number;
  hash: number;
  confState: ConfState;
}

interface PendingWrite {
  readonly ready: Ready;
  readonly doneAt: number;
}

export class SimMember {
  raw: RawNode | null = null;
  paused = false;
  /** Messages that arrived while paused, delivered on resume. */
  inbox: Message[] = [];
  pending: PendingWrite | null = null;
  sm: StateMachine = { applied: 0, hash: 0, confState: EMPTY_CONF_STATE };
  /** Commit index seen in this incarnation (it must never go back). */
  lastCommit = 0;
  readStates: ReadState[] = [];
  readonly tickOffset: number;

  constructor(
    readonly id: NodeId,
    readonly storage: MemoryStorage,
    tickOffset: number,
  ) {
    this.tickOffset = tickOffset;
  }

  get alive(): boolean {
    return this.raw !== null;
  }
}

function mixHash(hash: number, key: string): number {
  let h = hash ^ 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function encodeState(sm: StateMachine): Uint8Array {
  const bytes = new Uint8Array(12);
  const view = new DataView(bytes.buffer);
  view.setFloat64(0, sm.applied);
  view.setUint32(8, sm.hash);
  return bytes;
}

function decodeState(snapshot: Snapshot): StateMachine {
  if (snapshot.metadata.index === 0) return { applied: 0, hash: 0, confState: EMPTY_CONF_STATE };
  const view = new DataView(snapshot.data.buffer, snapshot.data.byteOffset, 12);
  return {
    applied: view.getFloat64(0),
    hash: view.getUint32(8),
    confState: snapshot.metadata.confState,
  };
}

export function proposalData(id: number): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setFloat64(0, id);
  return bytes;
}

function proposalId(entry: Entry): number | null {
  if (entry.type !== EntryType.Normal || entry.data.length !== 8) return null;
  return new DataView(entry.data.buffer, entry.data.byteOffset, 8).getFloat64(0);
}

export class SimCluster {
  readonly options: SimOptions;
  readonly rng: Rng;
  readonly network: SimNetwork;
  readonly members = new Map<NodeId, SimMember>();
  readonly checker = new InvariantChecker();
  now = 0;
  private nextProposalId = 1;
  /** Proposal id -> tick it was submitted. */
  readonly proposed = new Map<number, number>();
  /** Proposal ids applied by at least one member. */
  readonly committed = new Set<number>();
  /** Messages sent per type since the last `resetCounts()`. */
  readonly sentByType = new Map<MessageType, number>();
  /** Read context key -> highest index applied anywhere when the read was requested. */
  private readonly readFloors = new Map<string, number>();
  private readonly diskRng: Rng;
  private readonly nodeRng: Rng;

  constructor(options: SimOptions) {
    this.options = options;
    this.rng = new Rng(options.seed);
    this.network = new SimNetwork(this.rng.fork());
    this.diskRng = this.rng.fork();
    this.nodeRng = this.rng.fork();
    const voters: NodeId[] = [];
    const learners: NodeId[] = [];
    for (let id = 1; id <= options.voters; id++) voters.push(id);
    for (let i = 1; i <= (options.learners ?? 0); i++) learners.push(options.voters + i);
    for (const id of [...voters, ...learners]) {
      const member = this.addMember(id);
      member.raw!.bootstrap(voters, learners);
    }
  }

  /** Creates a member with an empty log; it joins once a conf change adds it. */
  addMember(id: NodeId): SimMember {
    if (this.members.has(id)) throw new Error(`member ${id} exists`);
    const member = new SimMember(id, new MemoryStorage(), this.nodeRng.int(0, TICK_UNITS - 1));
    this.members.set(id, member);
    this.start(member);
    return member;
  }

  private start(member: SimMember): void {
    const snapshot = member.storage.snapshot();
    const o = this.options;
    const random = this.nodeRng.fork();
    member.raw = new RawNode({
      id: member.id,
      storage: member.storage,
      electionTick: o.electionTick ?? 10,
      heartbeatTick: o.heartbeatTick ?? 1,
      maxSizePerMsgBytes: o.maxSizePerMsgBytes ?? 4096,
      maxInflightMsgs: o.maxInflightMsgs ?? 16,
      maxUncommittedEntriesBytes: o.maxUncommittedEntriesBytes ?? 1 << 20,
      checkQuorum: o.checkQuorum ?? false,
      preVote: o.preVote ?? false,
      readOnly: o.readOnly ?? 'safe',
      random: () => random.next(),
      applied: snapshot.metadata.index,
    });
    member.sm = decodeState(snapshot);
    member.lastCommit = member.raw.raft.log.committed;
    member.pending = null;
    member.inbox = [];
    member.paused = false;
  }

  member(id: NodeId): SimMember {
    const member = this.members.get(id);
    if (member === undefined) throw new Error(`no member ${id}`);
    return member;
  }

  node(id: NodeId): RawNode {
    const raw = this.member(id).raw;
    if (raw === null) throw new Error(`member ${id} is down`);
    return raw;
  }

  // ------------------------------------------------------------------------- faults

  /** Stops a member: everything not yet durable (its pending write, its memory) is lost. */
  crash(id: NodeId): void {
    const member = this.member(id);
    member.raw = null;
    member.pending = null;
    for (const message of member.inbox) this.onLost(message);
    member.inbox = [];
  }

  restart(id: NodeId): void {
    const member = this.member(id);
    if (member.alive) throw new Error(`member ${id} is running`);
    this.start(member);
  }

  pause(id: NodeId): void {
    this.member(id).paused = true;
  }

  resume(id: NodeId): void {
    const member = this.member(id);
    member.paused = false;
    const inbox = member.inbox;
    member.inbox = [];
    for (const message of inbox) this.deliver(member, message);
  }

  setFaults(faults: NetworkFaults): void {
    this.network.faults = faults;
  }

  ids(): NodeId[] {
    return [...this.members.keys()];
  }

  // ------------------------------------------------------------------------- clients

  /** Proposes a fresh command through `via` (default: the leader, else any live member). */
  propose(via?: NodeId): { id: number; error: RaftErrorCode | null } {
    const id = this.nextProposalId++;
    const live = this.liveIds();
    if (via === undefined && live.length === 0) return { id, error: 'NO_LEADER' };
    const target = via ?? this.leader() ?? this.rng.pick(live);
    const raw = this.members.get(target)?.raw;
    if (raw === null || raw === undefined) return { id, error: 'NO_LEADER' };
    try {
      raw.propose(proposalData(id));
      this.proposed.set(id, this.now);
      return { id, error: null };
    } catch (error) {
      if (error instanceof RaftError) return { id, error: error.code };
      throw error;
    }
  }

  proposeConfChange(cc: ConfChange, via?: NodeId): RaftErrorCode | null {
    const target = via ?? this.leader();
    if (target === null) return 'NO_LEADER';
    try {
      this.node(target).proposeConfChange(cc);
      return null;
    } catch (error) {
      if (error instanceof RaftError) return error.code;
      throw error;
    }
  }

  /** Requests a linearizable read on `via`; the ReadState appears in its `readStates`. */
  readIndex(via: NodeId, context: Uint8Array): RaftErrorCode | null {
    this.readFloors.set(entryKey({ term: 0, index: 0, type: 0, data: context }), this.maxApplied());
    try {
      this.node(via).readIndex(context);
      return null;
    } catch (error) {
      if (error instanceof RaftError) return error.code;
      throw error;
    }
  }

  maxApplied(): number {
    return this.checker.maxApplied;
  }

  liveIds(): NodeId[] {
    return this.ids().filter((id) => this.members.get(id)!.alive);
  }

  /** The live leader with the highest term, or null. */
  leader(): NodeId | null {
    let best: NodeId | null = null;
    let bestTerm = -1;
    for (const [id, member] of this.members) {
      const raft = member.raw?.raft;
      if (raft === undefined || member.paused || raft.role !== 2) continue;
      if (raft.term > bestTerm) {
        best = id;
        bestTerm = raft.term;
      }
    }
    return best;
  }

  // ------------------------------------------------------------------------- running

  /** Advances time by one unit. */
  stepUnit(): void {
    this.now++;
    for (const message of this.network.due(this.now, (m) => this.onLost(m))) {
      const member = this.members.get(message.to);
      if (member === undefined || !member.alive) this.onLost(message);
      else if (member.paused) member.inbox.push(message);
      else this.deliver(member, message);
    }
    for (const member of this.members.values()) {
      if (!member.alive || member.paused) continue;
      if (member.pending !== null && member.pending.doneAt <= this.now) this.completeWrite(member);
      if (this.now % TICK_UNITS === member.tickOffset) member.raw!.tick();
      this.handleReady(member);
      if (member.pending !== null && this.options.drainWhileWriting) this.drain(member);
    }
    this.checkInvariants();
  }

  runTicks(ticks: number): void {
    for (let i = 0; i < ticks * TICK_UNITS; i++) this.stepUnit();
  }

  /** Runs until `condition` holds; returns the ticks it took, or throws after `maxTicks`. */
  runUntil(condition: () => boolean, maxTicks: number, what = 'condition'): number {
    const start = this.now;
    while (!condition()) {
      if (this.now - start >= maxTicks * TICK_UNITS) {
        throw new Error(
          `seed ${this.options.seed}: ${what} not reached within ${maxTicks} ticks\n${this.summary()}`,
        );
      }
      this.stepUnit();
    }
    return Math.ceil((this.now - start) / TICK_UNITS);
  }

  /** Whether every live member has applied proposal ids `ids`' entries (all of them). */
  allApplied(index: number): boolean {
    for (const member of this.members.values()) {
      if (member.alive && member.sm.applied < index) return false;
    }
    return true;
  }

  private deliver(member: SimMember, message: Message): void {
    member.raw!.step(message);
    if (message.type === MessageType.Snap) {
      // The transport finished sending it; tell the sender (as a real transport would).
      this.members.get(message.from)?.raw?.reportSnapshot(member.id, 'finish');
    }
  }

  private onLost(message: Message): void {
    if (message.type === MessageType.Snap) {
      this.members.get(message.from)?.raw?.reportSnapshot(message.to, 'failure');
    }
  }

  private send(messages: readonly Message[]): void {
    for (const message of messages) {
      this.sentByType.set(message.type, (this.sentByType.get(message.type) ?? 0) + 1);
      if (!this.network.send(message, this.now)) this.onLost(message);
    }
  }

  resetCounts(): void {
    this.sentByType.clear();
  }

  private handleReady(member: SimMember): void {
    const raw = member.raw!;
    if (member.pending !== null || !raw.hasReady()) return;
    const ready = raw.ready();
    if (ready.entries.length > 0) {
      const first = ready.entries[0]!.index;
      this.checker.checkPersisted(member.id, ready.entries, raw.raft.log.term(first - 1));
    }
    this.send(ready.messages);
    if (this.options.unsafeSendBeforePersist) this.send(ready.messagesAfterPersist);
    this.apply(member, ready.committedEntries);
    for (const read of ready.readStates) this.checkRead(member, read);
    const o = this.options;
    const delay = this.diskRng.int(o.diskDelayMinUnits ?? 1, o.diskDelayMaxUnits ?? 5);
    member.pending = { ready, doneAt: this.now + delay };
  }

  private drain(member: SimMember): void {
    const drained = member.raw!.drain();
    if (drained === null) return;
    this.send(drained.messages);
    this.apply(member, drained.committedEntries);
    for (const read of drained.readStates) this.checkRead(member, read);
  }

  private completeWrite(member: SimMember): void {
    const { ready } = member.pending!;
    member.pending = null;
    const storage = member.storage;
    if (ready.snapshot !== null) {
      storage.applySnapshot(ready.snapshot);
      member.sm = decodeState(ready.snapshot);
      this.checker.checkSnapshotState(member.id, member.sm.applied, member.sm.hash);
    }
    const durableCommit = storage.initialState().hardState.commit;
    storage.save(ready.hardState, ready.entries);
    if (storage.initialState().hardState.commit < durableCommit) {
      this.violation(`member ${member.id}: durable commit went back below ${durableCommit}`);
    }
    if (!this.options.unsafeSendBeforePersist) this.send(ready.messagesAfterPersist);
    member.raw!.advance();
    this.maybeSnapshot(member);
    this.handleReady(member);
  }

  private apply(member: SimMember, entries: readonly Entry[]): void {
    const sm = member.sm;
    for (const entry of entries) {
      if (entry.index !== sm.applied + 1) {
        this.violation(`member ${member.id} applied ${entry.index} after ${sm.applied}`);
      }
      sm.applied = entry.index;
      sm.hash = mixHash(sm.hash, entryKey(entry));
      this.checker.checkApplied(member.id, entry, sm.hash);
      if (entry.type === EntryType.ConfChange) {
        sm.confState = member.raw!.applyConfChange(decodeConfChange(entry.data));
      }
      const id = proposalId(entry);
      if (id !== null) this.committed.add(id);
    }
  }

  private checkRead(member: SimMember, read: ReadState): void {
    const key = entryKey({ term: 0, index: 0, type: 0, data: read.requestCtx });
    const floor = this.readFloors.get(key);
    if (floor !== undefined && read.index < floor) {
      this.violation(
        `linearizable read on ${member.id} at index ${read.index}, but ${floor} was applied before it was requested`,
      );
    }
    member.readStates.push(read);
  }

  private maybeSnapshot(member: SimMember): void {
    const every = this.options.snapshotEveryEntries ?? 0;
    if (every === 0) return;
    const storage = member.storage;
    const sm = member.sm;
    if (sm.applied - storage.snapshot().metadata.index < every) return;
    if (sm.applied > storage.lastIndex()) return;
    storage.createSnapshot(sm.applied, sm.confState, encodeState(sm));
    const keep = this.options.compactKeepEntries ?? 0;
    const compactTo = sm.applied - keep;
    if (compactTo >= storage.firstIndex()) storage.compact(compactTo);
  }

  private checkInvariants(): void {
    const leaders: RawNode[] = [];
    for (const member of this.members.values()) {
      if (member.raw !== null && member.raw.raft.role === 2) leaders.push(member.raw);
    }
    for (const member of this.members.values()) {
      const raw = member.raw;
      if (raw === null) continue;
      const committed = raw.raft.log.committed;
      if (committed < member.lastCommit) {
        this.violation(`member ${member.id}: commit went back from ${member.lastCommit}`);
      }
      member.lastCommit = committed;
      try {
        this.checker.checkMember(member.id, raw, leaders);
      } catch (error) {
        if (error instanceof SafetyViolation) this.violation(error.message);
        throw error;
      }
    }
  }

  violation(message: string): never {
    throw new SafetyViolation(`seed ${this.options.seed} at tick ${this.tick()}: ${message}`);
  }

  tick(): number {
    return Math.floor(this.now / TICK_UNITS);
  }

  /** One line per member: role, term, commit and applied index. For transcript-style tests. */
  summary(): string {
    const roles = ['follower', 'candidate', 'leader', 'pre-candidate'];
    const lines: string[] = [];
    for (const [id, member] of this.members) {
      const raw = member.raw;
      if (raw === null) {
        lines.push(`${id}: down`);
        continue;
      }
      const s = raw.status();
      const paused = member.paused ? ' (paused)' : '';
      lines.push(
        `${id}: ${roles[s.role]} term=${s.term} commit=${s.commit} applied=${member.sm.applied}${paused}`,
      );
    }
    return lines.join('\n');
  }
}
