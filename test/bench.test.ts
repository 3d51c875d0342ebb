/**
 * `shoal bench` end to end against a real single-member etcd: put writes exactly the keys it
 * reports, range reads them, the JSON output's counts add up (skipped, with a message, only when
 * etcd is not installed). With `--protocol native`, every subcommand runs against a real shoal
 * member through its peer port, and the keys it wrote are read back through ShoalClient.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { after, before, describe, it, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ShoalClient } from '../src/client/index.js';
import { etcdInstalled, type RunningEtcd, startEtcd } from './support/etcd-process.js';
import { etcdctl } from './support/etcdctl.js';
import { ProcessCluster } from './support/member-process.js';

const shoalBin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'shoal.mjs');
const benchTimeoutMs = 60_000;
const skip = etcdInstalled() ? false : 'etcd and etcdctl are not installed (needed for this suite)';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function shoal(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [shoalBin, ...args],
      { timeout: benchTimeoutMs },
      (error, stdout, stderr) => {
        resolve({
          code: error ? (typeof error.code === 'number' ? error.code : -1) : 0,
          stdout,
          stderr,
        });
      },
    );
  });
}

let etcd: RunningEtcd | undefined;
before(async () => {
  if (!skip) etcd = await startEtcd();
});
after(async () => {
  await etcd?.stop();
});

test('bench put writes the keys it reports and bench range reads them', { skip }, async () => {
  const endpoint = etcd!.endpoint;
  const put = await shoal([
    'bench',
    'put',
    '--endpoints',
    endpoint,
    '--conns',
    '2',
    '--clients',
    '4',
    '--total',
    '25',
    '--key-size',
    '6',
    '--val-size',
    '32',
    '--key-space-size',
    '25',
    '--sequential-keys',
    '--json',
    '--quiet',
  ]);
  assert.equal(put.code, 0, put.stderr);
  const putResult = JSON.parse(put.stdout);
  assert.equal(putResult.command, 'put');
  assert.equal(putResult.succeeded, 25);
  assert.equal(putResult.failed, 0);
  assert.equal(putResult.latency.count, 25);
  assert.ok(putResult.latency.p50Ms > 0 && putResult.latency.p99Ms >= putResult.latency.p50Ms);
  assert.ok(putResult.latency.maxMs >= putResult.latency.p99Ms);
  // The full histogram kept for bench:compare's pooling stays out of the JSON.
  assert.equal(putResult.latencyHistogram, undefined);

  // Sequential keys 000000..000024, each written once with a 32-byte value.
  const listed = await etcdctl(endpoint, ['get', '000000', '000025', '-w', 'json']);
  assert.equal(listed.code, 0, listed.stderr);
  const kvs = JSON.parse(listed.stdout).kvs as Array<{
    key: string;
    value: string;
    version: number;
  }>;
  assert.equal(kvs.length, 25);
  assert.equal(Buffer.from(kvs[24]!.key, 'base64').toString(), '000024');
  assert.equal(Buffer.from(kvs[0]!.value, 'base64').length, 32);
  assert.ok(kvs.every((kv) => kv.version === 1));

  for (const consistency of ['l', 's']) {
    const range = await shoal([
      'bench',
      'range',
      '000003',
      '--endpoints',
      endpoint,
      '--clients',
      '3',
      '--total',
      '10',
      '--consistency',
      consistency,
      '--json',
      '--quiet',
    ]);
    assert.equal(range.code, 0, range.stderr);
    const rangeResult = JSON.parse(range.stdout);
    assert.equal(rangeResult.succeeded, 10);
    assert.equal(rangeResult.latency.count, 10);
    assert.match(rangeResult.command, consistency === 'l' ? /linearizable/ : /serializable/);
  }
});

test('bench txn and watch-latency report their counts', { skip }, async () => {
  const endpoint = etcd!.endpoint;
  const txn = await shoal([
    'bench',
    'txn',
    '--endpoints',
    endpoint,
    '--total',
    '8',
    '--key-size',
    '4',
    '--key-space-size',
    '1',
    '--json',
    '--quiet',
  ]);
  assert.equal(txn.code, 0, txn.stderr);
  assert.equal(JSON.parse(txn.stdout).succeeded, 8);
  const got = await etcdctl(endpoint, ['get', '0000', '-w', 'json']);
  assert.equal(JSON.parse(got.stdout).kvs[0].version, 8, 'eight txn puts to the one key');

  const watch = await shoal([
    'bench',
    'watch-latency',
    '--endpoints',
    endpoint,
    '--streams',
    '2',
    '--watchers-per-stream',
    '3',
    '--total',
    '5',
    '--rate',
    '200',
    '--key-size',
    '5',
    '--json',
    '--quiet',
  ]);
  assert.equal(watch.code, 0, watch.stderr);
  const watchResult = JSON.parse(watch.stdout);
  assert.equal(watchResult.succeeded, 5);
  assert.equal(watchResult.latency.count, 30, '6 watchers each timed 5 events');
});

describe('bench --protocol native against a shoal member', { timeout: 120_000 }, () => {
  let cluster: ProcessCluster;
  let endpoint: string;
  before(async () => {
    cluster = await ProcessCluster.plan(1);
    await cluster.startAll();
    endpoint = `127.0.0.1:${cluster.members[0]!.spec.peerPort}`;
  });
  after(async () => {
    await cluster?.stopAll();
  });

  const native = async (args: string[]) => {
    const run = await shoal([
      ...args,
      '--protocol',
      'native',
      '--endpoints',
      endpoint,
      '--json',
      '--quiet',
    ]);
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout);
    assert.equal(result.failed, 0, JSON.stringify(result.errors));
    assert.deepEqual(result.errors, {});
    assert.ok(result.latency.p50Ms > 0 && result.latency.p99Ms >= result.latency.p50Ms);
    assert.ok(result.throughputPerSec > 0);
    return result;
  };

  it('put writes the keys it reports; range, txn and watch-latency count theirs', async () => {
    const put = await native([
      'bench',
      'put',
      '--conns',
      '2',
      '--clients',
      '4',
      '--total',
      '30',
      '--key-size',
      '6',
      '--val-size',
      '16',
      '--key-space-size',
      '30',
      '--sequential-keys',
    ]);
    assert.equal(put.command, 'put');
    assert.equal(put.succeeded, 30);
    assert.equal(put.latency.count, 30);
    const client = new ShoalClient({ endpoints: [endpoint] });
    try {
      const written = await client.range('000000', { rangeEnd: '000030' });
      assert.equal(written.kvs.length, 30);
      assert.ok(written.kvs.every((kv) => kv.version === 1 && kv.value.length === 16));

      for (const consistency of ['l', 's']) {
        const range = await native([
          'bench',
          'range',
          '000003',
          '--clients',
          '3',
          '--total',
          '12',
          '--consistency',
          consistency,
        ]);
        assert.equal(range.succeeded, 12);
        assert.equal(range.latency.count, 12);
        assert.match(range.command, consistency === 'l' ? /linearizable/ : /serializable/);
      }

      const txn = await native([
        'bench',
        'txn',
        '--total',
        '8',
        '--key-size',
        '4',
        '--key-space-size',
        '1',
      ]);
      assert.equal(txn.succeeded, 8);
      assert.equal((await client.get('0000'))?.version, 8, 'eight txn puts to the one key');

      const watch = await native([
        'bench',
        'watch-latency',
        '--streams',
        '2',
        '--watchers-per-stream',
        '3',
        '--total',
        '5',
        '--rate',
        '200',
        '--key-size',
        '5',
      ]);
      assert.equal(watch.succeeded, 5);
      assert.equal(watch.latency.count, 30, '6 watchers each timed 5 events');
      assert.equal((await client.get('00000'))?.version, 5);
    } finally {
      await client.close();
    }
  });
});
