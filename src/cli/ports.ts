/**
 * Free TCP ports for members started as child processes (the dev cluster, process-level tests).
 *
 * Ports come from below the kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range):
 * a port found by listening on port 0 lies inside that range, where any process's next outgoing
 * connection may take it before the member binds it, and on a busy test machine that happened
 * (EADDRINUSE at member start). Below the range only another caller of this function can collide,
 * and the candidates are drawn at random from about 20,000 ports; a marker file per handed-out port
 * (in <tmpdir>/shoal-ports, created exclusively, reusable after PORT_CLAIM_MS) keeps two processes
 * that call it at the same time from choosing the same port. Each candidate is also checked by
 * binding it (TCP, and UDP for SWIM, which uses the peer port number); all listeners are held open
 * until every port is chosen, so one call never returns the same port twice. Where the range cannot
 * be read, it falls back to ports the kernel picks.
 */
import { createSocket } from 'node:dgram';
import { closeSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The lowest port handed out: above the well-known and most registered service ports. */
const PORT_MIN = 10_000;
/** How long a handed-out port stays claimed against other processes (longer than any test file). */
const PORT_CLAIM_MS = 15 * 60 * 1000;
const claimDir = join(tmpdir(), 'shoal-ports');

/** Claims `port` for this process unless another process claimed it recently. */
function claim(port: number): boolean {
  const path = join(claimDir, String(port));
  try {
    mkdirSync(claimDir, { recursive: true });
    closeSync(openSync(path, 'wx'));
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return true;
    try {
      if (Date.now() - statSync(path).mtimeMs < PORT_CLAIM_MS) return false;
      unlinkSync(path);
      closeSync(openSync(path, 'wx'));
      return true;
    } catch {
      return false;
    }
  }
}

/** Candidates tried per port before giving up. */
const ATTEMPTS_PER_PORT_MAX = 200;

/** The first port of the ephemeral range, or undefined where it is unknown. */
function ephemeralRangeStart(): number | undefined {
  try {
    const low = Number(
      readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0],
    );
    return Number.isInteger(low) && low > PORT_MIN + 1000 ? low : undefined;
  } catch {
    return undefined;
  }
}

function listenTcp(port: number, host: string): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen({ port, host, exclusive: true }, () => resolve(server));
  });
}

function udpFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    socket.once('error', () => {
      socket.close();
      resolve(false);
    });
    socket.bind(port, host, () => socket.close(() => resolve(true)));
  });
}

function portOf(server: Server): number {
  const address = server.address();
  return typeof address === 'object' && address !== null ? address.port : 0;
}

/** Reserves `count` distinct free ports on `host`. */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers: Server[] = [];
  const limit = ephemeralRangeStart();
  try {
    for (let i = 0; i < count; i++) {
      let server: Server | undefined;
      for (let attempt = 0; server === undefined; attempt++) {
        if (limit === undefined || attempt >= ATTEMPTS_PER_PORT_MAX) {
          server = await listenTcp(0, host);
          if (server === undefined) throw new Error(`no free port on ${host}`);
          break;
        }
        const candidate = PORT_MIN + Math.floor(Math.random() * (limit - PORT_MIN));
        if (!claim(candidate)) continue;
        server = await listenTcp(candidate, host);
        if (server !== undefined && !(await udpFree(candidate, host))) {
          await new Promise((resolve) => server!.close(resolve));
          server = undefined;
        }
      }
      servers.push(server);
    }
    return servers.map(portOf);
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}
