/**
 * etcd's JSON gateway on the client port: the same HTTP requests to etcd and to shoal give the same
 * HTTP status and the same JSON (field names, 64-bit integers as strings, base64 bytes, defaults
 * left out, error bodies) once per-server identity is masked. It also shows that one port serves
 * gRPC and HTTP/1.1 side by side on shoal, as on etcd.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { etcdInstalled, type RunningEtcd, startEtcd } from './support/etcd-process.js';
import { type RunningShoalMember, startShoalMember } from './support/shoal-server.js';

const b64 = (text: string) => Buffer.from(text).toString('base64');
const identity = new Set([
  'cluster_id',
  'member_id',
  'raft_term',
  'ID',
  'lease',
  'version',
  'dbSize',
  'dbSizeInUse',
  'leader',
  'raftIndex',
  'raftTerm',
  'raftAppliedIndex',
  'name',
  'peerURLs',
  'clientURLs',
]);

function mask(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(mask);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, identity.has(k) ? '<id>' : mask(v)]),
    );
  }
  return value;
}

interface Case {
  path: string;
  body: string;
  /** Compare only the HTTP status: the error text comes from each server's JSON parser. */
  statusOnly?: boolean;
}

const json = (value: unknown) => JSON.stringify(value);
const cases: Case[] = [
  { path: '/v3/kv/put', body: json({ key: b64('gw/a'), value: b64('1') }) },
  { path: '/v3/kv/put', body: json({ key: b64('gw/b'), value: b64('2'), prev_kv: true }) },
  { path: '/v3/kv/put', body: json({ key: b64('gw/a'), value: b64('3'), prevKv: true }) },
  { path: '/v3/kv/range', body: json({ key: b64('gw/'), range_end: b64('gw0') }) },
  { path: '/v3/kv/range', body: json({ key: b64('gw/'), rangeEnd: b64('gw0'), count_only: true }) },
  {
    path: '/v3/kv/range',
    body: json({ key: b64('gw/'), range_end: b64('gw0'), sort_order: 'DESCEND', limit: '1' }),
  },
  {
    path: '/v3/kv/txn',
    body: json({
      compare: [{ key: b64('gw/a'), target: 'VALUE', result: 'EQUAL', value: b64('3') }],
      success: [
        { request_put: { key: b64('gw/c'), value: b64('4') } },
        { request_range: { key: b64('gw/a') } },
      ],
      failure: [],
    }),
  },
  { path: '/v3/kv/deleterange', body: json({ key: b64('gw/b'), prev_kv: true }) },
  { path: '/v3/kv/range', body: json({ key: '' }) },
  { path: '/v3/kv/range', body: json({ key: b64('gw/a'), revision: '1000' }) },
  { path: '/v3/kv/compaction', body: json({ revision: '3' }) },
  { path: '/v3/kv/range', body: json({ key: b64('gw/a'), revision: '2' }) },
  { path: '/v3/lease/grant', body: json({ TTL: '30' }) },
  { path: '/v3/lease/revoke', body: json({ ID: '12345' }) },
  { path: '/v3/maintenance/status', body: '{}' },
  { path: '/v3/cluster/member/list', body: '{}' },
  { path: '/v3/kv/put', body: '{"key": ', statusOnly: true },
];

async function post(base: string, c: Case): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${base}${c.path}`, { method: 'POST', body: c.body });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = mask(JSON.parse(text));
  } catch {
    // Not JSON: compared as text.
  }
  return { status: response.status, body };
}

describe('the JSON gateway against etcd and shoal', {
  skip: etcdInstalled() ? false : 'etcd is not installed',
}, () => {
  let etcd: RunningEtcd;
  let shoal: RunningShoalMember;
  before(async () => {
    [etcd, shoal] = await Promise.all([startEtcd(), startShoalMember()]);
  });
  after(async () => {
    await Promise.all([etcd?.stop(), shoal?.close()]);
  });

  test('every request gets the same status and JSON', async () => {
    for (const c of cases) {
      const reference = await post(etcd.clientUrl, c);
      const actual = await post(shoal.endpoint, c);
      const label = `${c.path} ${c.body}`;
      if (c.statusOnly) assert.equal(actual.status, reference.status, label);
      else assert.deepEqual(actual, reference, label);
    }
  });
});
