/**
 * etcd's JSON gateway streams (`/v3/watch`, `/v3/lease/keepalive`) against real etcd: the same
 * requests give the same newline-delimited `{"result": ...}` lines (once per-server identity is
 * masked), the same live and historical events, and the stream stays open after the request body
 * ends, until the client goes away. One chunked body may carry several requests (creates, a
 * cancel, a progress request; a malformed one stops the reading of requests only). On shoal alone:
 * each request is answered while the body is still open.
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
  /** Sends more of the request body (only for a stream opened with a body left open). */
  send(chunk: string): void;
  close(): void;
}

/**
 * Opens a stream; a body given as a list goes out as that many HTTP chunks, then ends; `open`
 * sends the chunks and leaves the body open for `send`.
 */
function openStream(
  base: string,
  path: string,
  body: string | string[],
  open = false,
): Promise<Stream> {
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
        send: (chunk) => req.write(chunk),
        close: () => req.destroy(),
      });
    });
    req.on('error', (error) => {
      if (!req.destroyed) reject(error);
    });
    if (typeof body === 'string') req.end(body);
    else {
      for (const chunk of body) req.write(chunk);
      if (open) req.flushHeaders();
      else req.end();
    }
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

  seen.push(...(await manyRequests(base)), ...(await malformedLater(base)));
  return seen;
}

/**
 * Several requests in one chunked body, one of them split across chunks: two watches created,
 * the first canceled, a progress request; then only the second watch sees writes.
 */
async function manyRequests(base: string): Promise<unknown[]> {
  const stream = await openStream(base, '/v3/watch', [
    `{"create_request":{"key":"${b64('gwm/a')}"`,
    `}}\n{"create_request":{"key":"${b64('gwm/b')}"}}`,
    '{"cancel_request":{"watch_id":"0"}}\n{"progress_request":{}}\n',
  ]);
  const seen = [await stream.next(), await stream.next(), await stream.next(), await stream.next()];
  await post(base, '/v3/kv/put', { key: b64('gwm/a'), value: b64('canceled') });
  await post(base, '/v3/kv/put', { key: b64('gwm/b'), value: b64('live') });
  seen.push(await stream.next());
  stream.close();
  return seen;
}

/**
 * A malformed request after a good one: reading stops there (the cancel after it is never
 * seen), the watch already created keeps streaming, and the server keeps serving.
 */
async function malformedLater(base: string): Promise<unknown[]> {
  const stream = await openStream(base, '/v3/watch', [
    `{"create_request":{"key":"${b64('gwx')}"}}\n`,
    '{"cancel_request": nope}\n{"cancel_request":{"watch_id":"0"}}\n',
  ]);
  const seen = [await stream.next()];
  await post(base, '/v3/kv/put', { key: b64('gwx'), value: b64('still watched') });
  seen.push(await stream.next());
  stream.close();
  seen.push(mask(await post(base, '/v3/kv/range', { key: b64('gwx') })));
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
    assert.equal(reference.length, 21);
    assert.ok(JSON.stringify(reference).includes(b64('gws/a')));
  });
});

describe('the JSON gateway stream on shoal', () => {
  let shoal: RunningShoal;
  before(async () => {
    shoal = await startShoal();
  });
  after(async () => {
    await shoal?.close();
  });

  // etcd's gateway (Go's HTTP/1 server) holds its answers until the request body ends; shoal
  // answers each request as it arrives, so one open connection can be driven interactively.
  test('answers each request while the body is still open', async () => {
    const stream = await openStream(
      shoal.endpoint,
      '/v3/watch',
      [`{"create_request":{"key":"${b64('live/a')}"}}`],
      true,
    );
    try {
      assert.deepEqual(await stream.next(), {
        result: {
          header: { cluster_id: '<id>', member_id: '<id>', revision: '1', raft_term: '<id>' },
          created: true,
        },
      });
      stream.send(`{"create_request":{"key":"${b64('live/b')}"}}{"cancel_request":`);
      const created = (await stream.next()) as { result: { watch_id: string; created: boolean } };
      assert.deepEqual([created.result.watch_id, created.result.created], ['1', true]);
      stream.send('{"watch_id":"0"}}\n');
      const canceled = (await stream.next()) as {
        result: { watch_id?: string; canceled: boolean };
      };
      assert.deepEqual([canceled.result.watch_id, canceled.result.canceled], [undefined, true]);
      await post(shoal.endpoint, '/v3/kv/put', { key: b64('live/a'), value: b64('x') });
      await post(shoal.endpoint, '/v3/kv/put', { key: b64('live/b'), value: b64('y') });
      const event = (await stream.next()) as { result: { watch_id: string; events: unknown[] } };
      assert.equal(event.result.watch_id, '1');
      assert.equal(event.result.events.length, 1);
    } finally {
      stream.close();
    }
  });
});
