/**
 * A linearizability checker for histories of concurrent register operations (read, write,
 * compare-and-swap) on named keys. It follows Wing & Gong's search as improved by Lowe: walk the
 * history's call and return events in time order, tentatively linearize any operation whose call
 * has been seen, backtrack when a return is reached before its operation was linearized, and
 * memoize (set of linearized operations, register state) pairs so no configuration is explored
 * twice. Keys are independent registers, so the history is split per key and each part checked
 * alone (linearizability is compositional). Operations whose outcome is unknown (a timeout, a lost
 * connection) are given an infinitely late return: they may take effect at any point after their
 * call, or never. Pure TypeScript, no I/O, deterministic.
 */

/** A register's value; null means the key does not exist. */
export type RegisterValue = string | null;

export type OpInput =
  | { kind: 'read' }
  | { kind: 'write'; value: string }
  /** Sets `value` only if the register currently holds `expected` (null: only if absent). */
  | { kind: 'cas'; expected: RegisterValue; value: string };

export type OpOutput =
  | { kind: 'read'; value: RegisterValue }
  | { kind: 'write' }
  | { kind: 'cas'; succeeded: boolean }
  /** The client does not know whether the operation took effect. */
  | { kind: 'unknown' };

export interface Operation {
  /** Unique within the history; used in reports. */
  id: number;
  clientId: number;
  key: string;
  input: OpInput;
  output: OpOutput;
  /** When the client sent the request (any monotonic clock, same for all clients). */
  invokeTime: number;
  /** When the client got the answer; ignored (treated as +Infinity) when the output is unknown. */
  returnTime: number;
}

export type CheckResult =
  | { linearizable: true }
  | {
      linearizable: false;
      key: string;
      /** The longest sequence of this key's operations the search could linearize. */
      longestPrefix: Operation[];
      /** Operations that returned before any consistent place for them was found. */
      stuck: Operation[];
      explanation: string;
    }
  | { linearizable: 'unknown'; key: string; reason: string };

/** Bound on distinct (linearized set, state) configurations explored per key. */
export const searchStatesMax = 2_000_000;

/** The register model: the state after `op` from `state`, or undefined when the output is impossible. */
export function step(state: RegisterValue, op: Operation): RegisterValue | undefined {
  const { input, output } = op;
  if (output.kind === 'unknown') {
    // Taking effect is the only possibility considered here; "never" is covered by linearizing
    // the operation after everything else, which its infinite return time allows.
    if (input.kind === 'read') return state;
    if (input.kind === 'write') return input.value;
    return state === input.expected ? input.value : state;
  }
  switch (input.kind) {
    case 'read':
      return output.kind === 'read' && output.value === state ? state : undefined;
    case 'write':
      return output.kind === 'write' ? input.value : undefined;
    case 'cas': {
      if (output.kind !== 'cas') return undefined;
      const matches = state === input.expected;
      if (output.succeeded !== matches) return undefined;
      return matches ? input.value : state;
    }
  }
}

/** Checks a whole history, key by key; the first key that fails is reported. */
export function checkLinearizable(
  history: readonly Operation[],
  initial: RegisterValue = null,
): CheckResult {
  const byKey = new Map<string, Operation[]>();
  for (const op of history) {
    // A read that never returned constrains nothing; dropping it keeps the search small.
    if (op.output.kind === 'unknown' && op.input.kind === 'read') continue;
    const list = byKey.get(op.key) ?? [];
    list.push(op);
    byKey.set(op.key, list);
  }
  for (const [key, ops] of [...byKey].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const result = checkKey(key, ops, initial);
    if (result.linearizable !== true) return result;
  }
  return { linearizable: true };
}

/** One call or return in the doubly linked event list the search lifts operations out of. */
interface Event {
  isCall: boolean;
  op: number;
  match: Event | null;
  prev: Event | null;
  next: Event | null;
}

function returnTimeOf(op: Operation): number {
  return op.output.kind === 'unknown' ? Number.POSITIVE_INFINITY : op.returnTime;
}

/** Builds the time-ordered event list; a call sorts before a return at the same time (overlap). */
function buildEvents(ops: readonly Operation[]): Event {
  const raw: { time: number; isCall: boolean; op: number }[] = [];
  ops.forEach((op, i) => {
    if (!(returnTimeOf(op) >= op.invokeTime)) {
      throw new RangeError(`operation ${op.id} returns before it is invoked`);
    }
    raw.push({ time: op.invokeTime, isCall: true, op: i });
    raw.push({ time: returnTimeOf(op), isCall: false, op: i });
  });
  raw.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? a.op - b.op : a.isCall ? -1 : 1));
  const head: Event = { isCall: false, op: -1, match: null, prev: null, next: null };
  let last = head;
  const calls = new Map<number, Event>();
  for (const r of raw) {
    const event: Event = { isCall: r.isCall, op: r.op, match: null, prev: last, next: null };
    if (r.isCall) calls.set(r.op, event);
    else {
      const call = calls.get(r.op)!;
      call.match = event;
      event.match = call;
    }
    last.next = event;
    last = event;
  }
  return head;
}

function lift(call: Event): void {
  for (const e of [call, call.match!]) {
    e.prev!.next = e.next;
    if (e.next) e.next.prev = e.prev;
  }
}

function unlift(call: Event): void {
  for (const e of [call.match!, call]) {
    e.prev!.next = e;
    if (e.next) e.next.prev = e;
  }
}

function checkKey(key: string, ops: readonly Operation[], initial: RegisterValue): CheckResult {
  const head = buildEvents(ops);
  const linearized = new Uint8Array(ops.length);
  const seen = new Set<string>();
  const stack: { call: Event; state: RegisterValue }[] = [];
  let longest: number[] = [];
  let stuck: number[] = [];
  let state = initial;
  let entry = head.next;
  while (head.next !== null) {
    if (entry === null) throw new Error('linearizability search ran off the event list');
    if (entry.isCall) {
      const next = step(state, ops[entry.op]!);
      if (next !== undefined) {
        linearized[entry.op] = 1;
        const config = `${Buffer.from(linearized).toString('base64')}|${JSON.stringify(next)}`;
        if (!seen.has(config)) {
          if (seen.size >= searchStatesMax) {
            return { linearizable: 'unknown', key, reason: `explored ${searchStatesMax} states` };
          }
          seen.add(config);
          stack.push({ call: entry, state });
          state = next;
          lift(entry);
          entry = head.next;
          continue;
        }
        linearized[entry.op] = 0;
      }
      entry = entry.next;
      continue;
    }
    // A return whose operation is not linearized yet: this path is a dead end.
    if (stack.length > longest.length) {
      longest = stack.map((s) => s.call.op);
      stuck = pendingReturns(head);
    }
    const top = stack.pop();
    if (top === undefined) {
      return counterexample(key, ops, longest, stuck.length > 0 ? stuck : pendingReturns(head));
    }
    linearized[top.call.op] = 0;
    state = top.state;
    unlift(top.call);
    entry = top.call.next;
  }
  return { linearizable: true };
}

/** The operations whose return comes first among those not yet linearized. */
function pendingReturns(head: Event): number[] {
  for (let e = head.next; e !== null; e = e.next) if (!e.isCall) return [e.op];
  return [];
}

function counterexample(
  key: string,
  ops: readonly Operation[],
  longest: number[],
  stuck: number[],
): CheckResult {
  const prefix = longest.map((i) => ops[i]!);
  const blocked = stuck.map((i) => ops[i]!);
  const describe = (op: Operation) =>
    `#${op.id} client ${op.clientId} ${JSON.stringify(op.input)} -> ${JSON.stringify(op.output)} [${op.invokeTime}, ${returnTimeOf(op)}]`;
  const explanation = [
    `key ${JSON.stringify(key)} is not linearizable.`,
    `Longest linearizable prefix (${prefix.length} ops):`,
    ...prefix.map((op) => `  ${describe(op)}`),
    'No consistent point was found for:',
    ...blocked.map((op) => `  ${describe(op)}`),
  ].join('\n');
  return { linearizable: false, key, longestPrefix: prefix, stuck: blocked, explanation };
}
