/**
 * ShoalClient against a real 3-member `shoal start` cluster, talking the native protocol to the
 * members' peer ports: it finds the leader by itself, spreads serializable reads over every
 * member while linearizable reads and writes go to the leader (per-member request counters), and
 * keeps working after the member it was talking to is SIGKILLed, without losing acknowledged writes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { compare, op, ShoalClient, type WatchEvent } from '../src/client/index.js';
import { type MemberProcess, ProcessCluster, waitFor } from './support/member-process.js';

const text = (bytes: Uint8Array | undefined) => Buffer.from(bytes ?? []).toString();
const nativeEndpoint = (member: MemberProcess) => `127.0.0.1:${member.spec.peerPort}`;

/** Waits until the live members agree on a leader and returns it, asking through the client. */
async function agreedLeader(
  client: ShoalClient,
  members: readonly MemberProcess[],
): Promise<MemberProcess> {
  return waitFor('the members to agree on a leader', async () => {
    const statuses = await Promise.all(members.map((m) => client.status(nativeEndpoint(m))));
    const leader = statuses[0]!.leader;
    if (leader === 0n || statuses.some((s) => s.leader !== leader)) return undefined;
    const index = statuses.findIndex((s) => s.header.memberId === leader);
    return index < 0 ? undefined : members[index];
  });
}

/**
 * Starts a 3-member cluster and a client for the enclosing suite, stopped after it; read them
 * from the returned holder inside tests.
 */
function clusterAndClient(extraArgs: string[] = []): {
  cluster: ProcessCluster;
  client: ShoalClient;
} {
  const held = {} as { cluster: ProcessCluster; client: ShoalClient };
  before(async () => {
    held.cluster = await ProcessCluster.plan(3, extraArgs);
    await held.cluster.startAll();
    held.client = new ShoalClient({
      endpoints: held.cluster.members.map(nativeEndpoint),
      timeoutMs: 3_000,
    });
  });
  after(async () => {
    await held.client?.close();
    await held.cluster?.stopAll();
  });
  return held;
}

describe('ShoalClient on a 3-member cluster', { timeout: 120_000 }, () => {
  const setup = clusterAndClient();

  it('discovers the leader and sends writes and linearizable reads to it', async () => {
    const { cluster, client } = setup;
    const leader = await agreedLeader(client, cluster.members);
    assert.equal(await client.leaderEndpoint(), nativeEndpoint(leader));
    const before = await Promise.all(cluster.members.map((m) => client.stats(nativeEndpoint(m))));
    for (let i = 0; i < 10; i++) await client.put(`k/${i}`, `v${i}`);
    for (let i = 0; i < 10; i++) assert.equal(text((await client.get(`k/${i}`))?.value), `v${i}`);
    const afterStats = await Promise.all(
      cluster.members.map((m) => client.stats(nativeEndpoint(m))),
    );
    cluster.members.forEach((member, i) => {
      const puts = afterStats[i]!.requests.put! - before[i]!.requests.put!;
      const ranges = afterStats[i]!.requests.range! - before[i]!.requests.range!;
      const expected = member === leader ? 10 : 0;
      assert.equal(puts, expected, `puts served by ${member.spec.name}`);
      assert.equal(ranges, expected, `linearizable reads served by ${member.spec.name}`);
    });
  });

  it('spreads serializable reads across every member', async () => {
    const { cluster, client } = setup;
    await client.put('spread', 'x');
    // A follower may not have applied the put yet; wait until each member's local state has it.
    for (const member of cluster.members) {
      await waitFor(`${member.spec.name} to apply the put`, async () => {
        const status = await client.status(nativeEndpoint(member));
        const leaderStatus = await client.status();
        return status.raftAppliedIndex >= leaderStatus.raftIndex - 1n;
      });
    }
    const before = await Promise.all(cluster.members.map((m) => client.stats(nativeEndpoint(m))));
    const reads = 30;
    for (let i = 0; i < reads; i++) await client.get('spread', { serializable: true });
    const afterStats = await Promise.all(
      cluster.members.map((m) => client.stats(nativeEndpoint(m))),
    );
    const served = afterStats.map((s, i) => s.requests.range! - before[i]!.requests.range!);
    assert.equal(
      served.reduce((a, b) => a + b, 0),
      reads,
    );
    for (const count of served)
      assert.equal(count, reads / cluster.members.length, `spread: ${served}`);
  });

  it('resumes a watch on another member after SIGKILL, without losing or repeating events', async () => {
    const { cluster, client } = setup;
    const before = await Promise.all(cluster.members.map((m) => client.stats(nativeEndpoint(m))));
    const watch = client.watch('watched/', { prefix: true });
    const received: WatchEvent[] = [];
    const timer = setTimeout(() => watch.cancel(), 60_000);
    let wanted = 10;
    let reached: () => void = () => {};
    let progress = new Promise<void>((resolve) => {
      reached = resolve;
    });
    const consumer = (async () => {
      for await (const batch of watch) {
        received.push(...batch.events);
        if (received.length >= wanted) reached();
        if (received.length >= 20) break;
      }
    })();
    await watch.started;
    for (let i = 0; i < 10; i++) await client.put(`watched/${String(i).padStart(2, '0')}`, 'x');
    await progress;
    const afterStats = await Promise.all(
      cluster.members.map((m) => client.stats(nativeEndpoint(m))),
    );
    const watched = cluster.members.find(
      (_, i) => afterStats[i]!.requests.watch! > before[i]!.requests.watch!,
    );
    assert.ok(watched !== undefined, 'no member counted the watch stream');
    await watched.stop('SIGKILL');
    wanted = 20;
    progress = new Promise<void>((resolve) => {
      reached = resolve;
    });
    // A write in flight when its member died has an unknown outcome; a create-if-absent txn is
    // safe to send again, so every key is written exactly once whatever happens.
    for (let i = 10; i < 20; i++) {
      const key = `watched/${String(i).padStart(2, '0')}`;
      await waitFor(`${key} to be written`, async () => {
        await client.txn().if(compare(key).version('=', 0)).then(op.put(key, 'x')).commit();
        return true;
      });
    }
    await consumer;
    clearTimeout(timer);
    assert.deepEqual(
      received.map((e) => text(e.kv.key)),
      Array.from({ length: 20 }, (_, i) => `watched/${String(i).padStart(2, '0')}`),
    );
    for (let i = 1; i < received.length; i++)
      assert.ok(received[i]!.kv.modRevision > received[i - 1]!.kv.modRevision);
    assert.ok(watch.opens >= 2, 'the watch never had to resume');
    // Bring the member back so that the next test starts with three.
    await watched.start(cluster.initialCluster(), 'new');
    await agreedLeader(client, cluster.members);
  });

  it('fails over after the member it talks to is SIGKILLed, losing no acknowledged write', async () => {
    const { cluster, client } = setup;
    const leader = await agreedLeader(client, cluster.members);
    assert.equal(await client.leaderEndpoint(), nativeEndpoint(leader));
    const acknowledged: string[] = [];
    for (let i = 0; i < 20; i++) {
      await client.put(`before-kill/${i}`, 'x');
      acknowledged.push(`before-kill/${i}`);
    }
    await leader.stop('SIGKILL');
    const survivors = cluster.members.filter((m) => m !== leader);
    // Writes right after the kill: the client must find the new leader without help. A write
    // that was in flight when the connection broke may fail (it may have been applied), so each
    // key is written until acknowledged and only acknowledged keys are checked.
    const failures: string[] = [];
    for (let i = 0; i < 20; i++) {
      const key = `after-kill/${i}`;
      await waitFor(`a write of ${key} to be acknowledged`, async () => {
        try {
          await client.put(key, 'y');
          return true;
        } catch (error) {
          failures.push(`${(error as { code?: string }).code}: ${String(error)}`);
          throw error;
        }
      });
      acknowledged.push(key);
    }
    // Only a write already on the dead member's socket may fail (its outcome is unknown); the
    // client must not give up on any write that it could still send safely.
    assert.ok(failures.length <= 1, `writes failed after the kill: ${failures.join('; ')}`);
    for (const failure of failures) assert.match(failure, /UNAVAILABLE|connection to/);
    const newLeader = await agreedLeader(client, survivors);
    assert.notEqual(newLeader, leader);
    assert.equal(await client.leaderEndpoint(), nativeEndpoint(newLeader));
    const keys = new Set<string>();
    for (const prefix of ['before-kill/', 'after-kill/']) {
      const present = await client.range(prefix, { prefix: true, keysOnly: true });
      for (const kv of present.kvs) keys.add(text(kv.key));
    }
    assert.deepEqual(
      acknowledged.filter((key) => !keys.has(key)),
      [],
    );
  });
});

/** The request size limit of the batched-puts suite: small, so that a batch must be split. */
const MAX_REQUEST_BYTES = 8192;

describe('batched puts on a 3-member cluster', { timeout: 120_000 }, () => {
  const setup = clusterAndClient([`--max-request-bytes=${MAX_REQUEST_BYTES}`]);

  it('carries each putBatch as one raft entry, with a revision and an answer per put', async () => {
    const { cluster, client } = setup;
    const leader = await agreedLeader(client, cluster.members);
    // Puts are batched once the client knows the leader: one write lets it learn which it is.
    await client.put('entry/first', 'x');
    const before = await client.status(nativeEndpoint(leader));
    const batchesBefore = (await client.stats(nativeEndpoint(leader))).requests.putBatch ?? 0;
    const puts = 40;
    // Started in one turn, so the client sends them as putBatch calls. One names a lease that
    // does not exist: it alone fails, as it would on its own.
    const answers = await Promise.allSettled(
      Array.from({ length: puts }, (_, i) =>
        client.put(`entry/${i}`, `v${i}`, i === 7 ? { lease: 0x7eadn } : undefined),
      ),
    );
    const after = await client.status(nativeEndpoint(leader));
    const batches =
      ((await client.stats(nativeEndpoint(leader))).requests.putBatch ?? 0) - batchesBefore;
    assert.ok(batches > 0, 'the puts went out in batches');
    const refused = answers[7]!;
    assert.ok(refused.status === 'rejected');
    assert.match(String(refused.reason), /requested lease not found/);
    const revisions = answers.flatMap((a) =>
      a.status === 'fulfilled' ? [a.value.header.revision] : [],
    );
    assert.equal(revisions.length, puts - 1);
    assert.equal(new Set(revisions).size, puts - 1, 'every put has its own revision');
    assert.equal(after.header.revision - before.header.revision, puts - 1);
    // One entry per call rather than one per put (other entries, such as a member's publish,
    // are rare and at most a few).
    const entries = Number(after.raftIndex - before.raftIndex);
    assert.ok(entries <= batches + 2, `${entries} raft entries for ${batches} putBatch calls`);
    for (let i = 0; i < puts; i++) {
      const got = await client.get(`entry/${i}`);
      assert.equal(i === 7 ? got : text(got?.value), i === 7 ? undefined : `v${i}`);
    }
  });

  it('splits a batch into entries no bigger than --max-request-bytes', async () => {
    const { cluster, client } = setup;
    const leader = await agreedLeader(client, cluster.members);
    await client.put('big/first', 'x');
    const before = await client.status(nativeEndpoint(leader));
    const puts = 24;
    const value = Buffer.alloc(1500, 'v');
    const answers = await Promise.all(
      Array.from({ length: puts }, (_, i) => client.put(`big/${i}`, value)),
    );
    const after = await client.status(nativeEndpoint(leader));
    assert.equal(new Set(answers.map((a) => a.header.revision)).size, puts);
    // Five of these puts fit under the limit, so the 24 need at least five entries, and fewer
    // than one each.
    const entries = Number(after.raftIndex - before.raftIndex);
    const fewest = Math.ceil((puts * (value.length + 'big/00'.length)) / MAX_REQUEST_BYTES);
    assert.ok(entries >= fewest, `${entries} entries: a write bigger than the limit went out`);
    assert.ok(entries < puts, `${entries} entries for ${puts} puts: the puts were not batched`);
    const stored = await client.range('big/', { prefix: true, countOnly: true });
    assert.equal(stored.count, puts + 1);
  });

  it('loses no acknowledged put of concurrent batches when the leader is SIGKILLed', async () => {
    const { cluster, client } = setup;
    const leader = await agreedLeader(client, cluster.members);
    const workers = 32;
    const acksPerWorker = 15;
    const attemptsPerWorkerMax = 200;
    const killAfterAcks = 100;
    const acknowledged = new Map<string, string>();
    const failures: string[] = [];
    let killed: Promise<unknown> | undefined;
    // Every worker writes new keys only, so an unacknowledged put (maybe applied, maybe not)
    // never hides or overwrites an acknowledged one.
    const worker = async (w: number) => {
      let acks = 0;
      for (let attempt = 0; acks < acksPerWorker; attempt++) {
        assert.ok(attempt < attemptsPerWorkerMax, `worker ${w} made no progress`);
        const key = `batched/${w}/${attempt}`;
        const value = `value ${w} ${attempt}`;
        try {
          await client.put(key, value);
          acknowledged.set(key, value);
          acks++;
          if (acknowledged.size === killAfterAcks) killed = leader.stop('SIGKILL');
        } catch (error) {
          failures.push(`${(error as { code?: string }).code}: ${String(error)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
    await killed;
    assert.ok(killed !== undefined, 'the leader was killed mid-run');
    // Only puts in flight to the dead member may fail (at most one per worker, allowing for a
    // second leader change), and only as unreachable or timed out.
    assert.ok(failures.length <= 2 * workers, `${failures.length} puts failed`);
    for (const failure of failures) assert.match(failure, /^(UNAVAILABLE|DEADLINE_EXCEEDED):/);
    const survivors = cluster.members.filter((m) => m !== leader);
    const newLeader = await agreedLeader(client, survivors);
    const stats = await client.stats(nativeEndpoint(newLeader));
    assert.ok((stats.requests.putBatch ?? 0) > 0, 'puts after the failover went out in batches');
    const present = await client.range('batched/', { prefix: true });
    const stored = new Map(present.kvs.map((kv) => [text(kv.key), text(kv.value)]));
    const lost = [...acknowledged].filter(([key, value]) => stored.get(key) !== value);
    assert.deepEqual(lost, []);
    assert.equal(acknowledged.size, workers * acksPerWorker);
  });
});
