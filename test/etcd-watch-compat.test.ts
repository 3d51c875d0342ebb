/**
 * `etcdctl watch` against etcd and shoal: watchers pinned to a start revision see the same events
 * (types, keys, values, revisions, prevKv) through puts, a multi-key txn, single and range deletes,
 * in plain and JSON output; a range watcher sees only its range; a watcher starting below the
 * compaction is canceled with etcd's message. How events are grouped into responses depends on
 * timing (live vs. replayed from history), so JSON output is compared event by event.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { etcdInstalled, type RunningEtcd, startEtcd } from './support/etcd-process.js';
import { etcdctl } from './support/etcdctl.js';
import { type RunningShoalMember, startShoalMember } from './support/shoal-server.js';

/** Bound on waiting for a watcher's output; the test fails rather than hangs. */
const watchDeadlineMs = 20_000;

interface RunningWatch {
  child: ChildProcess;
  output: () => string;
  /** Resolves once `done(output)` holds; rejects after the deadline. */
  until: (done: (output: string) => boolean) => Promise<string>;
  stop: () => Promise<void>;
  /** Resolves with the exit code once etcdctl exits on its own; rejects after the deadline. */
  exited: () => Promise<number | null>;
}

function startWatch(endpoint: string, args: string[]): RunningWatch {
  const child = spawn('etcdctl', [`--endpoints=${endpoint}`, 'watch', ...args], {
    env: { ...process.env, ETCDCTL_API: '3' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    text += chunk.toString();
    for (const wake of waiters) wake();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  child.on('exit', () => {
    for (const wake of waiters) wake();
  });
  return {
    child,
    output: () => text,
    until: (done) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (done(text)) {
            cleanup();
            resolve(text);
          } else if (child.exitCode !== null) {
            cleanup();
            reject(new Error(`etcdctl watch exited early:\n${text}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`etcdctl watch ${args.join(' ')} timed out; output so far:\n${text}`));
        }, watchDeadlineMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      }),
    exited: () =>
      new Promise((resolve, reject) => {
        if (child.exitCode !== null) return resolve(child.exitCode);
        const timer = setTimeout(
          () => reject(new Error(`etcdctl watch did not exit:\n${text}`)),
          watchDeadlineMs,
        );
        child.once('exit', (code) => {
          clearTimeout(timer);
          resolve(code);
        });
      }),
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

const eventCount = (plain: string) =>
  plain.split('\n').filter((line) => line === 'PUT' || line === 'DELETE').length;

/** Events of every JSON response, in order, with lease ids masked. */
function jsonEvents(output: string): unknown[] {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .flatMap((line) => (JSON.parse(line) as { Events?: unknown[] }).Events ?? [])
    .map((event) => JSON.parse(JSON.stringify(event).replace(/"lease":\d+/g, '"lease":"<lease>"')));
}

async function currentRevision(endpoint: string): Promise<number> {
  const result = await etcdctl(endpoint, ['get', 'no-such-key', '-w', 'json']);
  return Number(/"revision":(\d+)/.exec(result.stdout)![1]);
}

const writes: { args: string[]; stdin?: string }[] = [
  { args: ['put', 'w/a', '1'] },
  { args: ['put', 'w/b', '2'] },
  { args: ['put', 'w/a', '3'] },
  { args: ['txn'], stdin: '\nput w/c x\nput w/d y\n\n\n' },
  { args: ['del', 'w/a'] },
  { args: ['put', 'outside', 'z'] },
  { args: ['del', 'w/', '--prefix'] },
];
/** Events the writes above produce under w/: 3 puts, 2 in the txn, 1 delete, 3 deletes. */
const prefixEvents = 9;
/** Events in [w/b, w/d): put w/b, put w/c, delete w/b, delete w/c. */
const rangeEvents = 4;

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
    const servers = [etcd.endpoint, `127.0.0.1:${shoal.port}`];
    const outputs: { plain: string; json: unknown[]; range: string; compacted: string }[] = [];
    for (const endpoint of servers) {
      const from = `--rev=${(await currentRevision(endpoint)) + 1}`;
      const plain = startWatch(endpoint, ['w/', '--prefix', '--prev-kv', from]);
      const json = startWatch(endpoint, ['w/', '--prefix', '-w', 'json', from]);
      const range = startWatch(endpoint, ['w/b', 'w/d', from]);
      watches.push(plain, json, range);
      for (const write of writes) {
        const result = await etcdctl(endpoint, write.args, write.stdin);
        assert.equal(result.code, 0, `${write.args.join(' ')}: ${result.stderr}`);
      }
      const plainOut = await plain.until((text) => eventCount(text) >= prefixEvents);
      const jsonOut = await json.until((text) => jsonEvents(text).length >= prefixEvents);
      const rangeOut = await range.until((text) => eventCount(text) >= rangeEvents);
      await Promise.all([plain.stop(), json.stop(), range.stop()]);
      const head = await currentRevision(endpoint);
      assert.equal((await etcdctl(endpoint, ['compact', String(head)])).code, 0);
      const compacted = startWatch(endpoint, ['w/', '--prefix', from]);
      watches.push(compacted);
      const exitCode = await compacted.exited();
      const compactedOut = `${compacted.output()}exit ${exitCode}`;
      outputs.push({
        plain: plainOut,
        json: jsonEvents(jsonOut),
        range: rangeOut,
        compacted: compactedOut,
      });
    }
    const [reference, actual] = outputs as [(typeof outputs)[0], (typeof outputs)[0]];
    assert.equal(eventCount(reference.plain), prefixEvents, reference.plain);
    assert.match(reference.compacted, /required revision has been compacted/);
    assert.equal(actual.plain, reference.plain);
    assert.deepEqual(actual.json, reference.json);
    assert.equal(actual.range, reference.range);
    assert.equal(actual.compacted, reference.compacted);
  });
});
