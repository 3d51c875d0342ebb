/**
 * etcdctl compatibility: runs one sequence of etcdctl commands against a real etcd and against
 * shoal's etcd API, and requires identical results once per-server identity (ids, terms,
 * endpoints, versions, sizes, timings) is masked: same exit codes, revisions, versions, values and
 * error messages. The steps and the runner are in support/etcdctl-steps.ts; the same sequence runs
 * against 3-member clusters in etcd-cluster-compat.test.ts.
 */
import { rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { etcdInstalled, type RunningEtcd, startEtcd } from './support/etcd-process.js';
import { compareSteps, snapshotPath } from './support/etcdctl-steps.js';
import { type RunningShoalMember, startShoalMember } from './support/shoal-server.js';

describe('etcdctl against etcd and shoal', { skip: etcdMissingReason() }, () => {
  let etcd: RunningEtcd;
  let shoal: RunningShoalMember;

  before(async () => {
    [etcd, shoal] = await Promise.all([startEtcd(), startShoalMember()]);
  });

  after(async () => {
    await Promise.all([etcd?.stop(), shoal?.close()]);
    rmSync(snapshotPath, { force: true });
  });

  test('every step gives the same normalized result on both servers', async () => {
    // Endpoints are given without a scheme except in the steps marked `url`, which check that
    // etcdctl's URL-shaped :authority is accepted (src/server/etcd/http2.ts).
    const shoalEndpoint = `127.0.0.1:${shoal.port}`;
    await compareSteps(() => ({ etcd: etcd.endpoint, shoal: shoalEndpoint }));
  });
});

function etcdMissingReason(): string | false {
  return etcdInstalled()
    ? false
    : 'etcd and etcdctl are not installed (apt-get install etcd-server etcd-client)';
}
