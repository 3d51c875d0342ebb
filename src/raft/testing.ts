/**
 * A synchronous in-memory network of RawNodes for the raft core's own tests: every Ready is
 * persisted to MemoryStorage at once, and messages are delivered in order until the cluster is
 * quiet. Messages can be dropped per link and recorded as one-line transcripts, so protocol tests
 * read as "do this, then exactly these messages flow".
 */
import { decodeConfChange } from './confchange.js';
import { describeMessage } from './describe.js';
import { MemoryStorage } from './memory-storage.js';
import type { RaftConfig } from './raft.js';
import { RawNode } from './raw-node.js';
import { type Entry, EntryType, type Message, type NodeId, type ReadState } from './types.js';

export interface TestMember {
  readonly id: NodeId;
  readonly storage: MemoryStorage;
  raw: RawNode;
  applied: Entry[];
  readStates: ReadState[];
}

export type TestConfig = Partial<Omit<RaftConfig, 'id' | 'storage'>>;

export function testConfig(id: NodeId, storage: MemoryStorage, overrides: TestConfig): RaftConfig {
  let seed = id * 7919;
  return {
    id,
    storage,
    electionTick: 10,
    heartbeatTick: 1,
    maxSizePerMsgBytes: 1 << 20,
    maxInflightMsgs: 256,
    maxUncommittedEntriesBytes: 1 << 30,
    checkQuorum: false,
    preVote: false,
    random: () => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647;
    },
    ...overrides,
  };
}

export class TestNetwork {
  readonly members = new Map<NodeId, TestMember>();
  /** Links that drop everything, as `${from}>${to}`. */
  private readonly cut = new Set<string>();
  private queue: Message[] = [];
  /** Delivered messages, one line each, since the last `takeTranscript()`. */
  private transcript: string[] = [];
  /** Messages that leave a member are passed here first; returning false drops them. */
  filter: (m: Message) => boolean = () => true;
  /** Applied to every delivered message, e.g. to send it through a real encoding. */
  wire: (m: Message) => Message = (m) => m;

  constructor(
    voters: readonly NodeId[],
    config: TestConfig = {},
    learners: readonly NodeId[] = [],
  ) {
    for (const id of [...voters, ...learners]) {
      const storage = new MemoryStorage();
      const raw = new RawNode(testConfig(id, storage, config));
      raw.bootstrap(voters, learners);
      this.members.set(id, { id, storage, raw, applied: [], readStates: [] });
    }
  }

  /** Adds a member with an empty log (it joins when a conf change adds it). */
  addEmpty(id: NodeId, config: TestConfig = {}): TestMember {
    const storage = new MemoryStorage();
    const member = {
      id,
      storage,
      raw: new RawNode(testConfig(id, storage, config)),
      applied: [],
      readStates: [],
    };
    this.members.set(id, member);
    return member;
  }

  node(id: NodeId): RawNode {
    return this.members.get(id)!.raw;
  }

  isolate(id: NodeId): void {
    for (const other of this.members.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}>${other}`);
      this.cut.add(`${other}>${id}`);
    }
  }

  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}>${to}`);
  }

  heal(): void {
    this.cut.clear();
  }

  /** Restarts a member from its storage (everything it persisted survives, nothing else). */
  restart(id: NodeId, config: TestConfig = {}): void {
    const member = this.members.get(id)!;
    const applied = member.storage.snapshot().metadata.index;
    member.raw = new RawNode({ ...testConfig(id, member.storage, config), applied });
    member.applied = [];
  }

  /** Handles every pending Ready and delivers messages until nothing moves. */
  settle(maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      let progressed = false;
      for (const member of this.members.values()) {
        if (member.raw.hasReady()) {
          this.handleReady(member);
          progressed = true;
        }
      }
      if (this.queue.length > 0) {
        const queue = this.queue;
        this.queue = [];
        for (const m of queue) this.deliver(m);
        progressed = true;
      }
      if (!progressed) return;
    }
    throw new Error('network did not settle');
  }

  tick(id: NodeId, ticks = 1): void {
    for (let i = 0; i < ticks; i++) this.node(id).tick();
  }

  tickAll(ticks = 1): void {
    for (let i = 0; i < ticks; i++) {
      for (const member of this.members.values()) member.raw.tick();
      this.settle();
    }
  }

  /** Messages delivered since the last call, one line each. */
  takeTranscript(): string[] {
    const lines = this.transcript;
    this.transcript = [];
    return lines;
  }

  private deliver(m: Message): void {
    const to = this.members.get(m.to);
    if (to === undefined || this.cut.has(`${m.from}>${m.to}`) || !this.filter(m)) return;
    this.transcript.push(describeMessage(m));
    to.raw.step(this.wire(m));
  }

  private handleReady(member: TestMember): void {
    const rd = member.raw.ready();
    this.queue.push(...rd.messages);
    if (rd.snapshot !== null) member.storage.applySnapshot(rd.snapshot);
    member.storage.save(rd.hardState, rd.entries);
    this.queue.push(...rd.messagesAfterPersist);
    for (const entry of rd.committedEntries) {
      member.applied.push(entry);
      if (entry.type === EntryType.ConfChange)
        member.raw.applyConfChange(decodeConfChange(entry.data));
    }
    member.readStates.push(...rd.readStates);
    member.raw.advance();
  }
}

/**
 * Drives a 3-member network (ids 1, 2, 3) through a scenario that sends every kind of message a
 * cluster exchanges: pre-votes and votes, appends and their answers, heartbeats, a forwarded
 * proposal and read, a snapshot to a new learner (4), and a leadership transfer to 2. Tests of a
 * message encoding set `net.wire` first and check the outcome afterwards.
 */
export function exchangeEveryMessageType(net: TestNetwork): void {
  net.settle();
  net.node(1).campaign();
  net.settle();
  for (let i = 0; i < 20; i++) net.node(2).propose(new Uint8Array([i, 1, 2]));
  net.node(3).readIndex(new Uint8Array([9]));
  net.settle();
  net.tickAll(2);
  const leader = net.members.get(1)!;
  const applied = leader.raw.status().applied;
  leader.storage.createSnapshot(applied, leader.raw.status().config, new Uint8Array([5]));
  leader.storage.compact(applied);
  net.addEmpty(4);
  net.node(1).proposeConfChange({
    transition: 0,
    changes: [{ type: 2, nodeId: 4 }],
    context: new Uint8Array(0),
  });
  net.settle();
  net.tickAll(3);
  net.node(1).transferLeader(2);
  net.settle();
}
