/**
 * Free TCP ports for members started as child processes (the dev cluster, process-level tests).
 * Each port is found by listening on port 0 and closing again; all listeners are held open until
 * every port is chosen, so one call never returns the same port twice. Another process may still
 * take a port before the member binds it; callers that must be sure retry on EADDRINUSE.
 */
import { createServer, type Server } from 'node:net';

/** Reserves `count` distinct free ports on `host`. */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      const port = await new Promise<number>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, host, () => {
          const address = server.address();
          resolve(typeof address === 'object' && address !== null ? address.port : 0);
        });
      });
      ports.push(port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}
