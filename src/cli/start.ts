/**
 * `shoal start`: runs one member with etcd's member flags (same names, meanings and defaults as
 * etcd 3.4, see src/server/config.ts). When the member is ready it prints every URL it serves on
 * stdout as one JSON line (`"msg":"shoal member ready"`), among the pino JSON log lines.
 * SIGTERM and SIGINT shut it down cleanly; a fatal error exits with status 1.
 */
import type { Command } from 'commander';
import { ConfigError, type MemberFlags, resolveConfig } from '../server/config.js';
import { Member } from '../server/member.js';
import { missingMemberNodeFlags } from './node-flags.js';

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run one cluster member (accepts etcd member flags)')
    .option('--name <name>', 'human-readable name for this member', 'default')
    .option('--data-dir <path>', 'path to the data directory (default: <name>.etcd)')
    .option(
      '--listen-client-urls <urls>',
      'URLs to listen on for client traffic',
      'http://localhost:2379',
    )
    .option(
      '--advertise-client-urls <urls>',
      'client URLs to advertise to the cluster',
      'http://localhost:2379',
    )
    .option(
      '--listen-peer-urls <urls>',
      'URLs to listen on for peer traffic',
      'http://localhost:2380',
    )
    .option(
      '--initial-advertise-peer-urls <urls>',
      "this member's peer URLs to advertise",
      'http://localhost:2380',
    )
    .option('--initial-cluster <members>', 'initial cluster: name=peer-url,...')
    .option('--initial-cluster-state <state>', 'new or existing', 'new')
    .option('--initial-cluster-token <token>', 'initial cluster token', 'etcd-cluster')
    .option('--heartbeat-interval <ms>', 'time (in milliseconds) of a heartbeat interval', '100')
    .option('--election-timeout <ms>', 'time (in milliseconds) for an election to timeout', '1000')
    .option(
      '--snapshot-count <n>',
      'applied entries between snapshots (each member waits between half and all of it)',
      '100000',
    )
    .option(
      '--lease-checkpoint-interval <ms>',
      'how often the leader checkpoints remaining lease TTLs',
      '300000',
    )
    .option(
      '--max-request-bytes <bytes>',
      'maximum client request size in bytes',
      String(1.5 * 1024 * 1024),
    )
    .option(
      '--quota-backend-bytes <bytes>',
      'raise an alarm when the backend exceeds this size',
      '0',
    )
    .option('--listen-metrics-urls <urls>', 'URLs for /health and /metrics over HTTP')
    .option('--join <seeds>', 'gossip seeds (host:port,...) of a running cluster to join')
    .option('--autopilot-voters <n>', 'voters autopilot holds the cluster at (3 or 5)', '3')
    .option(
      '--autopilot-stabilization-ms <ms>',
      'time a learner stays caught up and alive before autopilot promotes it',
      '10000',
    )
    .option(
      '--autopilot-dead-voter-ms <ms>',
      'time a voter is dead in SWIM before autopilot replaces it',
      '10000',
    )
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .action(async (flags: MemberFlags & { logLevel: string }) => {
      process.env.SHOAL_LOG_LEVEL ??= flags.logLevel;
      const missing = missingMemberNodeFlags(process.execArgv);
      if (missing.length > 0) {
        process.stderr.write(
          `shoal start: node runs without ${missing.join(' ')} (bin/shoal.mjs's #! line passes it; ` +
            `src/cli/node-flags.ts says why)\n`,
        );
      }
      let config: ReturnType<typeof resolveConfig>;
      try {
        config = resolveConfig(flags);
      } catch (error) {
        if (error instanceof ConfigError) {
          process.stderr.write(`shoal start: ${error.message}\n`);
          process.exit(2);
        }
        throw error;
      }
      await runMember(config);
    });
}

async function runMember(config: ReturnType<typeof resolveConfig>): Promise<void> {
  let member: Member | undefined;
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    try {
      await member?.stop();
    } finally {
      process.exit(code);
    }
  };
  try {
    member = await Member.start(config, {
      onFatal: () => process.exit(1),
      onRemoved: () => void stop(0),
    });
  } catch (error) {
    // Typical causes: a port in use, an unreadable or corrupt data dir, no peer to join.
    process.stderr.write(
      `shoal start: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    process.exit(1);
  }
  process.on('SIGTERM', () => void stop(0));
  process.on('SIGINT', () => void stop(0));
  const urls = member.urls;
  process.stdout.write(
    `${JSON.stringify({ msg: 'shoal member ready', name: config.name, client: urls.client, peer: urls.peer, http: urls.http })}\n`,
  );
}
