/**
 * Leases and watches on a 3-member cluster through etcdctl: a lease granted through a follower
 * keeps its key while kept alive (keep-alives forwarded to the leader) and the leader revokes it
 * once it expires; a watch on one member sees writes made through another.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { etcdctl } from './support/etcdctl.js';
import { ProcessCluster, waitFor, waitForLeader } from './support/member-process.js';

describe('leases and watches on a cluster', { timeout: 60_000 }, () => {
  let cluster: ProcessCluster;

  before(async () => {
    cluster = await ProcessCluster.plan(3);
    await cluster.startAll();
  });

  after(async () => {
    await cluster?.stopAll();
  });

  it('expires a lease on the leader and deletes its key', async () => {
    const leader = await waitForLeader(cluster.members);
    const follower = cluster.members.find((m) => m !== leader)!;
    const grant = await etcdctl(follower.endpoint, ['lease', 'grant', '3']);
    const id = /lease ([0-9a-f]+) granted with TTL\(3s\)/.exec(grant.stdout)?.[1];
    assert.ok(id, grant.stdout + grant.stderr);
    const put = await etcdctl(follower.endpoint, ['put', 'leased', 'v', `--lease=${id}`]);
    assert.equal(put.code, 0, put.stderr);
    const keep = await etcdctl(follower.endpoint, ['lease', 'keep-alive', '--once', id]);
    assert.match(keep.stdout, new RegExp(`lease ${id} keepalived with TTL\\(3\\)`), keep.stderr);
    const ttl = await etcdctl(follower.endpoint, ['lease', 'timetolive', id, '--keys']);
    assert.match(ttl.stdout, /attached keys\(\[leased\]\)/, ttl.stderr);
    await waitFor(
      'the expired lease to delete its key',
      async () => (await etcdctl(follower.endpoint, ['get', 'leased'])).stdout.trim() === '',
      15_000,
      250,
    );
    const gone = await etcdctl(leader.endpoint, ['lease', 'timetolive', id]);
    assert.match(gone.stdout, /already expired/);
  });

  it('delivers writes made through one member to a watch on another', async () => {
    const [watched, writer] = cluster.members;
    const watch = spawn(
      'etcdctl',
      [`--endpoints=${watched!.endpoint}`, 'watch', 'w/', '--prefix'],
      {
        env: { ...process.env, ETCDCTL_API: '3' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    watch.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    try {
      // The watch may start after the first put; keep writing until one is seen.
      await waitFor(
        'the watch to see a put made through another member',
        async () => {
          await etcdctl(writer!.endpoint, ['put', 'w/1', 'hello']);
          return output.includes('PUT\nw/1\nhello');
        },
        15_000,
        300,
      );
      await etcdctl(writer!.endpoint, ['del', 'w/1']);
      await waitFor('the delete event', () => output.includes('DELETE\nw/1'), 10_000);
    } finally {
      watch.kill('SIGKILL');
    }
  });
});
