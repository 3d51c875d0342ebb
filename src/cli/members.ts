/**
 * `shoal members --endpoints host:port`: asks one member (on its peer port) for its SWIM view and
 * prints each member's gossip state and raft role, one line per member, or JSON with `-w json`.
 */
import type { Command } from 'commander';
import { RpcClientPool } from '../rpc/index.js';
import { membersService } from '../server/membership-wiring.js';

const LIST_TIMEOUT_MS = 5000;

export function registerMembers(program: Command): void {
  program
    .command('members')
    .description("print a member's SWIM view: each member's gossip state and raft role")
    .requiredOption('--endpoints <host:port>', "a member's peer address (host:port)")
    .option('-w, --write-out <format>', 'table or json', 'table')
    .action(async (flags: { endpoints: string; writeOut: string }) => {
      const endpoint = flags.endpoints.split(',')[0]!.replace(/^https?:\/\//, '');
      const pool = new RpcClientPool({ connectTimeoutMs: 2000 });
      try {
        const reply = await pool
          .stub(endpoint, membersService)
          .list({}, { timeoutMs: LIST_TIMEOUT_MS });
        if (flags.writeOut === 'json') {
          process.stdout.write(`${JSON.stringify(reply)}\n`);
          return;
        }
        for (const m of reply.members) {
          process.stdout.write(
            `${m.name}\t${m.address}\t${m.swimState}\t${m.role}\t${m.clientUrls.join(',')}\n`,
          );
        }
      } catch (error) {
        process.stderr.write(
          `shoal members: ${error instanceof Error ? error.message : String(error)}\n`,
        );
        process.exitCode = 1;
      } finally {
        await pool.close(0);
      }
    });
}
