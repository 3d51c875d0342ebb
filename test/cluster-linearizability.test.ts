/**
 * Linearizability of a 3-member cluster under process faults: concurrent clients read, write and
 * compare-and-swap a few keys through the etcd gRPC API while a seeded nemesis SIGKILLs and
 * restarts members and freezes them with SIGSTOP/SIGCONT, one member at a time, so a majority is up
 * except for the moments a fault is being healed. The per-key history must be linearizable;
 * operations that failed or timed out count as unknown outcomes. The same workload and nemesis run
 * against a real 3-member etcd 3.4 cluster, which shows that the test passes on a correct system,
 * and against shoal through its native client (shoal/client), where the workers share one
 * ShoalClient, so that puts issued in the same turn travel as one putBatch call.
 * The seed is printed; SHOAL_SEED overrides it.
 */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { compare, op, ShoalClient } from '../src/client/index.js';
import { EtcdTestClient } from './support/etcd-client.js';
import { EtcdCluster } from './support/etcd-cluster.js';
import { etcdInstalled } from './support/etcd-process.js';
import {
  checkLinearizable,
  type Operation,
  type OpInput,
  type OpOutput,
  type RegisterValue,
} from './support/linearizability.js';
import { ProcessCluster } from './support/member-process.js';
import { perform, seededRandom } from './support/register-workload.js';

const SEED = process.env.SHOAL_SEED === undefined ? 20261124 : Number(process.env.SHOAL_SEED);
const CLIENTS = 6;
const KEYS = ['a', 'b', 'c', 'd'];
/** Per-client bound on operations; it also bounds the checker's search. */
const OPS_PER_CLIENT_MAX = 10_000;
/** A call past this deadline (a frozen or dead member) is recorded with an unknown outcome. */
const CALL_DEADLINE_MS = 1_500;
const NEMESIS_FAULTS = 8;
/** How long a fault is held, drawn from this range by the seeded nemesis. */
const FAULT_HOLD_MS = { min: 400, max: 1_500 };
/** Bound on the cluster agreeing on a leader again after a fault is healed. */
const RECOVERY_TIMEOUT_MS = 20_000;

/** What the nemesis needs from a member, so shoal and etcd members take the same faults. */
interface FaultTarget {
  name: string;
  endpoint: string;
  /** host:port of the member's native protocol (its peer port), for shoal members. */
  nativeEndpoint?: string;
  kill(): Promise<void>;
  restart(): Promise<void>;
  signal(name: 'SIGSTOP' | 'SIGCONT'): void;
}

interface RunResult {
  history: Operation[];
  faults: string[];
  /** When the nemesis healed its last fault (performance.now()). */
  nemesisEndMs: number;
}

describe('linearizability of a 3-member cluster under a nemesis', { timeout: 240_000 }, () => {
  describe('shoal', () => {
    let cluster: ProcessCluster;
    before(async () => {
      cluster = await ProcessCluster.plan(3);
      await cluster.startAll();
    });
    after(async () => {
      for (const member of cluster?.members ?? []) member.child?.kill('SIGCONT');
      await cluster?.stopAll();
    });

    test(`shoal is linearizable (seed ${SEED}; SHOAL_SEED overrides)`, async (t) => {
      const targets: FaultTarget[] = cluster.members.map((m) => ({
        name: m.spec.name,
        endpoint: m.endpoint,
        kill: () => m.stop('SIGKILL').then(() => undefined),
        restart: () => m.start(cluster.initialCluster(), 'new'),
        signal: (name) => void m.child?.kill(name),
      }));
      const result = await runWithNemesis(targets, SEED, grpcClients(targets));
      t.diagnostic(`seed ${SEED}; faults: ${result.faults.join(', ')}`);
      assertLinearizableAndRich(result, (line) => t.diagnostic(line));
    });

    test(`shoal is linearizable through its native client (seed ${SEED})`, async (t) => {
      const targets: FaultTarget[] = cluster.members.map((m) => ({
        name: m.spec.name,
        endpoint: m.endpoint,
        nativeEndpoint: `127.0.0.1:${m.spec.peerPort}`,
        kill: () => m.stop('SIGKILL').then(() => undefined),
        restart: () => m.start(cluster.initialCluster(), 'new'),
        signal: (name) => void m.child?.kill(name),
      }));
      const shared = new ShoalClient({
        endpoints: targets.map((target) => target.nativeEndpoint!),
        timeoutMs: CALL_DEADLINE_MS,
      });
      try {
        const result = await runWithNemesis(
          targets,
          SEED + 1,
          () => nativeClient(shared),
          'nemesis-native/',
        );
        t.diagnostic(`seed ${SEED + 1}; faults: ${result.faults.join(', ')}`);
        const batches = await Promise.all(
          targets.map((target) =>
            shared.stats(target.nativeEndpoint!).then(
              (stats) => stats.requests.putBatch ?? 0,
              () => 0,
            ),
          ),
        );
        t.diagnostic(`putBatch calls served since each member's last start: ${batches.join(', ')}`);
        assertLinearizableAndRich(result, (line) => t.diagnostic(line));
      } finally {
        await shared.close();
      }
    });
  });

  describe('real etcd', { skip: etcdInstalled() ? false : 'etcd is not installed' }, () => {
    let cluster: EtcdCluster;
    before(async () => {
      cluster = await EtcdCluster.start(3);
    });
    after(async () => {
      await cluster?.stopAll();
    });

    test(`etcd 3.4 is linearizable under the same workload (seed ${SEED})`, async (t) => {
      const targets: FaultTarget[] = cluster.members.map((m) => ({
        name: m.name,
        endpoint: m.endpoint,
        kill: () => m.stop('SIGKILL'),
        restart: () => m.start(cluster.initialCluster),
        signal: (name) => void m.child?.kill(name),
      }));
      const result = await runWithNemesis(targets, SEED, grpcClients(targets));
      t.diagnostic(`seed ${SEED}; faults: ${result.faults.join(', ')}`);
      assertLinearizableAndRich(result, (line) => t.diagnostic(line));
    });
  });
});

/** Checks the history, and that it exercised what it should so that a pass means something. */
function assertLinearizableAndRich(run: RunResult, note: (line: string) => void): void {
  const { history } = run;
  // Every client must have kept working through the whole fault schedule, or faults went untested.
  for (let clientId = 0; clientId < CLIENTS; clientId++) {
    const last = Math.max(
      ...history.filter((o) => o.clientId === clientId).map((o) => o.invokeTime),
    );
    assert.ok(last > run.nemesisEndMs, `client ${clientId} stopped before the nemesis finished`);
  }
  const count = (predicate: (op: Operation) => boolean) => history.filter(predicate).length;
  const unknown = count((o) => o.output.kind === 'unknown');
  note(`${history.length} operations, ${unknown} with unknown outcome`);
  assert.ok(count((o) => o.output.kind === 'cas' && o.output.succeeded) > 0, 'no cas succeeded');
  assert.ok(count((o) => o.output.kind === 'cas' && !o.output.succeeded) > 0, 'no cas failed');
  assert.ok(count((o) => o.output.kind === 'read' && o.output.value !== null) > 0, 'no read');
  assert.ok(count((o) => o.output.kind === 'write') > 20, 'too few acknowledged writes');
  const result = checkLinearizable(history);
  if (result.linearizable === 'unknown') assert.fail(`checker gave up: ${result.reason}`);
  assert.equal(result.linearizable, true, result.linearizable === false ? result.explanation : '');
}

/** Runs the clients until the nemesis has done its faults (or the clients their maximum). */
async function runWithNemesis(
  targets: FaultTarget[],
  seed: number,
  makeClient: (clientId: number) => RegisterClient,
  /** Keys are `${prefix}a` ...: every run on one cluster starts from keys no run has written. */
  prefix = 'nemesis/',
): Promise<RunResult> {
  const history: Operation[] = [];
  const faults: string[] = [];
  let nemesisDone = false;
  let nextId = 0;
  const clients = Array.from({ length: CLIENTS }, (_, clientId) =>
    runClient(
      clientId,
      makeClient(clientId),
      prefix,
      seed,
      () => nemesisDone,
      (op) => history.push({ ...op, id: nextId++ }),
    ),
  );
  try {
    await nemesis(targets, seededRandom(seed), faults);
  } finally {
    nemesisDone = true;
  }
  const nemesisEndMs = performance.now();
  await Promise.all(clients);
  return { history, faults, nemesisEndMs };
}

/** One worker's way to the cluster: it performs operations and learns of failures. */
interface RegisterClient {
  perform(key: string, input: OpInput): Promise<OpOutput>;
  /** The last operation failed (its outcome is unknown). */
  failed(): void;
  close(): void;
}

/**
 * gRPC workers: each has a connection to every member; it sticks to one member and moves to the
 * next after any failure, so a dead or frozen member costs it one unknown operation rather than
 * many.
 */
function grpcClients(targets: FaultTarget[]): (clientId: number) => RegisterClient {
  return (clientId) => {
    const connections = targets.map((t) => new EtcdTestClient(t.endpoint, CALL_DEADLINE_MS));
    let current = clientId % targets.length;
    return {
      perform: (key, input) => perform(connections[current]!, key, input),
      failed: () => {
        current = (current + 1) % targets.length;
      },
      close: () => {
        for (const connection of connections) connection.close();
      },
    };
  };
}

/** A native worker on the shared ShoalClient, which finds the leader and fails over itself. */
function nativeClient(client: ShoalClient): RegisterClient {
  return {
    perform: async (key, input) => {
      if (input.kind === 'read') {
        const kv = await client.get(key);
        return { kind: 'read', value: kv === undefined ? null : Buffer.from(kv.value).toString() };
      }
      if (input.kind === 'write') {
        await client.put(key, input.value);
        return { kind: 'write' };
      }
      const condition =
        input.expected === null
          ? compare(key).version('=', 0)
          : compare(key).value('=', input.expected);
      const response = await client.txn().if(condition).then(op.put(key, input.value)).commit();
      return { kind: 'cas', succeeded: response.succeeded };
    },
    failed: () => {},
    close: () => {},
  };
}

/** One worker: seeded operations, one at a time, until the nemesis is done (and a few after). */
async function runClient(
  clientId: number,
  client: RegisterClient,
  prefix: string,
  seed: number,
  done: () => boolean,
  record: (op: Omit<Operation, 'id'>) => void,
): Promise<void> {
  const random = seededRandom(seed * 1000 + clientId);
  const lastSeen = new Map<string, RegisterValue>();
  // A few operations run after the nemesis ends, so the healed cluster is checked too.
  let afterDone = 0;
  try {
    for (let n = 0; n < OPS_PER_CLIENT_MAX && afterDone < 10; n++) {
      if (done()) afterDone++;
      const key = KEYS[Math.floor(random() * KEYS.length)]!;
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
        output = await client.perform(`${prefix}${key}`, input);
      } catch {
        // Any failure leaves the outcome open: a write may have been committed before the member
        // died, been forwarded before the deadline, or be applied by a later leader.
        output = { kind: 'unknown' };
        client.failed();
      }
      const returnTime = performance.now();
      if (output.kind === 'read') lastSeen.set(key, output.value);
      if (output.kind === 'write' || (output.kind === 'cas' && output.succeeded)) {
        lastSeen.set(key, value);
      }
      record({ clientId, key, input, output, invokeTime, returnTime });
    }
  } finally {
    client.close();
  }
}

/**
 * The seeded nemesis: one fault at a time on one member (SIGKILL then restart, or SIGSTOP then
 * SIGCONT), held for a seeded time, then healed; the next fault waits until every member answers
 * and agrees on a leader, so a majority is up except while a fault is being healed.
 */
async function nemesis(targets: FaultTarget[], random: () => number, log: string[]) {
  let leader = await waitForAgreedLeader(targets);
  for (let i = 0; i < NEMESIS_FAULTS; i++) {
    // Half the faults hit the leader, where failover bugs live; kills and freezes alternate.
    const target =
      random() < 0.5 ? targets[leader]! : targets[Math.floor(random() * targets.length)]!;
    const kill = i % 2 === 0;
    const holdMs =
      FAULT_HOLD_MS.min + Math.floor(random() * (FAULT_HOLD_MS.max - FAULT_HOLD_MS.min));
    log.push(
      `${kill ? 'kill' : 'stop'} ${target.name}${target === targets[leader] ? ' (leader)' : ''} ${holdMs}ms`,
    );
    if (kill) await target.kill();
    else target.signal('SIGSTOP');
    // Holding a fault for a while is the fault itself, not synchronization with the system.
    await new Promise((resolve) => setTimeout(resolve, holdMs));
    if (kill) await target.restart();
    else target.signal('SIGCONT');
    leader = await waitForAgreedLeader(targets);
  }
}

/**
 * Waits (bounded) until every member answers Status with the same, non-zero leader; returns the
 * leader's index in `targets`.
 */
async function waitForAgreedLeader(targets: FaultTarget[]): Promise<number> {
  const deadline = performance.now() + RECOVERY_TIMEOUT_MS;
  const clients = targets.map((t) => new EtcdTestClient(t.endpoint, 1_000));
  try {
    while (performance.now() < deadline) {
      const statuses = await Promise.all(
        clients.map((c) =>
          c.status().then(
            (s) => ({
              leader: String(s.leader),
              self: String((s.header as { memberId?: string }).memberId),
            }),
            () => ({ leader: '0', self: '0' }),
          ),
        ),
      );
      const leader = statuses[0]!.leader;
      const index = statuses.findIndex((s) => s.self === leader);
      if (leader !== '0' && statuses.every((s) => s.leader === leader) && index >= 0) return index;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`members did not agree on a leader within ${RECOVERY_TIMEOUT_MS} ms`);
  } finally {
    for (const client of clients) client.close();
  }
}
