/**
 * SWIM in real member processes: three members of a new cluster find each other through their
 * --initial-cluster peer addresses, `shoal members` prints their gossip state and raft role, a
 * SIGKILLed member is reported dead by the others, and a SIGTERMed one leaves gracefully.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { RpcClientPool } from '../src/rpc/index.js';
import { type MembershipEntry, membersService } from '../src/server/membership-wiring.js';
import { type MemberProcess, ProcessCluster, waitFor } from './support/member-process.js';

const SHOAL_BIN = fileURLToPath(new URL('../bin/shoal.mjs', import.meta.url));
const pool = new RpcClientPool({ connectTimeoutMs: 1000 });

function peerAddressOf(member: MemberProcess): string {
  return `127.0.0.1:${member.spec.peerPort}`;
}

async function swimView(member: MemberProcess): Promise<Map<string, MembershipEntry>> {
  const reply = await pool
    .stub(peerAddressOf(member), membersService)
    .list({}, { timeoutMs: 2000 });
  return new Map(reply.members.map((m) => [m.name, m]));
}

function runMembersCli(endpoint: string): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [SHOAL_BIN, 'members', `--endpoints=${endpoint}`],
      { timeout: 20_000, encoding: 'utf8' },
      (error, stdout) => resolve({ code: error === null ? 0 : 1, stdout }),
    );
  });
}

describe('SWIM membership in member processes', { timeout: 90_000 }, () => {
  let cluster: ProcessCluster;

  before(async () => {
    cluster = await ProcessCluster.plan(4);
    // Four voters: m4 is SIGKILLed and m3 SIGTERMed later; SWIM needs no raft quorum.
    await cluster.startAll();
  });

  after(async () => {
    await cluster?.stopAll();
    await pool.close(0);
  });

  it('members see each other alive, with their raft roles and URLs', async () => {
    const names = cluster.members.map((m) => m.spec.name);
    for (const member of cluster.members) {
      await waitFor(`${member.spec.name} sees every member alive`, async () => {
        const view = await swimView(member);
        return names.every(
          (n) => view.get(n)?.swimState === 'alive' && view.get(n)?.role === 'voter',
        );
      });
    }
    const view = await swimView(cluster.members[0]!);
    assert.deepEqual(view.get('m2')?.clientUrls, [`http://${cluster.members[1]!.endpoint}`]);
    // Free disk space is measured on each member's data dir and gossiped with its metadata.
    for (const name of names) assert.ok((view.get(name)?.freeDiskBytes ?? 0) > 0, name);
    const cli = await runMembersCli(peerAddressOf(cluster.members[0]!));
    assert.equal(cli.code, 0);
    for (const name of names)
      assert.match(cli.stdout, new RegExp(`^${name}\\t\\S+\\talive\\tvoter`, 'm'));
  });

  it('a SIGKILLed member is reported dead; a SIGTERMed one has left', async () => {
    const [m1, m2, m3, m4] = cluster.members as [
      MemberProcess,
      MemberProcess,
      MemberProcess,
      MemberProcess,
    ];
    await m4.stop('SIGKILL');
    for (const member of [m1, m2, m3]) {
      await waitFor(
        `${member.spec.name} reports m4 dead`,
        async () => (await swimView(member)).get('m4')?.swimState === 'dead',
        45_000,
        250,
      );
    }
    await m3.stop('SIGTERM');
    for (const member of [m1, m2]) {
      await waitFor(
        `${member.spec.name} reports m3 left`,
        async () => (await swimView(member)).get('m3')?.swimState === 'left',
        10_000,
      );
    }
  });
});
