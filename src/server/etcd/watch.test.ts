/**
 * Watch protocol tests through a real gRPC stream: a client that stops reading while thousands of
 * events are committed still receives every event exactly once and in order once it resumes (the
 * server drops to history replay instead of buffering), cancel and progress requests are
 * answered, and a duplicate watch id is refused with etcd's reason.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { EtcdTestClient, type Message } from '../../../test/support/etcd-client.js';
import { type RunningShoal, startShoal } from '../../../test/support/shoal-server.js';

let shoal: RunningShoal;
let client: EtcdTestClient;

before(async () => {
  shoal = await startShoal();
  client = new EtcdTestClient(`127.0.0.1:${shoal.port}`);
});
after(async () => {
  client.close();
  await shoal.close();
});

/** Collects responses from a watch stream and lets the test wait for a condition on them. */
function collector(stream: ReturnType<EtcdTestClient['watch']>) {
  const responses: Message[] = [];
  const waiters = new Set<() => void>();
  stream.on('data', (response: Message) => {
    responses.push(response);
    for (const wake of waiters) wake();
  });
  stream.on('error', () => {});
  const until = (done: () => boolean, what: string) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 20_000);
      const check = () => {
        if (!done()) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve();
      };
      waiters.add(check);
      check();
    });
  return { responses, until };
}

const events = (responses: Message[]) =>
  responses.flatMap((r) => (r.events as Message[] | undefined) ?? []);

test('a paused client gets every event exactly once, in order, after it resumes', async () => {
  const stream = client.watch();
  const { responses, until } = collector(stream);
  stream.write({ createRequest: { key: Buffer.from('slow/'), rangeEnd: Buffer.from('slow0') } });
  await until(() => responses.some((r) => r.created === true), 'created');
  stream.pause();
  const total = 1500;
  const value = Buffer.alloc(2048, 'x');
  // Writes go in bounded waves so that a loaded machine does not push them past their deadline.
  const revisions: number[] = [];
  for (let wave = 0; wave < total; wave += 100) {
    const puts = Array.from({ length: 100 }, (_, i) =>
      client.put({ key: Buffer.from(`slow/${(wave + i) % 10}`), value }),
    );
    for (const put of await Promise.all(puts))
      revisions.push(Number((put.header as Message).revision));
  }
  stream.resume();
  await until(() => events(responses).length >= total, `${total} events`);
  const seen = events(responses).map((e) => Number((e.kv as Message).modRevision));
  assert.deepEqual(
    seen,
    [...revisions].sort((a, b) => a - b),
  );
  // The history path must really have been taken: some response carried many revisions at once.
  assert.ok(
    responses.some(
      (r) =>
        new Set(((r.events as Message[]) ?? []).map((e) => (e.kv as Message).modRevision)).size > 1,
    ),
    'expected at least one response replayed from history',
  );
  stream.end();
});

test('cancel, progress and duplicate ids are answered like etcd', async () => {
  const stream = client.watch();
  const { responses, until } = collector(stream);
  stream.write({ createRequest: { key: Buffer.from('p'), watchId: 7 } });
  await until(() => responses.length >= 1, 'created');
  assert.equal(responses[0]!.watchId, '7');
  stream.write({ createRequest: { key: Buffer.from('q'), watchId: 7 } });
  await until(() => responses.length >= 2, 'duplicate refused');
  assert.equal(responses[1]!.canceled, true);
  assert.equal(responses[1]!.cancelReason, 'mvcc: duplicate watch ID provided on the WatchStream');
  stream.write({ progressRequest: {} });
  await until(() => responses.length >= 3, 'progress');
  assert.equal(responses[2]!.watchId, '-1');
  assert.ok(Number((responses[2]!.header as Message).revision) > 0);
  stream.write({ cancelRequest: { watchId: 7 } });
  await until(() => responses.length >= 4, 'canceled');
  assert.equal(responses[3]!.canceled, true);
  assert.equal(responses[3]!.watchId, '7');
  stream.end();
});

test('watchers that ask for progress notifications get them while idle', async () => {
  const fast = await startShoal({ watchProgressIntervalMs: 100 });
  const fastClient = new EtcdTestClient(`127.0.0.1:${fast.port}`);
  try {
    const stream = fastClient.watch();
    const { responses, until } = collector(stream);
    stream.write({ createRequest: { key: Buffer.from('idle'), progressNotify: true } });
    stream.write({ createRequest: { key: Buffer.from('quiet') } });
    const isProgress = (r: Message) =>
      r.created !== true && r.canceled !== true && events([r]).length === 0;
    await until(() => responses.filter(isProgress).length >= 2, 'two progress notifications');
    // Only the watcher that asked (id 0) is notified; the other (id 1) is not.
    assert.deepEqual(new Set(responses.filter(isProgress).map((r) => r.watchId)), new Set(['0']));
    stream.end();
  } finally {
    fastClient.close();
    await fast.close();
  }
});

test('a watcher that asks for fragments gets a large revision split below max request bytes', async () => {
  const maxRequestBytes = 4096;
  const small = await startShoal({ maxRequestBytes });
  const smallClient = new EtcdTestClient(`127.0.0.1:${small.port}`);
  try {
    const value = Buffer.alloc(1000, 'v');
    for (let i = 0; i < 10; i++) await smallClient.put({ key: Buffer.from(`frag/${i}`), value });
    const whole = smallClient.watch();
    const wholeSeen = collector(whole);
    whole.write({
      createRequest: { key: Buffer.from('frag/'), rangeEnd: Buffer.from('frag0'), prevKv: true },
    });
    const split = smallClient.watch();
    const splitSeen = collector(split);
    split.write({
      createRequest: {
        key: Buffer.from('frag/'),
        rangeEnd: Buffer.from('frag0'),
        prevKv: true,
        fragment: true,
      },
    });
    await wholeSeen.until(() => wholeSeen.responses.some((r) => r.created === true), 'created');
    await splitSeen.until(() => splitSeen.responses.some((r) => r.created === true), 'created');
    // One revision deletes ten keys, each event carrying a 1000-byte previous value.
    await smallClient.deleteRange({
      key: Buffer.from('frag/'),
      rangeEnd: Buffer.from('frag0'),
      prevKv: true,
    });
    await wholeSeen.until(() => events(wholeSeen.responses).length >= 10, 'ten events, whole');
    await splitSeen.until(() => events(splitSeen.responses).length >= 10, 'ten events, split');
    const withEvents = (responses: Message[]) => responses.filter((r) => events([r]).length > 0);
    // Without the flag: one response with all ten events, not marked as a fragment.
    assert.equal(withEvents(wholeSeen.responses).length, 1);
    assert.notEqual(withEvents(wholeSeen.responses)[0]!.fragment, true);
    // With it: several responses; all but the last are fragments; together they hold every event.
    const fragments = withEvents(splitSeen.responses);
    assert.ok(fragments.length >= 3, `${fragments.length} fragments`);
    assert.deepEqual(
      fragments.map((r) => r.fragment === true),
      fragments.map((_, i) => i < fragments.length - 1),
    );
    for (const fragment of fragments) {
      const bytes = events([fragment]).reduce(
        (sum, e) => sum + ((e.prevKv as Message).value as Uint8Array).length,
        0,
      );
      assert.ok(bytes < maxRequestBytes, `a fragment carries ${bytes} bytes of values`);
    }
    assert.deepEqual(
      events(fragments).map((e) => Buffer.from((e.kv as Message).key as Uint8Array).toString()),
      Array.from({ length: 10 }, (_, i) => `frag/${i}`),
    );
    whole.end();
    split.end();
  } finally {
    smallClient.close();
    await small.close();
  }
});
