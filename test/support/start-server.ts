/**
 * Runs shoal's single-member etcd API until Ctrl-C, for poking at it with etcdctl by hand:
 *   npm run etcd:dev -- [port] [data-dir]
 * Without a port it picks a free one; without a data directory it uses a temporary one that is
 * removed on exit. The endpoint is printed on the first line of output.
 */
import { pino } from 'pino';
import { startSingleMemberServer } from '../../src/server/etcd/single-member.js';
import { startShoal } from './shoal-server.js';

const port = Number(process.argv[2] ?? 0);
const dataDir = process.argv[3];
const logger = pino({ level: process.env.SHOAL_LOG_LEVEL ?? 'silent' });
const shoal = dataDir
  ? await startSingleMemberServer({ dataDir, port, name: 'dev', logger })
  : await startShoal({ port });
console.log(`shoal etcd API listening on ${shoal.endpoint}`);
process.on('SIGINT', () => {
  void shoal.close().then(() => process.exit(0));
});
