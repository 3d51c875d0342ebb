/**
 * A binary min-heap of simulator events ordered by time, then priority, then insertion order, so
 * that runs are exactly reproducible.
 */

export interface Timed {
  readonly atMs: number;
  /** Lower runs first among events at the same time. */
  readonly priority: number;
}

interface Slot<T> {
  readonly event: T;
  readonly order: number;
}

export class EventQueue<T extends Timed> {
  private readonly heap: Slot<T>[] = [];
  private nextOrder = 0;

  get size(): number {
    return this.heap.length;
  }

  push(event: T): void {
    this.heap.push({ event, order: this.nextOrder++ });
    let index = this.heap.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!this.less(index, parent)) break;
      this.swap(index, parent);
      index = parent;
    }
  }

  peek(): T | undefined {
    return this.heap[0]?.event;
  }

  pop(): T | undefined {
    const top = this.heap[0];
    if (top === undefined) return undefined;
    const last = this.heap.pop()!;
    if (this.heap.length > 0) {
      this.heap[0] = last;
      this.siftDown(0);
    }
    return top.event;
  }

  private siftDown(start: number): void {
    let index = start;
    for (;;) {
      const left = 2 * index + 1;
      const right = left + 1;
      let smallest = index;
      if (left < this.heap.length && this.less(left, smallest)) smallest = left;
      if (right < this.heap.length && this.less(right, smallest)) smallest = right;
      if (smallest === index) return;
      this.swap(index, smallest);
      index = smallest;
    }
  }

  private less(a: number, b: number): boolean {
    const left = this.heap[a]!;
    const right = this.heap[b]!;
    if (left.event.atMs !== right.event.atMs) return left.event.atMs < right.event.atMs;
    if (left.event.priority !== right.event.priority) {
      return left.event.priority < right.event.priority;
    }
    return left.order < right.order;
  }

  private swap(a: number, b: number): void {
    const held = this.heap[a]!;
    this.heap[a] = this.heap[b]!;
    this.heap[b] = held;
  }
}
