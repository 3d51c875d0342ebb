/**
 * RpcServer: listens on TCP, registers typed services, serves each connection with a
 * ServerConnection, and shuts down gracefully (GOAWAY, in-flight calls finish, then sockets close).
 */
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { RpcError } from './errors.js';
import { MethodTable, type RegisteredMethod } from './method-table.js';
import { type ConnectionOptions, resolveConnectionOptions } from './options.js';
import { ServerConnection } from './server-connection.js';
import { methodPath, type ServiceDefinition, type ServiceImplementation } from './service.js';

/** Connections one server accepts at once; the kernel's backlog holds the rest. */
export const SERVER_CONNECTIONS_MAX_DEFAULT = 10_000;
/** How long close() waits for in-flight calls before cutting connections. */
export const CLOSE_GRACE_MS_DEFAULT = 5_000;

export interface RpcServerOptions extends Partial<ConnectionOptions> {
  connectionsMax?: number;
}

export interface ListenOptions {
  port: number;
  host?: string;
}

export class RpcServer {
  private readonly options: ConnectionOptions;
  private readonly log: Logger;
  private readonly methods = new MethodTable();
  private readonly connections = new Set<ServerConnection>();
  private readonly server: Server;
  private closing: Promise<void> | null = null;
  /** Set while close() waits for the last connection to go. */
  private onEmpty: (() => void) | null = null;

  constructor(options: RpcServerOptions = {}) {
    this.options = resolveConnectionOptions(options);
    this.log = this.options.logger;
    this.server = createServer({ noDelay: true }, (socket) => this.accept(socket));
    this.server.maxConnections = options.connectionsMax ?? SERVER_CONNECTIONS_MAX_DEFAULT;
    this.server.on('error', (error) => this.log.error({ err: error }, 'rpc: server socket error'));
  }

  /** Registers every method of `definition`; a method registered twice is an error. */
  addService<D extends ServiceDefinition>(
    definition: D,
    implementation: ServiceImplementation<D>,
  ): this {
    for (const [name, method] of Object.entries(definition.methods)) {
      const path = methodPath(definition.name, name);
      const handler = (implementation as Record<string, unknown>)[name];
      if (typeof handler !== 'function') throw new TypeError(`no handler for method ${path}`);
      this.methods.add({
        path,
        kind: method.kind,
        handler: handler.bind(implementation) as RegisteredMethod['handler'],
        validate: method.validateRequest,
      });
    }
    return this;
  }

  /** Starts listening; resolves with the bound address (useful with port 0). */
  listen(options: ListenOptions): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => reject(error);
      this.server.once('error', onError);
      this.server.listen({ port: options.port, host: options.host ?? '127.0.0.1' }, () => {
        this.server.off('error', onError);
        resolve(this.address);
      });
    });
  }

  get address(): { host: string; port: number } {
    const address = this.server.address() as AddressInfo | null;
    if (address === null) throw new Error('server is not listening');
    return { host: address.address, port: address.port };
  }

  /** Open connections, for tests and metrics. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /**
   * Stops accepting connections, tells every client to go away, lets in-flight calls finish for up
   * to `graceMs`, then cuts whatever is left. Resolves when every connection is closed.
   */
  close(graceMs = CLOSE_GRACE_MS_DEFAULT): Promise<void> {
    this.closing ??= this.closeNow(graceMs);
    return this.closing;
  }

  private async closeNow(graceMs: number): Promise<void> {
    const listening = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const connection of this.connections) connection.drain();
    const timer = setTimeout(() => {
      for (const connection of this.connections) {
        connection.destroy(new RpcError('UNAVAILABLE', 'server closed before the call finished'));
      }
    }, graceMs);
    await Promise.all([listening, this.allConnectionsGone()]);
    clearTimeout(timer);
  }

  private allConnectionsGone(): Promise<void> {
    if (this.connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.onEmpty = resolve;
    });
  }

  private accept(socket: Socket): void {
    if (this.closing !== null) {
      socket.destroy();
      return;
    }
    const connection = new ServerConnection(socket, this.options, this.methods, (gone) => {
      this.connections.delete(gone);
      if (this.connections.size === 0) this.onEmpty?.();
    });
    this.connections.add(connection);
  }
}
