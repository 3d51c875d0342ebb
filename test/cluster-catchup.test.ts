/**
 * A member that was down while many writes were committed catches up when it restarts: from the
 * leader's log when the entries are still there, and from a snapshot (streamed in chunks and
 * installed into its store) when the leader has compacted its log (small --snapshot-count). The
 * snapshot is assembled in the member's snap-incoming folder, which holds no partial once it is
 * installed (resuming a cut transfer is covered in src/server/transport.test.ts).
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SNAPSHOT_INBOX_DIR } from '../src/server/member-core.js';
import { etcdctl } from './support/etcdctl.js';
import {
  type MemberProcess,
  ProcessCluster,
  waitFor,
  waitForLeader,
} from './support/member-process.js';

const WRITES = 120;
const PARALLEL = 6;

async function writeMany(endpoints: string, prefix: string): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < WRITES) {
      const n = next++;
      const result = await etcdctl(endpoints, [
        'put',
        `${prefix}${String(n).padStart(4, '0')}`,
        'x'.repeat(200),
      ]);
      assert.equal(result.code, 0, result.stderr);
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
}

async function localCount(member: MemberProcess, prefix: string): Promise<number> {
  const result = await etcdctl(member.endpoint, [
    'get',
    prefix,
    '--prefix',
    '--keys-only',
    '--consistency=s',
  ]);
  if (result.code !== 0) return -1;
  return result.stdout.split('\n').filter((line) => line.startsWith(prefix)).length;
}

async function missWritesThenRestart(
  cluster: ProcessCluster,
  prefix: string,
): Promise<MemberProcess> {
  await cluster.startAll();
  const leader = await waitForLeader(cluster.members);
  const lagging = cluster.members.find((m) => m !== leader)!;
  assert.equal(await lagging.stop('SIGTERM'), 0, 'a clean shutdown exits with status 0');
  const survivors = cluster.members.filter((m) => m !== lagging);
  await writeMany(cluster.endpoints(survivors), prefix);
  lagging.logLevel = 'info';
  await lagging.start(cluster.initialCluster(), 'new');
  try {
    await waitFor(
      'the restarted member to hold every write',
      async () => (await localCount(lagging, prefix)) === WRITES,
    );
  } catch (error) {
    throw new Error(
      `${(error as Error).message} (has ${await localCount(lagging, prefix)}); output: ${lagging.output.slice(-3000)}`,
    );
  }
  return lagging;
}

describe('a restarted member catches up', { timeout: 120_000 }, () => {
  const clusters: ProcessCluster[] = [];
  after(async () => {
    await Promise.all(clusters.map((c) => c.stopAll()));
  });

  it('from the log', async () => {
    const cluster = await ProcessCluster.plan(3);
    clusters.push(cluster);
    const member = await missWritesThenRestart(cluster, 'log/');
    assert.doesNotMatch(member.output, /installed snapshot from the leader/);
  });

  it('from a snapshot when the leader compacted its log', async () => {
    const cluster = await ProcessCluster.plan(3, ['--snapshot-count=20']);
    clusters.push(cluster);
    const member = await missWritesThenRestart(cluster, 'snap/');
    assert.match(member.output, /installed snapshot from the leader/);
    assert.deepEqual(
      readdirSync(join(member.spec.dataDir, SNAPSHOT_INBOX_DIR)),
      [],
      'the received snapshot was assembled in snap-incoming and its partial file deleted',
    );
    // The cluster keeps working after the install, through the member that installed it.
    const put = await etcdctl(member.endpoint, ['put', 'after-snapshot', 'ok']);
    assert.equal(put.code, 0, put.stderr);
    const get = await etcdctl(cluster.endpoints(), ['get', 'after-snapshot', '--print-value-only']);
    assert.equal(get.stdout.trim(), 'ok');
    // The members that compacted their logs counted their snapshots.
    const taken = await Promise.all(
      cluster.members.map(async (m) => {
        const text = await (await fetch(`${m.metricsUrl}/metrics`)).text();
        return Number(/shoal_snapshot_duration_seconds_count\{[^}]*\} (\d+)/.exec(text)?.[1]);
      }),
    );
    assert.ok(
      taken.some((count) => count >= 1),
      `snapshots counted: ${taken.join(', ')}`,
    );
  });
});
