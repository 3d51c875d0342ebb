/**
 * The etcdctl command sequence the comparison tests run against etcd and shoal (KV, txn,
 * compaction errors, size limits, endpoint and member commands, lock, snapshot, leases), and the
 * runner that sends each step to both and requires identical normalized results. Single-member
 * servers run it in etcd-compat.test.ts, 3-member clusters in etcd-cluster-compat.test.ts.
 */
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdctl, normalize } from './etcdctl.js';

export interface Step {
  /** `{lease}` is replaced by the lease id (hex) this server granted in an earlier step. */
  args: string[];
  /** Remember the ID of this step's JSON output as the `{lease}` of the following steps. */
  saveLease?: boolean;
  stdin?: string | Buffer;
  /** When set, etcd's stderr must contain this text (the step exercises that error). */
  expectError?: string;
  /** When set, etcd's output must contain this text (a sanity check on the reference). */
  expectOut?: string;
  /** Give etcdctl the endpoint as an http:// URL (it then sends the URL as :authority). */
  url?: boolean;
  /** In a cluster, always send this step to the leader (see `compareSteps`). */
  leaderOnly?: boolean;
}

const compacted = 'etcdserver: mvcc: required revision has been compacted';
const futureRevision = 'etcdserver: mvcc: required revision is a future revision';

/** 1.6 MiB: above etcd's default 1.5 MiB request limit but below the transport's 2 MiB. */
const largeValue = Buffer.alloc(1.6 * 1024 * 1024, 'x');

/** Where `snapshot save` writes (the same path for both servers, removed afterwards). */
export const snapshotPath = join(tmpdir(), `shoal-compat-${process.pid}.snapshot`);

const txnInput = (compares: string[], success: string[], failure: string[]): string =>
  `${compares.join('\n')}\n\n${success.join('\n')}\n\n${failure.join('\n')}\n\n`;

export const steps: Step[] = [
  { args: ['put', 'foo', 'bar'], expectOut: 'OK' },
  { args: ['put', 'foo1', 'v1'] },
  { args: ['put', 'foo2', 'v2'] },
  { args: ['put', 'fop', 'x'] },
  { args: ['put', 'a', 'first'] },
  { args: ['put', 'zz', 'last'] },
  { args: ['get', 'foo'], expectOut: 'bar' },
  { args: ['get', 'foo', '-w', 'json'], expectOut: '"revision":7' },
  { args: ['get', 'foo', '--prefix'] },
  { args: ['get', 'foo', '--prefix', '-w', 'json'] },
  { args: ['get', 'foo', '--from-key'] },
  { args: ['get', 'a', '--from-key', '--limit', '2', '-w', 'json'], expectOut: '"more":true' },
  { args: ['get', 'foo', '--prefix', '--sort-by=MODIFY', '--order=DESCEND'] },
  { args: ['get', 'foo', '--prefix', '--sort-by=VALUE', '--order=ASCEND', '-w', 'json'] },
  { args: ['get', 'foo', '--prefix', '--keys-only'] },
  { args: ['get', 'foo', '--prefix', '--print-value-only'] },
  { args: ['get', 'foo', '-w', 'fields'] },
  { args: ['get', 'missing', '-w', 'json'] },
  { args: ['put', 'foo', 'bar2', '--prev-kv', '-w', 'json'], expectOut: '"prev_kv"' },
  { args: ['get', 'foo', '--rev=2', '-w', 'json'] },
  { args: ['get', 'foo', '-w', 'json'], expectOut: '"version":2' },
  { args: ['put', 'foo', 'bar3', '--prev-kv'] },
  { args: ['del', 'fop', '--prev-kv', '-w', 'json'], expectOut: '"deleted":1' },
  { args: ['del', 'nothing-here', '-w', 'json'] },
  { args: ['del', 'foo', '--prefix'], expectOut: '3' },
  { args: ['get', 'foo', '--prefix', '--rev=9', '-w', 'json'] },
  { args: ['put', 'c', '1'] },
  {
    args: ['txn', '-i', '-w', 'json'],
    stdin: txnInput(
      ['version("c") = "1"', 'create("c") > "0"', 'mod("c") < "1000"', 'value("c") = "1"'],
      ['put c 2', 'get c'],
      ['put c failed'],
    ),
    expectOut: '"succeeded":true',
  },
  {
    args: ['txn', '-i'],
    stdin: txnInput(['value("c") = "1"'], ['put c wrong'], ['put c 3', 'get c', 'del a']),
    expectOut: 'FAILURE',
  },
  {
    args: ['txn', '-w', 'json'],
    stdin: txnInput(['version("absent") = "0"'], ['put absent here'], []),
    expectOut: '"succeeded":true',
  },
  {
    args: ['txn'],
    stdin: txnInput(['value("absent2") = ""'], ['put x y'], ['get c']),
    expectOut: 'FAILURE',
  },
  { args: ['get', 'c', '-w', 'json'] },
  { args: ['compact', '5'], expectOut: 'compacted revision 5' },
  { args: ['get', 'foo', '--rev=3'], expectError: compacted },
  { args: ['get', 'foo', '--rev=5', '-w', 'json'] },
  { args: ['compact', '4'], expectError: compacted },
  { args: ['compact', '5'], expectError: compacted },
  { args: ['compact', '100000'], expectError: futureRevision },
  { args: ['get', 'c', '--rev=100000'], expectError: futureRevision },
  { args: ['get', ''], expectError: 'etcdserver: key is not provided' },
  { args: ['put', '', 'v'], expectError: 'etcdserver: key is not provided' },
  { args: ['put', 'big'], stdin: largeValue, expectError: 'etcdserver: request is too large' },
  { args: ['get', 'big', '-w', 'json'] },
  { args: ['endpoint', 'status', '-w', 'json'], expectOut: '"revision":' },
  { args: ['endpoint', 'status'] },
  { args: ['endpoint', 'health'], expectOut: 'is healthy' },
  { args: ['member', 'list', '-w', 'json'] },
  { args: ['endpoint', 'hashkv', '-w', 'json'], expectOut: '"hash":' },
  { args: ['endpoint', 'status', '-w', 'json'], url: true, expectOut: '"revision":' },
  { args: ['endpoint', 'status'], url: true, expectOut: 'http://' },
  { args: ['endpoint', 'health'], url: true, expectOut: 'is healthy' },
  { args: ['endpoint', 'hashkv'], url: true, expectOut: 'http://' },
  { args: ['get', 'foo1', '-w', 'json'], url: true },
  { args: ['put', 'cfg/a', '1'] },
  { args: ['put', 'cfg/b', '2'] },
  { args: ['put', 'cfg/a', '--ignore-value', '-w', 'json'] },
  // Serializable: a follower may not have applied the puts yet, so it is read from the leader.
  { args: ['get', 'cfg/', '--prefix', '--consistency=s', '-w', 'json'], leaderOnly: true },
  { args: ['get', 'cfg/', '--prefix', '--hex'] },
  { args: ['get', 'cfg/', '--prefix', '-w', 'table'] },
  { args: ['get', 'cfg/', '--prefix', '--order=DESCEND', '--sort-by=CREATE', '--limit=1'] },
  { args: ['put', 'nokey', '--ignore-value'], expectError: 'etcdserver: key not found' },
  { args: ['lock', 'mutex1', 'echo', 'held'], expectOut: 'held' },
  { args: ['del', 'cfg/a', '--from-key', '-w', 'json'], expectOut: '"deleted":' },
  { args: ['compaction', '--physical', '3'], expectError: compacted },
  { args: ['alarm', 'list'] },
  { args: ['defrag'], expectOut: 'Finished defragmenting etcd member' },
  { args: ['snapshot', 'save', snapshotPath], expectOut: 'Snapshot saved at' },
  { args: ['get', '', '--from-key', '--keys-only'] },
  { args: ['lease', 'grant', '60', '-w', 'json'], saveLease: true, expectOut: '"TTL":60' },
  { args: ['put', 'leased', 'v', '--lease={lease}'], expectOut: 'OK' },
  { args: ['put', 'leased2', 'v', '--lease={lease}'] },
  { args: ['get', 'leased', '-w', 'json'], expectOut: '"lease":' },
  {
    args: ['lease', 'timetolive', '{lease}', '--keys', '-w', 'json'],
    expectOut: '"granted-ttl":60',
  },
  { args: ['lease', 'list', '-w', 'json'] },
  { args: ['lease', 'keep-alive', '--once', '{lease}'], expectOut: 'keepalived with TTL(60)' },
  { args: ['put', 'leased', 'v2', '--ignore-lease', '-w', 'json'] },
  { args: ['lease', 'revoke', '{lease}'], expectOut: 'revoked' },
  { args: ['get', 'leased', '--prefix', '-w', 'json'] },
  { args: ['lease', 'timetolive', '{lease}'], expectOut: 'already expired' },
  { args: ['lease', 'revoke', '{lease}'], expectError: 'etcdserver: requested lease not found' },
  { args: ['lease', 'keep-alive', '--once', '{lease}'], expectError: 'not found' },
  { args: ['lease', 'grant', '9000000001'], expectError: 'etcdserver: too large lease TTL' },
  { args: ['put', 'x', 'y', '--lease=1234'], expectError: 'etcdserver: requested lease not found' },
];

const asUrl = (endpoint: string) =>
  endpoint.startsWith('http://') ? endpoint : `http://${endpoint}`;

/** Where each step goes: the etcd and the shoal endpoint (host:port or http:// URL) for a step. */
export type StepTarget = (step: Step, index: number) => { etcd: string; shoal: string };

/**
 * Runs every step on both sides and compares. Error steps also check that etcd really produced
 * that error, so the comparison cannot pass by both servers failing in the same uninteresting way.
 */
export async function compareSteps(target: StepTarget): Promise<void> {
  const leases = { etcd: '', shoal: '' };
  const withLease = (args: string[], lease: string) => args.map((a) => a.replace('{lease}', lease));
  for (const [index, step] of steps.entries()) {
    const label = `step ${index}: etcdctl ${step.args.join(' ')}`;
    const hosts = target(step, index);
    const etcdEndpoint = step.url ? asUrl(hosts.etcd) : hosts.etcd;
    const endpoint = step.url ? asUrl(hosts.shoal) : hosts.shoal;
    const reference = await etcdctl(etcdEndpoint, withLease(step.args, leases.etcd), step.stdin);
    const actual = await etcdctl(endpoint, withLease(step.args, leases.shoal), step.stdin);
    if (step.saveLease) {
      // Read the id as text: lease ids exceed 2^53, which JSON.parse would round.
      const idOf = (stdout: string) => BigInt(/"ID":(\d+)/.exec(stdout)![1]!).toString(16);
      leases.etcd = idOf(reference.stdout);
      leases.shoal = idOf(actual.stdout);
    }
    if (step.expectError) {
      assert.ok(reference.stderr.includes(step.expectError), `${label}: etcd ${reference.stderr}`);
      assert.notEqual(reference.code, 0, label);
    }
    if (step.expectOut) {
      const output = reference.stdout + reference.stderr;
      assert.ok(output.includes(step.expectOut), `${label}: etcd ${output}`);
    }
    assert.deepEqual(
      normalize(actual, endpoint),
      normalize(reference, etcdEndpoint),
      `${label}\n--- shoal stdout:\n${actual.stdout}\n--- etcd stdout:\n${reference.stdout}`,
    );
  }
}
