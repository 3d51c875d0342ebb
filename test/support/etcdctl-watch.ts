/**
 * The `etcdctl watch` scenario the comparison tests run against etcd and shoal: watchers pinned to
 * a start revision (prefix with prev-kv, JSON, a key range) watch through puts, a multi-key txn,
 * single and range deletes; then a watcher starting below the compaction is canceled. Watchers may
 * be on another member than the one written to (a follower watching what the leader commits).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { etcdctl } from './etcdctl.js';

/** Bound on waiting for a watcher's output; the test fails rather than hangs. */
const watchDeadlineMs = 20_000;

export interface RunningWatch {
  child: ChildProcess;
  output: () => string;
  /** Resolves once `done(output)` holds; rejects after the deadline. */
  until: (done: (output: string) => boolean) => Promise<string>;
  stop: () => Promise<void>;
  /** Resolves with the exit code once etcdctl exits on its own; rejects after the deadline. */
  exited: () => Promise<number | null>;
}

export function startWatch(endpoint: string, args: string[]): RunningWatch {
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

export const eventCount = (plain: string) =>
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
/**
 * Lines the plain watchers print for those events. An event is printed as several lines (type,
 * [prev key, prev value,] key, value), which may arrive in separate reads, so waiting for the
 * event count alone could stop a watcher in the middle of its last event. Prefix watcher with
 * --prev-kv: 3 + 3 + 5 (w/a again) + 3 + 3 (txn) + 5 (del w/a) + 3 * 5 (del w/ --prefix) = 37;
 * range watcher, no prev-kv: 4 events of 3 lines = 12.
 */
const prefixLines = 37;
const rangeLines = 12;

/** Lines completed so far (ending in a newline). */
const completeLines = (text: string) => text.split('\n').length - 1;

/** The text up to its last newline: whole lines only, no JSON line cut in the middle. */
const whole = (text: string) => text.slice(0, text.lastIndexOf('\n') + 1);

export interface WatchOutputs {
  plain: string;
  json: unknown[];
  range: string;
  compacted: string;
}

/** Runs the scenario: watchers on `watchEndpoint`, writes and the compaction on `writeEndpoint`. */
export async function runWatchScenario(
  watchEndpoint: string,
  writeEndpoint: string,
  watches: RunningWatch[],
): Promise<WatchOutputs> {
  const from = `--rev=${(await currentRevision(writeEndpoint)) + 1}`;
  const plain = startWatch(watchEndpoint, ['w/', '--prefix', '--prev-kv', from]);
  const json = startWatch(watchEndpoint, ['w/', '--prefix', '-w', 'json', from]);
  const range = startWatch(watchEndpoint, ['w/b', 'w/d', from]);
  watches.push(plain, json, range);
  for (const write of writes) {
    const result = await etcdctl(writeEndpoint, write.args, write.stdin);
    assert.equal(result.code, 0, `${write.args.join(' ')}: ${result.stderr}`);
  }
  const plainOut = await plain.until((text) => completeLines(text) >= prefixLines);
  const jsonOut = whole(await json.until((text) => jsonEvents(whole(text)).length >= prefixEvents));
  const rangeOut = await range.until((text) => completeLines(text) >= rangeLines);
  await Promise.all([plain.stop(), json.stop(), range.stop()]);
  const head = await currentRevision(writeEndpoint);
  assert.equal((await etcdctl(writeEndpoint, ['compact', String(head)])).code, 0);
  const compacted = startWatch(watchEndpoint, ['w/', '--prefix', from]);
  watches.push(compacted);
  const exitCode = await compacted.exited();
  return {
    plain: plainOut,
    json: jsonEvents(jsonOut),
    range: rangeOut,
    compacted: `${compacted.output()}exit ${exitCode}`,
  };
}

/** The comparison: etcd's outputs are checked for sanity, then shoal's must equal them. */
export function assertSameWatchOutputs(actual: WatchOutputs, reference: WatchOutputs): void {
  assert.equal(eventCount(reference.plain), prefixEvents, reference.plain);
  assert.equal(eventCount(reference.range), rangeEvents, reference.range);
  assert.match(reference.compacted, /required revision has been compacted/);
  assert.equal(actual.plain, reference.plain);
  assert.deepEqual(actual.json, reference.json);
  assert.equal(actual.range, reference.range);
  assert.equal(actual.compacted, reference.compacted);
}
