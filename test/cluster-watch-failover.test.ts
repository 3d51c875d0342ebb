/**
 * Watches and leases across member failures on a 3-member cluster of real processes.
 * (a) A watcher that starts on a follower sees every event exactly once and in revision order
 * while the leader is SIGKILLed (writes continue after re-election; it is restarted later) and
 * while its own member is SIGKILLed and restarted: it resumes from its last revision + 1 on another member. The reference
 * is the committed history read afterwards from revision 1.
 * (b) A key attached to a lease stays while keep-alives run, and disappears after they stop, not
 * before the TTL and within TTL plus a bound, although the leader is SIGKILLed in between.
 * The watcher and the writes use the JSON gateway (`/v3/watch`, `/v3/kv/*`) through node:http.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import {
  type MemberProcess,
  ProcessCluster,
  waitFor,
  waitForLeader,
} from './support/member-process.js';

const b64 = (text: string) => Buffer.from(text).toString('base64');
const unb64 = (text: string | undefined) => Buffer.from(text ?? '', 'base64').toString();
/** Attempts per write before the test gives up (each tries the next live member). */
const writeAttemptsMax = 60;
/** Pause between attempts while the cluster elects a leader; a retry backoff, not a sync point. */
const retryDelayMs = 200;
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface SeenEvent {
  revision: number;
  key: string;
  value: string;
  type: string;
}

const url = (m: MemberProcess, path: string) => `http://${m.endpoint}${path}`;

async function gatewayPost(m: MemberProcess, path: string, body: unknown): Promise<unknown> {
  const response = await fetch(url(m, path), {
    method: 'POST',
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  if (response.status !== 200) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

/** Puts through the first live member that accepts it; retries through elections. */
async function putSomewhere(members: readonly MemberProcess[], key: string, value: string) {
  for (let attempt = 0; attempt < writeAttemptsMax; attempt++) {
    const live = members.filter((m) => m.child !== null);
    const m = live[attempt % live.length]!;
    try {
      return await gatewayPost(m, '/v3/kv/put', { key: b64(key), value: b64(value) });
    } catch {
      await pause(retryDelayMs);
    }
  }
  throw new Error(`put ${key} failed ${writeAttemptsMax} times`);
}

/**
 * A watcher over the gateway that reconnects to the next member after a failure, resuming from
 * its last revision + 1, as etcd clients do.
 */
class ResumingWatcher {
  readonly events: SeenEvent[] = [];
  #lastRevision = 0;
  #stopped = false;
  #target = 0;
  #abort: (() => void) | undefined;

  constructor(
    private readonly members: readonly MemberProcess[],
    private readonly prefix: string,
    startRevision: number,
  ) {
    this.#lastRevision = startRevision - 1;
  }

  run(): void {
    void this.#loop();
  }

  stop(): void {
    this.#stopped = true;
    this.#abort?.();
  }

  async #loop(): Promise<void> {
    while (!this.#stopped) {
      const member = this.members[this.#target % this.members.length]!;
      if (member.child !== null) await this.#watchOnce(member).catch(() => {});
      if (this.#stopped) return;
      this.#target++;
      await pause(retryDelayMs);
    }
  }

  #watchOnce(member: MemberProcess): Promise<void> {
    const create = {
      create_request: {
        key: b64(this.prefix),
        range_end: b64(
          `${this.prefix.slice(0, -1)}${String.fromCharCode(this.prefix.at(-1)!.charCodeAt(0) + 1)}`,
        ),
        start_revision: String(this.#lastRevision + 1),
      },
    };
    return new Promise((resolve, reject) => {
      const req = request(url(member, '/v3/watch'), { method: 'POST' }, (response) => {
        let pending = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          pending += chunk;
          let newline = pending.indexOf('\n');
          while (newline >= 0) {
            this.#onLine(pending.slice(0, newline));
            pending = pending.slice(newline + 1);
            newline = pending.indexOf('\n');
          }
        });
        response.on('end', resolve);
        response.on('error', reject);
        response.on('close', resolve);
      });
      this.#abort = () => req.destroy();
      req.on('error', reject);
      req.end(JSON.stringify(create));
    });
  }

  #onLine(line: string): void {
    if (line.trim() === '') return;
    const parsed = JSON.parse(line) as {
      result?: {
        events?: { type?: string; kv: { key: string; value?: string; mod_revision: string } }[];
      };
    };
    for (const event of parsed.result?.events ?? []) {
      const revision = Number(event.kv.mod_revision);
      this.events.push({
        revision,
        key: unb64(event.kv.key),
        value: unb64(event.kv.value),
        type: event.type ?? 'PUT',
      });
      this.#lastRevision = revision;
    }
  }
}

describe('watches and leases across member failures', { timeout: 120_000 }, () => {
  let cluster: ProcessCluster;

  before(async () => {
    cluster = await ProcessCluster.plan(3);
    await cluster.startAll();
  });

  after(async () => {
    await cluster?.stopAll();
  });

  it('delivers every event once, in order, across a leader kill and its own restart', async () => {
    const members = cluster.members;
    const leader = await waitForLeader(members);
    const follower = members.find((m) => m !== leader)!;
    const other = members.find((m) => m !== leader && m !== follower)!;
    const first = (await putSomewhere([follower], 'ev/start', 'start')) as {
      header: { revision: string };
    };
    const startRevision = Number(first.header.revision);
    // Watch from the follower first; on failure move to the other survivor, then the leader.
    const watcher = new ResumingWatcher([follower, other, leader], 'ev/', startRevision);
    watcher.run();
    const writers = members;
    for (let i = 0; i < 40; i++) {
      if (i === 10) await leader.stop('SIGKILL');
      // Bring it back before the next kill: two of three members down would leave no quorum.
      if (i === 15) await leader.start(cluster.initialCluster(), 'new');
      if (i === 20) await follower.stop('SIGKILL');
      if (i === 30) await follower.start(cluster.initialCluster(), 'new');
      await putSomewhere(writers, `ev/${String(i).padStart(3, '0')}`, `v${i}`);
    }
    await putSomewhere(writers, 'ev/end', 'end');
    await waitFor('the watcher to see the last write', () =>
      watcher.events.some((e) => e.key === 'ev/end'),
    );
    watcher.stop();

    // The reference: the committed history from the first write, read in one catch-up watch.
    const reference = new ResumingWatcher([other], 'ev/', startRevision);
    reference.run();
    await waitFor('the history read', () => reference.events.some((e) => e.key === 'ev/end'));
    reference.stop();
    assert.deepEqual(watcher.events, reference.events);
    const revisions = watcher.events.map((e) => e.revision);
    assert.deepEqual(
      revisions,
      [...revisions].sort((x, y) => x - y),
    );
    assert.equal(new Set(revisions).size, revisions.length, 'no event delivered twice');
    for (let i = 0; i < 40; i++) {
      const key = `ev/${String(i).padStart(3, '0')}`;
      assert.ok(
        watcher.events.some((e) => e.key === key),
        `acknowledged write ${key} missing`,
      );
    }
  });

  it('expires leased keys after keep-alives stop, across a leader kill', async () => {
    const members = cluster.members;
    const leader = await waitForLeader(members);
    const follower = members.find((m) => m !== leader)!;
    const ttlSeconds = 4;
    const grant = (await gatewayPost(follower, '/v3/lease/grant', { TTL: String(ttlSeconds) })) as {
      ID: string;
    };
    await gatewayPost(follower, '/v3/kv/put', {
      key: b64('lk/a'),
      value: b64('1'),
      lease: grant.ID,
    });
    const exists = async (m: MemberProcess) => {
      const r = (await gatewayPost(m, '/v3/kv/range', { key: b64('lk/a') })) as { kvs?: unknown[] };
      return (r.kvs ?? []).length > 0;
    };
    // Keep the lease alive for longer than its TTL: the key must stay.
    let lastKeepAliveMs = 0;
    for (let i = 0; i < 2 * ttlSeconds; i++) {
      const response = await fetch(url(follower, '/v3/lease/keepalive'), {
        method: 'POST',
        body: JSON.stringify({ ID: grant.ID }),
        signal: AbortSignal.timeout(5000),
      }).catch(() => undefined);
      const reader = response?.body?.getReader();
      const chunk = await reader?.read();
      lastKeepAliveMs = performance.now();
      await reader?.cancel();
      assert.ok(chunk?.value, 'a keep-alive answer');
      assert.match(Buffer.from(chunk!.value!).toString(), /"TTL":"4"/);
      await pause(500);
    }
    assert.ok(await exists(follower), 'the key survives while kept alive');
    await leader.stop('SIGKILL');
    const survivors = members.filter((m) => m.child !== null);
    await waitForLeader(survivors);
    const goneAtMs = await waitFor(
      'the leased key to be deleted',
      async () => ((await exists(follower)) ? undefined : performance.now()),
      30_000,
      100,
    );
    const afterMs = goneAtMs - lastKeepAliveMs;
    // Not before the TTL (1 s for the renewal happening before its answer reached us), and within
    // TTL + the new leader's grace + generous slack for elections on a busy machine.
    assert.ok(afterMs >= ttlSeconds * 1000 - 1000, `deleted too early: ${afterMs} ms`);
    assert.ok(afterMs <= ttlSeconds * 1000 + 15_000, `deleted too late: ${afterMs} ms`);
    await leader.start(cluster.initialCluster(), 'new');
  });
});
