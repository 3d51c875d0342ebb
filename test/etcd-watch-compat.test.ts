/**
 * `etcdctl watch` against etcd and shoal: watchers pinned to a start revision see the same events
 * (types, keys, values, revisions, prevKv) through puts, a multi-key txn, single and range deletes,
 * in plain and JSON output; a range watcher sees only its range; a watcher starting below the
 * compaction is canceled with etcd's message. How events are grouped into responses depends on
 * timing (live vs. replayed from history), so JSON output is compared event by event. The scenario
 * is in support/etcdctl-watch.ts; etcd-cluster-compat.test.ts runs it on 3-member clusters.
 */
import { after, before, describe, test } from 'node:test';
import { etcdInstalled, type RunningEtcd, startEtcd } from './support/etcd-process.js';
import {
  assertSameWatchOutputs,
  type RunningWatch,
  runWatchScenario,
} from './support/etcdctl-watch.js';
import { type RunningShoalMember, startShoalMember } from './support/shoal-server.js';

describe('etcdctl watch against etcd and shoal', {
  skip: etcdInstalled() ? false : 'etcd is not installed',
}, () => {
  let etcd: RunningEtcd;
  let shoal: RunningShoalMember;
  const watches: RunningWatch[] = [];

  before(async () => {
    [etcd, shoal] = await Promise.all([startEtcd(), startShoalMember()]);
  });
  after(async () => {
    await Promise.all(watches.map((w) => w.stop()));
    await Promise.all([etcd?.stop(), shoal?.close()]);
  });

  test('watchers see the same events, then a compacted start is canceled', async () => {
    const shoalEndpoint = `127.0.0.1:${shoal.port}`;
    const reference = await runWatchScenario(etcd.endpoint, etcd.endpoint, watches);
    const actual = await runWatchScenario(shoalEndpoint, shoalEndpoint, watches);
    assertSameWatchOutputs(actual, reference);
  });
});
