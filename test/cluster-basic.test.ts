/**
 * A real 3-member shoal cluster (child processes) driven by the real etcdctl 3.4: it elects a
 * leader, and put/get/txn/del/compaction work through every member; member list, endpoint
 * health, snapshot save, /health and /metrics answer.
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { etcdctl } from './support/etcdctl.js';
import { ProcessCluster, waitForLeader } from './support/member-process.js';

describe('3-member cluster with etcdctl', { timeout: 60_000 }, () => {
  let cluster: ProcessCluster;

  before(async () => {
    cluster = await ProcessCluster.plan(3);
    await cluster.startAll();
  });

  after(async () => {
    await cluster?.stopAll();
  });

  it('elects one leader that every member agrees on', async () => {
    const leader = await waitForLeader(cluster.members);
    assert.ok(cluster.members.includes(leader));
  });

  it('serves put, get, txn, del through every member', async () => {
    for (const [i, member] of cluster.members.entries()) {
      const put = await etcdctl(member.endpoint, ['put', `key-${i}`, `value-${i}`]);
      assert.equal(put.stdout.trim(), 'OK', put.stderr);
    }
    for (const member of cluster.members) {
      const get = await etcdctl(member.endpoint, ['get', 'key-', '--prefix']);
      assert.equal(get.stdout.trim(), 'key-0\nvalue-0\nkey-1\nvalue-1\nkey-2\nvalue-2', get.stderr);
      const serializable = await etcdctl(member.endpoint, ['get', 'key-0', '--consistency=s']);
      assert.equal(serializable.code, 0, serializable.stderr);
    }
    const txn = await etcdctl(
      cluster.members[1]!.endpoint,
      ['txn'],
      'value("key-0") = "value-0"\n\nput key-0 swapped\n\nput key-0 failed\n\n',
    );
    assert.equal(txn.stdout.trim(), 'SUCCESS\n\nOK', txn.stderr);
    const read = await etcdctl(cluster.members[2]!.endpoint, [
      'get',
      'key-0',
      '--print-value-only',
    ]);
    assert.equal(read.stdout.trim(), 'swapped');
    const del = await etcdctl(cluster.members[2]!.endpoint, ['del', 'key-1']);
    assert.equal(del.stdout.trim(), '1');
    const gone = await etcdctl(cluster.members[0]!.endpoint, ['get', 'key-1']);
    assert.equal(gone.stdout.trim(), '');
  });

  it('compacts through a follower and refuses reads below the compaction', async () => {
    const put = await etcdctl(cluster.members[0]!.endpoint, [
      'put',
      'compact-me',
      'x',
      '-w',
      'json',
    ]);
    const revision = (JSON.parse(put.stdout) as { header: { revision: number } }).header.revision;
    const compact = await etcdctl(cluster.members[2]!.endpoint, ['compaction', String(revision)]);
    assert.match(compact.stdout, new RegExp(`compacted revision ${revision}`), compact.stderr);
    const old = await etcdctl(cluster.members[1]!.endpoint, [
      'get',
      'compact-me',
      `--rev=${revision - 1}`,
    ]);
    assert.notEqual(old.code, 0);
    assert.match(old.stderr, /required revision has been compacted/);
  });

  it('lists members with names, URLs and learner flags', async () => {
    const list = await etcdctl(cluster.members[0]!.endpoint, ['member', 'list']);
    const lines = list.stdout.trim().split('\n').sort();
    assert.equal(lines.length, 3, list.stdout);
    for (const member of cluster.members) {
      const line = lines.find((l) => l.includes(`, ${member.spec.name}, `));
      assert.ok(line, `${member.spec.name} missing from ${list.stdout}`);
      assert.ok(line.includes(member.peerUrl) && line.includes(`http://${member.endpoint}`), line);
      assert.ok(line.endsWith(', false'), line);
    }
  });

  it('reports health over etcdctl and HTTP, and Prometheus metrics', async () => {
    const health = await etcdctl(cluster.endpoints(), ['endpoint', 'health']);
    assert.equal(health.code, 0, health.stderr);
    assert.equal((health.stderr.match(/is healthy/g) ?? []).length, 3, health.stderr);
    const response = await fetch(`${cluster.members[0]!.metricsUrl}/health`);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { health: 'true' });
    const onClientPort = await fetch(`http://${cluster.members[1]!.endpoint}/health`);
    assert.deepEqual(await onClientPort.json(), { health: 'true' });
    const gateway = await fetch(`http://${cluster.members[2]!.endpoint}/v3/kv/range`, {
      method: 'POST',
      body: JSON.stringify({ key: Buffer.from('key-2').toString('base64') }),
    });
    const range = (await gateway.json()) as { kvs: { value: string }[] };
    assert.equal(Buffer.from(range.kvs[0]!.value, 'base64').toString(), 'value-2');
    const metrics = await (await fetch(`${cluster.members[0]!.metricsUrl}/metrics`)).text();
    assert.match(metrics, /etcd_server_proposals_committed_total\{member="m1"\} [1-9]/);
    assert.match(metrics, /grpc_server_handled_total\{method="KV.Put",code="0",member="m1"\}/);
    assert.match(metrics, /etcd_disk_wal_fsync_duration_seconds_count/);
  });

  it('saves a snapshot that etcdctl accepts (padded, with the sha256 trailer)', async () => {
    const path = join(cluster.root, 'backup.db');
    const save = await etcdctl(cluster.members[1]!.endpoint, ['snapshot', 'save', path]);
    assert.equal(save.code, 0, save.stderr);
    assert.match(save.stdout, /Snapshot saved/);
    assert.equal(statSync(path).size % 512, 32);
  });
});
