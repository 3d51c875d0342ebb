import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, DEFAULT_MAX_REQUEST_BYTES, resolveConfig } from './config.js';

const threeMembers = {
  initialCluster: 'a=http://127.0.0.1:2380,b=http://127.0.0.1:12380,c=http://127.0.0.1:22380',
};

test('defaults follow etcd', () => {
  const config = resolveConfig({});
  assert.equal(config.name, 'default');
  assert.equal(config.dataDir, 'default.etcd');
  assert.equal(config.listenClientUrls[0]!.port, '2379');
  assert.equal(config.listenPeerUrls[0]!.port, '2380');
  assert.equal(config.heartbeatIntervalMs, 100);
  assert.equal(config.electionTimeoutMs, 1000);
  assert.equal(config.maxRequestBytes, DEFAULT_MAX_REQUEST_BYTES);
  assert.equal(config.quotaBackendBytes, 2 * 1024 ** 3);
  assert.equal(config.initialClusterState, 'new');
  assert.equal(config.initialCluster.length, 1);
});

test('every member derives the same member and cluster ids', () => {
  const a = resolveConfig({
    ...threeMembers,
    name: 'a',
    initialAdvertisePeerUrls: 'http://127.0.0.1:2380',
  });
  const b = resolveConfig({
    ...threeMembers,
    name: 'b',
    initialAdvertisePeerUrls: 'http://127.0.0.1:12380',
  });
  assert.equal(a.clusterId, b.clusterId);
  assert.notEqual(a.memberId, b.memberId);
  assert.deepEqual(
    a.initialCluster.map((m) => m.id),
    b.initialCluster.map((m) => m.id),
  );
  assert.equal(a.initialCluster.find((m) => m.name === 'b')!.id, b.memberId);
  for (const member of a.initialCluster)
    assert.ok(Number.isSafeInteger(member.id) && member.id > 0);
  const otherToken = resolveConfig({
    ...threeMembers,
    name: 'a',
    initialAdvertisePeerUrls: 'http://127.0.0.1:2380',
    initialClusterToken: 'x',
  });
  assert.notEqual(otherToken.memberId, a.memberId);
});

test('bad flags give errors that name the flag', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ electionTimeout: '300' }, /--election-timeout\[300ms\] should be at least 5 times/],
    [{ heartbeatInterval: 'fast' }, /--heartbeat-interval: "fast" must be an integer/],
    [
      { listenClientUrls: 'localhost:2379' },
      /--listen-client-urls: "localhost:2379" must use http/,
    ],
    [{ initialClusterState: 'old' }, /--initial-cluster-state: "old"/],
    [{ name: 'z', ...threeMembers }, /has no member named "z"/],
    [{ initialCluster: 'a' }, /must be name=peer-url/],
    [
      { name: 'a', ...threeMembers, initialAdvertisePeerUrls: 'http://127.0.0.1:9999' },
      /differ from --initial-advertise-peer-urls/,
    ],
    [{ quotaBackendBytes: String(9 * 1024 ** 3) }, /--quota-backend-bytes/],
  ];
  for (const [flags, message] of cases) {
    assert.throws(
      () => resolveConfig(flags),
      (error: unknown) => error instanceof ConfigError && message.test(error.message),
      JSON.stringify(flags),
    );
  }
});

test('--join marks a member outside --initial-cluster as joining; autopilot flags are checked', () => {
  const joiner = resolveConfig({
    ...threeMembers,
    name: 'd',
    initialAdvertisePeerUrls: 'http://127.0.0.1:32380',
    join: '127.0.0.1:2380, 127.0.0.1:12380',
  });
  assert.equal(joiner.joinOnly, true);
  assert.deepEqual(joiner.join, ['127.0.0.1:2380', '127.0.0.1:12380']);
  assert.equal(resolveConfig({ join: '127.0.0.1:2380' }).joinOnly, true);
  const initialMember = resolveConfig({
    ...threeMembers,
    name: 'a',
    initialAdvertisePeerUrls: 'http://127.0.0.1:2380',
    join: '127.0.0.1:12380',
  });
  assert.equal(initialMember.joinOnly, false);
  assert.equal(initialMember.autopilotVoters, 3);
  assert.equal(initialMember.autopilotStabilizationMs, 10_000);
  assert.equal(resolveConfig({ autopilotVoters: '5' }).autopilotVoters, 5);
  assert.throws(() => resolveConfig({ autopilotVoters: '4' }), ConfigError);
  assert.throws(() => resolveConfig({ autopilotDeadVoterMs: '-1' }), ConfigError);
});
