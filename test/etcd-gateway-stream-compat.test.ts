/**
 * etcd's JSON gateway streams (`/v3/watch`, `/v3/lease/keepalive`) against real etcd: the same
 * requests give the same newline-delimited `{"result": ...}` lines (once per-server identity is
 * masked), the same live and historical events, and the stream stays open after the request body
 * ends, until the client goes away.
 */
import assert from 'node:assert/strict';
import { type ClientRequest, request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { etcdInstalled, type RunningEtcd, startEtcd } from './support/etcd-process.js';
import { type RunningShoal, startShoal } from './support/shoal-server.js';

/** Longest wait for an expected stream line; a missing line fails the test instead of hanging. */
const lineTimeoutMs = 10_000;

const b64 = (text: string) => Buffer.from(text).toString('base64');
const identity = new Set(['cluster_id', 'member_id', 'raft_term', 'ID']);

function mask(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(mask);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, identity.has(k) ? '<id>' : mask(v)]),
    );
  }
  return value;
}

/** An open gateway stream whose lines arrive one by one. */
interface Stream {
  status: number;
  contentType: string;
  next(): Promise<unknown>;
  close(): void;
}

function openStream(base: string, path: string, body: string): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const lines: string[] = [];
    const waiters: ((line: string) => void)[] = [];
    let pending = '';
    const req: ClientRequest = request(`${base}${path}`, { method: 'POST' }, (response) => {
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        pending += chunk;
        let newline = pending.indexOf('\n');
        while (newline >= 0) {
          const line = pending.slice(0, newline);
          pending = pending.slice(newline + 1);
          if (line.trim() !== '') {
            const waiter = waiters.shift();
            if (waiter) waiter(line);
            else lines.push(line);
          }
          newline = pending.indexOf('\n');
        }
      });
      response.on('error', () => {});
      resolve({
        status: response.statusCode ?? 0,
        contentType: String(response.headers['content-type']),
        next: () =>
          new Promise((done, fail) => {
            const timer = setTimeout(() => fail(new Error(`no line on ${path}`)), lineTimeoutMs);
            const take = (line: string) => {
              clearTimeout(timer);
              done(mask(JSON.parse(line)));
            };
            const ready = lines.shift();
            if (ready !== undefined) take(ready);
            else waiters.push(take);
          }),
        close: () => req.destroy(),
      });
    });
    req.on('error', (error) => {
      if (!req.destroyed) reject(error);
    });
    req.end(body);
  });
}

async function post(base: string, path: string, body: unknown): Promise<unknown> {
  const response = await fetch(`${base}${path}`, { method: 'POST', body: JSON.stringify(body) });
  assert.equal(response.status, 200, `${path} ${JSON.stringify(body)}`);
  return response.json();
}

/** The whole scenario on one server; returns every stream line and status it saw. */
async function scenario(base: string): Promise<unknown[]> {
  const seen: unknown[] = [];
  const live = await openStream(
    base,
    '/v3/watch',
    JSON.stringify({ create_request: { key: b64('gws/'), range_end: b64('gws0'), prev_kv: true } }),
  );
  seen.push(live.status, live.contentType, await live.next());
  await post(base, '/v3/kv/put', { key: b64('gws/a'), value: b64('1') });
  await post(base, '/v3/kv/put', { key: b64('gws/a'), value: b64('2') });
  await post(base, '/v3/kv/put', { key: b64('other'), value: b64('x') });
  await post(base, '/v3/kv/deleterange', { key: b64('gws/a') });
  seen.push(await live.next(), await live.next(), await live.next());
  live.close();

  // A watcher from history with its own id, in camelCase as grpc-gateway also accepts.
  const history = await openStream(
    base,
    '/v3/watch',
    JSON.stringify({ createRequest: { key: b64('gws/a'), startRevision: '2', watchId: '7' } }),
  );
  seen.push(await history.next(), await history.next());
  // The stream is still live after the history: a later write arrives on it.
  await post(base, '/v3/kv/put', { key: b64('gws/a'), value: b64('3') });
  seen.push(await history.next());
  history.close();

  const grant = (await post(base, '/v3/lease/grant', { TTL: '30' })) as { ID: string };
  const keepAlive = await openStream(base, '/v3/lease/keepalive', JSON.stringify({ ID: grant.ID }));
  seen.push(keepAlive.status, await keepAlive.next());
  keepAlive.close();
  const unknown = await openStream(base, '/v3/lease/keepalive', JSON.stringify({ ID: '999' }));
  seen.push(await unknown.next());
  unknown.close();

  const bad = await openStream(base, '/v3/watch', '{"create_request":');
  seen.push(bad.status);
  bad.close();
  return seen;
}

describe('the JSON gateway streams against etcd and shoal', {
  skip: etcdInstalled() ? false : 'etcd is not installed',
}, () => {
  let etcd: RunningEtcd;
  let shoal: RunningShoal;
  before(async () => {
    [etcd, shoal] = await Promise.all([startEtcd(), startShoal()]);
  });
  after(async () => {
    await Promise.all([etcd?.stop(), shoal?.close()]);
  });

  test('watch and keep-alive streams give the same lines', async () => {
    const reference = await scenario(etcd.clientUrl);
    const actual = await scenario(shoal.endpoint);
    assert.deepEqual(actual, reference);
    // Sanity: the reference really streamed events (the comparison is not of two empty lists).
    assert.equal(reference.length, 13);
    assert.ok(JSON.stringify(reference).includes(b64('gws/a')));
  });
});
