/**
 * The simulated network: every message gets a delivery time drawn from the configured delay, may
 * be lost or duplicated, and is dropped if its link is cut when it is sent or when it arrives.
 * Links are directed, so partitions of any shape and asymmetric links are just sets of cut links.
 */
import type { Message, NodeId } from '../raft/index.js';
import type { Rng } from './rng.js';

export interface NetworkFaults {
  /** Delivery delay in simulator time units (a tick is TICK_UNITS units). */
  delayMinUnits: number;
  delayMaxUnits: number;
  lossProbability: number;
  duplicateProbability: number;
  /** Whether messages on one link may overtake each other (a TCP connection keeps order). */
  reorder: boolean;
}

export const RELIABLE: NetworkFaults = {
  delayMinUnits: 1,
  delayMaxUnits: 3,
  lossProbability: 0,
  duplicateProbability: 0,
  reorder: false,
};

export const UNRELIABLE: NetworkFaults = {
  delayMinUnits: 1,
  delayMaxUnits: 40,
  lossProbability: 0.1,
  duplicateProbability: 0.05,
  reorder: true,
};

/** In-flight messages beyond this are dropped (a real transport's send queue is bounded too). */
export const IN_FLIGHT_MESSAGES_MAX = 200_000;

interface InFlight {
  readonly at: number;
  readonly seq: number;
  readonly message: Message;
}

export class SimNetwork {
  faults: NetworkFaults = RELIABLE;
  /** Cut directed links, as `${from}>${to}`. */
  private readonly cut = new Set<string>();
  private heap: InFlight[] = [];
  /** Latest delivery time per link, to keep links FIFO when reordering is off. */
  private readonly lastDelivery = new Map<string, number>();
  private seq = 0;
  sentCount = 0;

  constructor(private readonly rng: Rng) {}

  isCut(from: NodeId, to: NodeId): boolean {
    return this.cut.has(`${from}>${to}`);
  }

  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}>${to}`);
  }

  /** Splits the members into groups that can only talk within themselves. */
  partition(groups: readonly (readonly NodeId[])[]): void {
    this.cut.clear();
    for (const a of groups) {
      for (const b of groups) {
        if (a === b) continue;
        for (const from of a) for (const to of b) this.cutLink(from, to);
      }
    }
  }

  /** Cuts `id` off from everyone in `others`, both directions. */
  isolate(id: NodeId, others: readonly NodeId[]): void {
    for (const other of others) {
      if (other === id) continue;
      this.cutLink(id, other);
      this.cutLink(other, id);
    }
  }

  heal(): void {
    this.cut.clear();
  }

  /** Queues a message. Returns false if it was dropped on the way out. */
  send(message: Message, now: number): boolean {
    this.sentCount++;
    if (this.isCut(message.from, message.to)) return false;
    if (this.heap.length >= IN_FLIGHT_MESSAGES_MAX) return false;
    if (this.rng.chance(this.faults.lossProbability)) return false;
    const copies = this.rng.chance(this.faults.duplicateProbability) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = this.rng.int(this.faults.delayMinUnits, this.faults.delayMaxUnits);
      let at = now + delay;
      if (!this.faults.reorder) {
        const link = `${message.from}>${message.to}`;
        at = Math.max(at, this.lastDelivery.get(link) ?? 0);
        this.lastDelivery.set(link, at);
      }
      this.push({ at, seq: this.seq++, message });
    }
    return true;
  }

  /** Removes and returns the messages due at or before `now`, in delivery order. */
  due(now: number, onCut: (message: Message) => void): Message[] {
    const out: Message[] = [];
    while (this.heap.length > 0 && this.heap[0]!.at <= now) {
      const item = this.pop();
      if (this.isCut(item.message.from, item.message.to)) onCut(item.message);
      else out.push(item.message);
    }
    return out;
  }

  pending(): number {
    return this.heap.length;
  }

  clear(): void {
    this.heap = [];
  }

  private less(a: InFlight, b: InFlight): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(item: InFlight): void {
    const heap = this.heap;
    heap.push(item);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  private pop(): InFlight {
    const heap = this.heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && this.less(heap[l]!, heap[m]!)) m = l;
        if (r < heap.length && this.less(heap[r]!, heap[m]!)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    return top;
  }
}
