/**
 * A shoal member process, assembled: the replicated core (member-core.ts: WAL, raft, peer
 * transport, MVCC store, registry), the etcd v3 gRPC API on the client URL (raft-backend.ts), and
 * HTTP `/health` + `/metrics` on the metrics URL. Logs are pino JSON lines carrying the member's
 * name and, on every line, its current raft term and role.
 *
 *   const member = await Member.start(resolveConfig(flags));
 *   console.log(member.urls);          // every URL it serves
 *   await member.stop();               // clean shutdown: raft stops, stores close
 */
import type { Server } from 'node:http';
import { type Logger, pino } from 'pino';
import { nativeKv } from '../client/protocol.js';
import { ROLE_NAMES } from '../raft/index.js';
import { AutopilotRunner } from './autopilot-wiring.js';
import type { MemberConfig } from './config.js';
import { listenClientPort } from './etcd/gateway.js';
import { EtcdGrpcServer } from './etcd/server.js';
import { createHttpServer, MemberGateway } from './http.js';
import { MemberCore } from './member-core.js';
import { type MembershipEntry, MembershipWiring } from './membership-wiring.js';
import { MemberMetrics } from './metrics.js';
import { createNativeKvService } from './native/service.js';
import { RaftBackend } from './raft-backend.js';

export interface MemberUrls {
  client: string[];
  peer: string[];
  http: string[];
}

export interface MemberStartOptions {
  logger?: Logger;
  /** Called on a fatal error (storage I/O, invariant violation) after logging it. */
  onFatal?: (error: unknown) => void;
  /** Called once this member has been removed from the cluster. */
  onRemoved?: () => void;
}

function hostOf(url: URL): string {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' ? '127.0.0.1' : host;
}

export class Member {
  /** SWIM gossip on the peer port (membership-wiring.ts). */
  membership: MembershipWiring | null = null;
  /** Membership changes from the SWIM view, acting on the raft leader only. */
  autopilot: AutopilotRunner | null = null;

  private constructor(
    readonly core: MemberCore,
    private readonly grpc: EtcdGrpcServer,
    private readonly closeClientPort: () => Promise<void>,
    private readonly http: Server,
    readonly urls: MemberUrls,
    readonly log: Logger,
  ) {}

  static async start(config: MemberConfig, options: MemberStartOptions = {}): Promise<Member> {
    let core: MemberCore | undefined;
    // Every line says which term and role the member was in when it was written (pino's mixin
    // is a root option, so a caller-supplied logger gets the member name only).
    const base =
      options.logger ??
      pino({
        level: process.env.SHOAL_LOG_LEVEL ?? 'info',
        mixin: () =>
          core === undefined ? {} : { term: core.raft.term, role: ROLE_NAMES[core.raft.role] },
      });
    const log = base.child({ member: config.name });
    const metrics = new MemberMetrics({ member: config.name });
    core = await MemberCore.open(config, log, metrics);
    core.onFatal = (error) => {
      log.fatal({ err: error }, 'fatal error: the member stops');
      options.onFatal?.(error);
    };
    core.onRemoved = () => {
      log.warn('this member was removed from the cluster');
      options.onRemoved?.();
    };
    const backend = new RaftBackend(core);
    // The native client protocol (shoal/client) is served on the peer port, next to raft traffic.
    core.transport.addService(
      nativeKv,
      createNativeKvService({
        backend,
        maxRequestBytes: config.maxRequestBytes,
        logger: log.child({ component: 'native-kv' }),
      }).handlers,
    );
    let membership: MembershipWiring | null = null;
    const listed = (): MembershipEntry[] => membership?.list() ?? [];
    MembershipWiring.register(core, listed);
    const { peerPort } = await core.start();
    const grpc = new EtcdGrpcServer({
      backend,
      maxRequestBytes: config.maxRequestBytes,
      logger: log.child({ component: 'etcd-api' }),
      onHandled: (method, code, seconds) => metrics.grpcHandled(method, code, seconds),
    });
    const clientUrl = config.listenClientUrls[0]!;
    // One client port serves gRPC, etcd's JSON gateway, /health and /metrics, as etcd's does.
    const gateway = new MemberGateway(grpc, log.child({ component: 'gateway' }), core);
    const client = await listenClientPort(grpc, gateway, hostOf(clientUrl), Number(clientUrl.port));
    const clientPort = client.port;
    const http = createHttpServer(core);
    const metricsUrl = config.listenMetricsUrls[0];
    const httpHost = hostOf(metricsUrl ?? clientUrl);
    const httpPort = await new Promise<number>((resolve, reject) => {
      http.once('error', reject);
      http.listen(metricsUrl === undefined ? 0 : Number(metricsUrl.port), httpHost, () => {
        const address = http.address();
        resolve(typeof address === 'object' && address !== null ? address.port : 0);
      });
    });
    const urls: MemberUrls = {
      client: [`http://${hostOf(clientUrl)}:${clientPort}`],
      peer: [`http://${hostOf(config.listenPeerUrls[0]!)}:${peerPort}`],
      http: [
        `http://${hostOf(clientUrl)}:${clientPort}/v3/ (JSON gateway)`,
        `http://${hostOf(clientUrl)}:${clientPort}/health`,
        `http://${httpHost}:${httpPort}/health`,
        `http://${httpHost}:${httpPort}/metrics`,
      ],
    };
    membership = await MembershipWiring.start({
      core,
      peerPort,
      clientUrls: urls.client,
      // The advertised peer URLs, as raft's registry and member ids know them.
      peerUrls: config.initialAdvertisePeerUrls.map((u) => u.href.replace(/\/$/, '')),
      log,
    });
    const autopilot = new AutopilotRunner(core, membership, log.child({ component: 'autopilot' }));
    autopilot.start();
    log.info({ urls, id: config.memberId.toString(16), dataDir: config.dataDir }, 'member ready');
    const member = new Member(core, grpc, client.close, http, urls, log);
    member.membership = membership;
    member.autopilot = autopilot;
    return member;
  }

  /** Clean shutdown: stop serving clients, stop raft (finishing its writes), close the stores. */
  async stop(): Promise<void> {
    this.log.info('member stopping');
    this.autopilot?.stop();
    // Leaving first lets peers see "left" at once instead of suspecting a failure.
    await this.membership?.stop();
    await Promise.all([
      // GOAWAY first, so calls in flight can finish (up to 500 ms); then the port and any
      // connection left (JSON gateway, clients that did not go) are closed.
      this.grpc.close(500).then(() => this.closeClientPort()),
      new Promise<void>((resolve) => {
        this.http.close(() => resolve());
        this.http.closeAllConnections();
      }),
    ]);
    await this.core.stop();
    this.log.info('member stopped');
  }
}
