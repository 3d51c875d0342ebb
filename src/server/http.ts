/**
 * The member's HTTP endpoints: `/health` (etcd's shape: `{"health":"true"}` with 200 when a leader
 * is known and no alarm is raised, 503 and `"false"` otherwise) and `/metrics` (Prometheus text).
 * They are served on the metrics URL and, as etcd does, on the client port next to gRPC and the
 * JSON gateway (`MemberGateway` answers them before handing other paths to the gateway).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { EtcdGateway } from './etcd/gateway.js';
import type { EtcdGrpcServer } from './etcd/server.js';
import type { MemberCore } from './member-core.js';

export class MemberGateway extends EtcdGateway {
  constructor(
    grpc: EtcdGrpcServer,
    log: Logger,
    private readonly core: MemberCore,
  ) {
    super(grpc, log);
  }

  override handle(request: IncomingMessage, response: ServerResponse): void {
    if (!serveMemberPaths(this.core, request, response)) super.handle(request, response);
  }
}

export function createHttpServer(core: MemberCore): Server {
  return createServer((request, response) => {
    if (!serveMemberPaths(core, request, response)) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
}

/** Serves /health and /metrics; returns false for any other path. */
function serveMemberPaths(
  core: MemberCore,
  request: IncomingMessage,
  response: ServerResponse,
): boolean {
  {
    const path = (request.url ?? '/').split('?')[0];
    if (path !== '/health' && path !== '/metrics') return false;
    if (request.method !== 'GET') {
      response.writeHead(405).end();
      return true;
    }
    if (path === '/health') {
      const reason =
        core.raft.lead === 0 ? 'no leader' : core.alarms().length > 0 ? 'alarm NOSPACE' : '';
      const body = reason === '' ? { health: 'true' } : { health: 'false', reason };
      response.writeHead(reason === '' ? 200 : 503, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
      return true;
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
      return true;
    }
    return false;
  }
}
