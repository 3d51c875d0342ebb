/**
 * The member's HTTP endpoint: `/health` (etcd's shape: `{"health":"true"}` with 200 when a leader
 * is known and no alarm is raised, 503 and `"false"` otherwise) and `/metrics` (Prometheus text).
 */
import { createServer, type Server } from 'node:http';
import type { MemberCore } from './member-core.js';

export function createHttpServer(core: MemberCore): Server {
  return createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET') {
      response.writeHead(405).end();
      return;
    }
    if (path === '/health') {
      const reason =
        core.raft.lead === 0 ? 'no leader' : core.alarms().length > 0 ? 'alarm NOSPACE' : '';
      const body = reason === '' ? { health: 'true' } : { health: 'false', reason };
      response.writeHead(reason === '' ? 200 : 503, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
      return;
    }
    if (path === '/metrics') {
      core.metrics.text().then(
        (text) => {
          response.writeHead(200, { 'content-type': core.metrics.registry.contentType });
          response.end(text);
        },
        (error: unknown) => {
          response.writeHead(500).end(String(error));
        },
      );
      return;
    }
    response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
}
