/**
 * Runs shoal's etcd API on one port until Ctrl-C, for poking at it with etcdctl by hand:
 *   npm run etcd:dev -- [port]        (default: a free port; the endpoint is printed)
 * The backend is the in-memory test double until the MVCC store is wired in.
 */
import { startShoal } from './shoal-server.js';

const port = Number(process.argv[2] ?? 0);
const shoal = await startShoal({ port });
console.log(`shoal etcd API listening on ${shoal.endpoint}`);
process.on('SIGINT', () => {
  void shoal.close().then(() => process.exit(0));
});
