/**
 * One member process on its own: the space quota raises etcd's NOSPACE alarm and refuses writes
 * with etcd's error; SIGKILL and restart with the same data dir keeps every acknowledged write;
 * SIGTERM exits cleanly; a bad flag exits with status 2 and names the flag.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { etcdctl } from './support/etcdctl.js';
import { ProcessCluster, waitForLeader } from './support/member-process.js';

const QUOTA_BYTES = 256 * 1024;
const VALUE = 'v'.repeat(16 * 1024);

describe('a single member process', { timeout: 60_000 }, () => {
  let cluster: ProcessCluster;

  before(async () => {
    cluster = await ProcessCluster.plan(1, [`--quota-backend-bytes=${QUOTA_BYTES}`]);
    await cluster.startAll();
  });

  after(async () => {
    await cluster?.stopAll();
  });

  it('keeps acknowledged writes across SIGKILL and restart', async () => {
    const member = cluster.members[0]!;
    await waitForLeader([member]);
    for (let i = 0; i < 5; i++) {
      const put = await etcdctl(member.endpoint, ['put', `durable/${i}`, `v${i}`]);
      assert.equal(put.code, 0, put.stderr);
    }
    await member.stop('SIGKILL');
    await member.start(cluster.initialCluster(), 'new');
    await waitForLeader([member]);
    const get = await etcdctl(member.endpoint, [
      'get',
      'durable/',
      '--prefix',
      '--print-value-only',
    ]);
    assert.equal(get.stdout.trim(), 'v0\nv1\nv2\nv3\nv4');
  });

  it("raises NOSPACE at the quota and refuses writes with etcd's error", async () => {
    const member = cluster.members[0]!;
    let refused = '';
    for (let i = 0; i < 64 && refused === ''; i++) {
      const put = await etcdctl(member.endpoint, ['put', `big/${i}`, VALUE]);
      if (put.code !== 0) refused = put.stderr;
    }
    assert.match(refused, /etcdserver: mvcc: database space exceeded/);
    const alarms = await etcdctl(member.endpoint, ['alarm', 'list']);
    assert.match(alarms.stdout, /alarm:NOSPACE/);
    const read = await etcdctl(member.endpoint, ['get', 'durable/0', '--print-value-only']);
    assert.equal(read.stdout.trim(), 'v0', 'reads still work');
    const small = await etcdctl(member.endpoint, ['put', 'small', 'x']);
    assert.match(small.stderr, /database space exceeded/, 'the alarm refuses every growing write');
    const deleted = await etcdctl(member.endpoint, ['del', 'big/', '--prefix']);
    assert.equal(deleted.code, 0, 'deletes are still accepted');
    await etcdctl(member.endpoint, ['alarm', 'disarm']);
    assert.equal((await etcdctl(member.endpoint, ['alarm', 'list'])).stdout.trim(), '');
  });

  it('exits with status 0 on SIGTERM', async () => {
    assert.equal(await cluster.members[0]!.stop('SIGTERM'), 0);
  });

  it('refuses a bad flag with status 2 and a message naming it', () => {
    const bin = fileURLToPath(new URL('../bin/shoal.mjs', import.meta.url));
    const result = spawnSync(
      process.execPath,
      [bin, 'start', '--heartbeat-interval=500', '--election-timeout=1000'],
      {
        encoding: 'utf8',
        timeout: 30_000,
      },
    );
    assert.equal(result.status, 2);
    assert.match(
      result.stderr,
      /--election-timeout\[1000ms\] should be at least 5 times --heartbeat-interval/,
    );
  });

  it('refuses a data dir it cannot create with status 1 and the path, instead of hanging', (t) => {
    // Node's recursive mkdir never returns under /proc (mkdir keeps failing with ENOENT there).
    if (!existsSync('/proc/self')) {
      t.skip('no /proc here');
      return;
    }
    const bin = fileURLToPath(new URL('../bin/shoal.mjs', import.meta.url));
    const result = spawnSync(
      process.execPath,
      [
        bin,
        'start',
        '--name',
        'x',
        '--data-dir',
        '/proc/shoal-test',
        '--listen-client-urls',
        'http://127.0.0.1:0',
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    assert.equal(result.status, 1, result.stderr);
    assert.match(
      result.stderr,
      /data dir \/proc\/shoal-test\/kv: cannot create \/proc\/shoal-test \(ENOENT\)/,
    );
  });
});
