/**
 * The cost of replicated lease renewals (src/server/leases.ts): a 3-member shoal cluster of real
 * processes (heartbeat 100 ms, election timeout 1000 ms), N leases kept alive by the etcd3 npm
 * client (one keep-alive every TTL/3 per lease, as etcd's clients do), and over a measuring
 * window the raft proposals the leader made to replicate renewals, all committed proposals, the
 * keep-alives answered and their latency (fired to answered).
 *
 *   npm run bench:lease-renewals -- [leases=1000] [ttlSeconds=6] [windowSeconds=20]
 */
import { Etcd3, type Lease } from 'etcd3';
import { ProcessCluster, waitForLeader } from '../test/support/member-process.js';

const [leaseCount = 1000, ttlSeconds = 6, windowSeconds = 20] = process.argv
  .slice(2)
  .map((arg) => Number(arg));

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

async function main(): Promise<void> {
  const cluster = await ProcessCluster.plan(3, [
    '--heartbeat-interval=100',
    '--election-timeout=1000',
  ]);
  const clients: Etcd3[] = [];
  const leases: Lease[] = [];
  try {
    await cluster.startAll();
    const leader = await waitForLeader(cluster.members);
    for (const member of cluster.members) clients.push(new Etcd3({ hosts: member.endpoint }));
    let answered = 0;
    let measuring = false;
    const latenciesMs: number[] = [];
    for (let i = 0; i < leaseCount; i++) {
      const lease = clients[i % clients.length]!.lease(ttlSeconds);
      let firedAt = 0;
      lease.on('keepaliveFired', () => {
        firedAt = performance.now();
      });
      lease.on('keepaliveSucceeded', () => {
        if (!measuring) return;
        answered++;
        latenciesMs.push(performance.now() - firedAt);
      });
      leases.push(lease);
    }
    await Promise.all(leases.map((lease) => lease.grant()));
    // Let every lease's keep-alive loop settle into its period before measuring.
    await new Promise((resolve) => setTimeout(resolve, (ttlSeconds * 1000) / 3 + 1000));
    const renewalsBefore = await metric(leader.metricsUrl, 'shoal_lease_renewal_proposals_total');
    const committedBefore = await metric(
      leader.metricsUrl,
      'etcd_server_proposals_committed_total',
    );
    measuring = true;
    await new Promise((resolve) => setTimeout(resolve, windowSeconds * 1000));
    measuring = false;
    const renewals =
      (await metric(leader.metricsUrl, 'shoal_lease_renewal_proposals_total')) - renewalsBefore;
    const committed =
      (await metric(leader.metricsUrl, 'etcd_server_proposals_committed_total')) - committedBefore;
    latenciesMs.sort((a, b) => a - b);
    const lines = [
      `leases ${leaseCount}, TTL ${ttlSeconds} s, window ${windowSeconds} s, load ${(await import('node:os')).loadavg()[0]!.toFixed(1)}`,
      `keep-alives answered: ${(answered / windowSeconds).toFixed(0)}/s`,
      `renewal proposals: ${(renewals / windowSeconds).toFixed(2)}/s`,
      `all committed proposals: ${(committed / windowSeconds).toFixed(2)}/s`,
      `keep-alive latency ms: p50 ${percentile(latenciesMs, 0.5).toFixed(0)}, p99 ${percentile(latenciesMs, 0.99).toFixed(0)}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    for (const lease of leases) lease.release();
    for (const client of clients) client.close();
    await cluster.stopAll();
  }
}

await main();
