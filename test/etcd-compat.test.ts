/**
 * etcdctl compatibility: runs one sequence of etcdctl commands against a real etcd and against
 * shoal's etcd API, and requires identical results once per-server identity (ids, terms,
 * endpoints, versions, sizes, timings) is masked: same exit codes, revisions, versions, values and
 * error messages. Each error step also checks that etcd really produced that error, so the
 * comparison cannot pass by both servers failing in the same uninteresting way.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { etcdInstalled, type RunningEtcd, startEtcd } from './support/etcd-process.js';
import { etcdctl, normalize } from './support/etcdctl.js';
import { type RunningShoal, startShoal } from './support/shoal-server.js';

interface Step {
  args: string[];
  stdin?: string | Buffer;
  /** When set, etcd's stderr must contain this text (the step exercises that error). */
  expectError?: string;
  /** When set, etcd's output must contain this text (a sanity check on the reference). */
  expectOut?: string;
}

const compacted = 'etcdserver: mvcc: required revision has been compacted';
const futureRevision = 'etcdserver: mvcc: required revision is a future revision';

/** 1.6 MiB: above etcd's default 1.5 MiB request limit but below the transport's 2 MiB. */
const largeValue = Buffer.alloc(1.6 * 1024 * 1024, 'x');

const txnInput = (compares: string[], success: string[], failure: string[]): string =>
  `${compares.join('\n')}\n\n${success.join('\n')}\n\n${failure.join('\n')}\n\n`;

const steps: Step[] = [
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
  { args: ['get', '', '--from-key', '--keys-only'] },
];

describe('etcdctl against etcd and shoal', { skip: etcdMissingReason() }, () => {
  let etcd: RunningEtcd;
  let shoal: RunningShoal;

  before(async () => {
    [etcd, shoal] = await Promise.all([startEtcd(), startShoal()]);
  });

  after(async () => {
    await Promise.all([etcd?.stop(), shoal?.close()]);
  });

  test('every step gives the same normalized result on both servers', async () => {
    // Endpoints are given without a scheme; see the harness notes on HTTP/2 :authority.
    const shoalEndpoint = `127.0.0.1:${shoal.port}`;
    for (const [index, step] of steps.entries()) {
      const label = `step ${index}: etcdctl ${step.args.join(' ')}`;
      const reference = await etcdctl(etcd.endpoint, step.args, step.stdin);
      const actual = await etcdctl(shoalEndpoint, step.args, step.stdin);
      if (step.expectError) {
        assert.ok(
          reference.stderr.includes(step.expectError),
          `${label}: etcd ${reference.stderr}`,
        );
        assert.notEqual(reference.code, 0, label);
      }
      if (step.expectOut) {
        const output = reference.stdout + reference.stderr;
        assert.ok(output.includes(step.expectOut), `${label}: etcd ${output}`);
      }
      assert.deepEqual(
        normalize(actual, shoalEndpoint),
        normalize(reference, etcd.endpoint),
        `${label}\n--- shoal stdout:\n${actual.stdout}\n--- etcd stdout:\n${reference.stdout}`,
      );
    }
  });
});

function etcdMissingReason(): string | false {
  return etcdInstalled()
    ? false
    : 'etcd and etcdctl are not installed (apt-get install etcd-server etcd-client)';
}
