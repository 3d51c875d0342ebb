/**
 * Drives concurrent clients doing reads, writes and compare-and-swaps (a Txn comparing the value,
 * or version 0 for "absent") on a few keys through the etcd gRPC API, and records the history for
 * the linearizability checker. The choice of operations is seeded; the interleaving is whatever
 * the server and the event loop produce, which is the point. Calls that fail with a status that
 * leaves their outcome open (deadline, unavailable) are recorded as unknown.
 */
import { performance } from 'node:perf_hooks';
import { EtcdTestClient, type Message } from './etcd-client.js';
import type { Operation, OpInput, OpOutput, RegisterValue } from './linearizability.js';

export interface WorkloadOptions {
  address: string;
  clients: number;
  opsPerClient: number;
  keys: string[];
  seed: number;
  /** Key prefix, so runs against one server do not see each other's keys. */
  prefix: string;
  /** Per-call deadline; a call past it is recorded with an unknown outcome. */
  deadlineMs?: number;
}

/** A small seeded PRNG (mulberry32); the workload must be reproducible from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ambiguousCodes = new Set([4 /* DEADLINE_EXCEEDED */, 14 /* UNAVAILABLE */]);

function registerValueOf(response: Message): RegisterValue {
  const kvs = response.kvs as { value: Buffer }[];
  return kvs.length > 0 ? kvs[0]!.value.toString('utf8') : null;
}

export async function perform(
  client: EtcdTestClient,
  key: string,
  input: OpInput,
): Promise<OpOutput> {
  const keyBytes = Buffer.from(key);
  if (input.kind === 'read')
    return { kind: 'read', value: registerValueOf(await client.range({ key: keyBytes })) };
  if (input.kind === 'write') {
    await client.put({ key: keyBytes, value: Buffer.from(input.value) });
    return { kind: 'write' };
  }
  const compare =
    input.expected === null
      ? { key: keyBytes, target: 0 /* VERSION */, result: 0 /* EQUAL */, version: 0 }
      : { key: keyBytes, target: 3 /* VALUE */, result: 0, value: Buffer.from(input.expected) };
  const response = await client.txn({
    compare: [compare],
    success: [{ requestPut: { key: keyBytes, value: Buffer.from(input.value) } }],
    failure: [],
  });
  return { kind: 'cas', succeeded: response.succeeded === true };
}

/** Runs the workload and returns every operation with its real-time interval. */
export async function runRegisterWorkload(options: WorkloadOptions): Promise<Operation[]> {
  const history: Operation[] = [];
  let nextId = 0;
  const runClient = async (clientId: number): Promise<void> => {
    const random = seededRandom(options.seed * 1000 + clientId);
    const client = new EtcdTestClient(options.address, options.deadlineMs);
    const lastSeen = new Map<string, RegisterValue>();
    try {
      for (let n = 0; n < options.opsPerClient; n++) {
        const key = `${options.prefix}${options.keys[Math.floor(random() * options.keys.length)]!}`;
        const roll = random();
        const value = `c${clientId}-${n}`;
        const input: OpInput =
          roll < 0.4
            ? { kind: 'read' }
            : roll < 0.7
              ? { kind: 'write', value }
              : { kind: 'cas', expected: lastSeen.get(key) ?? null, value };
        const invokeTime = performance.now();
        let output: OpOutput;
        try {
          output = await perform(client, key, input);
        } catch (error) {
          const code = (error as { code?: number }).code ?? -1;
          if (!ambiguousCodes.has(code)) throw error;
          output = { kind: 'unknown' };
        }
        const returnTime = performance.now();
        if (output.kind === 'read') lastSeen.set(key, output.value);
        if (output.kind === 'write' || (output.kind === 'cas' && output.succeeded)) {
          lastSeen.set(key, value);
        }
        history.push({ id: nextId++, clientId, key, input, output, invokeTime, returnTime });
      }
    } finally {
      client.close();
    }
  };
  await Promise.all(Array.from({ length: options.clients }, (_, i) => runClient(i)));
  return history;
}
