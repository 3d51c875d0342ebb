/**
 * The `shoal` command line: one entry point for running members, a local dev cluster, benchmarks
 * and administration. Each subcommand lives in its own module and is registered here.
 */
import { Command } from 'commander';
import { registerBench } from './bench.js';
import { registerDev } from './dev.js';
import { registerMembers } from './members.js';
import { registerStart } from './start.js';

const program = new Command();
program
  .name('shoal')
  .description('A fault-tolerant distributed key-value and file store')
  .version('0.1.0');
registerStart(program);
registerDev(program);
registerBench(program);
registerMembers(program);

await program.parseAsync(process.argv);
