/**
 * RpcClient: the client for one peer address. It dials lazily on the first call, multiplexes every
 * call over that one connection, and dials again when the connection is lost. A failed dial starts
 * exponential backoff with jitter: until the next attempt is due, calls fail fast with UNAVAILABLE
 * (saying why and when the next attempt is), so callers such as raft never block on a dead peer.
 *
 * RpcClientPool keeps one RpcClient per address, for layers that talk to many peers.
 */
import { connect, type Socket } from 'node:net';
import { BACKOFF_DEFAULTS, type BackoffOptions, backoffDelayMs } from './backoff.js';
import {
  type ClientCall,
  ClientStreamCall,
  encodeRequest,
  ServerStreamCall,
  UnaryCall,
} from './client-calls.js';
import { ClientConnection } from './client-connection.js';
import { messageFlags } from './codec.js';
import { RpcError } from './errors.js';
import { type ConnectionOptions, resolveConnectionOptions } from './options.js';
import {
  type CallOptions,
  methodPath,
  type ResponseStream,
  type ServiceDefinition,
  type Stub,
} from './service.js';

export const CONNECT_TIMEOUT_MS_DEFAULT = 5_000;
/** How long close() lets calls in flight finish before cutting the connection. */
export const CLIENT_CLOSE_GRACE_MS_DEFAULT = 5_000;

export interface RpcClientOptions extends Partial<ConnectionOptions> {
  connectTimeoutMs?: number;
  backoff?: Partial<BackoffOptions>;
}

export type PeerAddress = string | { host: string; port: number };

export type ClientState = 'idle' | 'connecting' | 'ready' | 'backoff' | 'closed';

interface PendingOneWay {
  method: Uint8Array;
  flags: number;
  bytes: Uint8Array;
}

export function formatAddress(address: PeerAddress): string {
  return typeof address === 'string' ? address : `${address.host}:${address.port}`;
}

function parseAddress(address: PeerAddress): { host: string; port: number } {
  if (typeof address !== 'string') return address;
  const colon = address.lastIndexOf(':');
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535)
    throw new TypeError(`invalid peer address ${JSON.stringify(address)}; expected host:port`);
  return { host: address.slice(0, colon).replace(/^\[|\]$/g, ''), port };
}

export class RpcClient {
  readonly address: string;
  private readonly target: { host: string; port: number };
  private readonly options: ConnectionOptions;
  private readonly backoff: BackoffOptions;
  private readonly connectTimeoutMs: number;
  private connection: ClientConnection | null = null;
  /** Every connection not yet closed, including ones draining after GOAWAY. */
  private readonly live = new Set<ClientConnection>();
  private readonly goneWaiters = new Set<() => void>();
  private dialing: Promise<ClientConnection> | null = null;
  /** Calls waiting for the dial in progress. Bounded by callsInFlightMax. */
  private waitingCalls = 0;
  /** One-way messages sent while dialing, written on connect. Bounded by bufferedBytesMax. */
  private pendingOneWays: PendingOneWay[] = [];
  private pendingOneWayBytes = 0;
  private failedDials = 0;
  private retryAtMs = 0;
  private lastDialError = '';
  private closed = false;
  private readonly stubs = new WeakMap<ServiceDefinition, unknown>();

  constructor(address: PeerAddress, options: RpcClientOptions = {}) {
    this.address = formatAddress(address);
    this.target = parseAddress(address);
    this.options = resolveConnectionOptions(options);
    this.backoff = { ...BACKOFF_DEFAULTS, ...options.backoff };
    this.connectTimeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS_DEFAULT;
  }

  get state(): ClientState {
    if (this.closed) return 'closed';
    if (this.connection?.usable) return 'ready';
    if (this.dialing !== null) return 'connecting';
    if (performance.now() < this.retryAtMs) return 'backoff';
    return 'idle';
  }

  /** A typed stub for `definition`; cached, so calling this per request is cheap. */
  stub<D extends ServiceDefinition>(definition: D): Stub<D> {
    let stub = this.stubs.get(definition) as Stub<D> | undefined;
    if (stub === undefined) {
      stub = this.buildStub(definition);
      this.stubs.set(definition, stub);
    }
    return stub;
  }

  unary(method: Uint8Array, request: unknown, options?: CallOptions): Promise<unknown> {
    let call: UnaryCall;
    let openingBytes: number;
    try {
      const payload = encodeRequest(request, this.options.frameBytesMax);
      openingBytes = payload.length;
      const flags = messageFlags(request);
      call = new UnaryCall(method, payload, flags, options?.timeoutMs, options?.signal);
    } catch (error) {
      return Promise.reject(error);
    }
    this.startCall(call, openingBytes, options?.signal);
    return call.promise;
  }

  serverStream(
    method: Uint8Array,
    request: unknown,
    options?: CallOptions,
  ): ResponseStream<unknown> {
    let call: ServerStreamCall;
    let openingBytes: number;
    try {
      const payload = encodeRequest(request, this.options.frameBytesMax);
      openingBytes = payload.length;
      const flags = messageFlags(request);
      call = new ServerStreamCall(method, payload, flags, options?.timeoutMs, options?.signal);
    } catch (error) {
      // Report the failure where stream errors always surface: when the caller iterates.
      const failed = new ServerStreamCall(method, new Uint8Array(0), 0);
      failed.fail(RpcError.from(error));
      return failed;
    }
    this.startCall(call, openingBytes, options?.signal);
    return call;
  }

  clientStream(
    method: Uint8Array,
    requests: AsyncIterable<unknown> | Iterable<unknown>,
    options?: CallOptions,
  ): Promise<unknown> {
    let call: ClientStreamCall;
    try {
      call = new ClientStreamCall(method, requests, options?.timeoutMs, options?.signal);
    } catch (error) {
      return Promise.reject(error);
    }
    this.startCall(call, 0, options?.signal);
    return call.promise;
  }

  /** Bytes queued on this client's connection and not yet taken by the kernel. */
  get bufferedBytes(): number {
    return this.connection?.bufferedBytes ?? 0;
  }

  /**
   * Writes what this client queued on its connection now instead of at the end of the event-loop
   * turn (for a caller whose messages are already one batch and are on a latency-critical path).
   */
  flush(): void {
    if (this.connection?.usable) this.connection.flush();
  }

  /**
   * Sends a one-way message. Returns once it is queued (it is written with the other frames
   * queued around it; Connection.send says when). Throws RpcError UNAVAILABLE while the peer is in backoff or the
   * client is closed, RESOURCE_EXHAUSTED when the connection's buffer is full, INVALID_ARGUMENT
   * when the message cannot be encoded. Delivery is not guaranteed: messages queued when a
   * connection dies are lost, as raft expects of its transport.
   */
  oneWay(method: Uint8Array, message: unknown): void {
    const connection = this.connection;
    if (connection?.usable) {
      connection.oneWay(method, message);
      return;
    }
    const dialing = this.acquire();
    const bytes = encodeRequest(message, this.options.frameBytesMax);
    const flags = messageFlags(message);
    if (this.pendingOneWayBytes + bytes.length > this.options.bufferedBytesMax) {
      throw new RpcError(
        'RESOURCE_EXHAUSTED',
        `more than ${this.options.bufferedBytesMax} bytes queued for ${this.address} while connecting`,
      );
    }
    this.pendingOneWays.push({ method, flags, bytes });
    this.pendingOneWayBytes += bytes.length;
    void dialing.catch(() => {});
  }

  /**
   * Stops taking calls, lets calls in flight finish for up to `graceMs`, then closes the
   * connections. Resolves when every connection is closed.
   */
  async close(graceMs = CLIENT_CLOSE_GRACE_MS_DEFAULT): Promise<void> {
    this.closed = true;
    this.dropPendingOneWays();
    if (this.dialing !== null) await this.dialing.catch(() => {});
    for (const connection of this.live) connection.drain();
    if (this.live.size === 0) return;
    const allGone = new Promise<void>((resolve) => {
      const check = () => {
        if (this.live.size === 0) {
          this.goneWaiters.delete(check);
          resolve();
        }
      };
      this.goneWaiters.add(check);
    });
    const timer = setTimeout(() => {
      for (const connection of this.live)
        connection.destroy(new RpcError('UNAVAILABLE', 'client closed before the call finished'));
    }, graceMs);
    await allGone;
    clearTimeout(timer);
  }

  private startCall(call: ClientCall, openingBytes: number, signal: AbortSignal | undefined): void {
    if (signal?.aborted) {
      call.fail(
        new RpcError('CANCELLED', 'call cancelled by the caller', { cause: signal.reason }),
      );
      return;
    }
    const connection = this.connection;
    if (connection?.usable) {
      connection.start(call, openingBytes);
      return;
    }
    let dialing: Promise<ClientConnection>;
    try {
      dialing = this.acquire();
    } catch (error) {
      call.fail(RpcError.from(error));
      return;
    }
    if (this.waitingCalls >= this.options.callsInFlightMax) {
      call.fail(
        new RpcError('RESOURCE_EXHAUSTED', `too many calls waiting to connect to ${this.address}`),
      );
      return;
    }
    this.waitingCalls++;
    dialing.then(
      (ready) => {
        this.waitingCalls--;
        ready.start(call, openingBytes);
      },
      (error: unknown) => {
        this.waitingCalls--;
        call.fail(RpcError.from(error));
      },
    );
  }

  /** The dial in progress, or a new one. Throws UNAVAILABLE when closed or backing off. */
  private acquire(): Promise<ClientConnection> {
    if (this.closed) throw new RpcError('UNAVAILABLE', `client for ${this.address} is closed`);
    if (this.dialing !== null) return this.dialing;
    const waitMs = this.retryAtMs - performance.now();
    if (waitMs > 0) {
      throw new RpcError(
        'UNAVAILABLE',
        `cannot reach ${this.address} (${this.lastDialError}); next attempt in ${Math.ceil(waitMs)} ms`,
      );
    }
    this.dialing = this.dial();
    return this.dialing;
  }

  private dial(): Promise<ClientConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: this.target.host, port: this.target.port, noDelay: true });
      const timer = setTimeout(
        () => socket.destroy(new Error(`connect timed out after ${this.connectTimeoutMs} ms`)),
        this.connectTimeoutMs,
      );
      const onError = (error: Error) => {
        clearTimeout(timer);
        this.dialing = null;
        this.failedDials++;
        this.retryAtMs = performance.now() + backoffDelayMs(this.backoff, this.failedDials);
        this.lastDialError = error.message;
        this.dropPendingOneWays();
        this.options.logger.debug({ peer: this.address, err: error }, 'rpc: dial failed');
        reject(new RpcError('UNAVAILABLE', `cannot connect to ${this.address}: ${error.message}`));
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(this.connected(socket));
      });
    });
  }

  private connected(socket: Socket): ClientConnection {
    const connection = new ClientConnection(socket, this.options, (gone) => this.onGone(gone));
    this.dialing = null;
    this.failedDials = 0;
    this.retryAtMs = 0;
    this.connection = connection;
    this.live.add(connection);
    for (const pending of this.pendingOneWays)
      connection.sendEncodedOneWay(pending.method, pending.flags, pending.bytes);
    this.pendingOneWays = [];
    this.pendingOneWayBytes = 0;
    // Closed while dialing: the calls that waited for this dial start first (their callbacks run
    // once this returns), then the connection drains them.
    if (this.closed) setImmediate(() => connection.drain());
    return connection;
  }

  private onGone(connection: ClientConnection): void {
    this.live.delete(connection);
    if (this.connection === connection) this.connection = null;
    for (const waiter of [...this.goneWaiters]) waiter();
  }

  private dropPendingOneWays(): void {
    this.pendingOneWays = [];
    this.pendingOneWayBytes = 0;
  }

  private buildStub<D extends ServiceDefinition>(definition: D): Stub<D> {
    const stub: Record<string, unknown> = {};
    for (const [name, method] of Object.entries(definition.methods)) {
      const path = Buffer.from(methodPath(definition.name, name), 'utf8');
      switch (method.kind) {
        case 'unary':
          stub[name] = (request: unknown, options?: CallOptions) =>
            this.unary(path, request, options);
          break;
        case 'serverStream':
          stub[name] = (request: unknown, options?: CallOptions) =>
            this.serverStream(path, request, options);
          break;
        case 'clientStream':
          stub[name] = (
            requests: AsyncIterable<unknown> | Iterable<unknown>,
            options?: CallOptions,
          ) => this.clientStream(path, requests, options);
          break;
        case 'oneWay':
          stub[name] = (message: unknown) => this.oneWay(path, message);
          break;
      }
    }
    return Object.freeze(stub) as Stub<D>;
  }
}

/** One RpcClient per peer address, created on first use with shared options. */
export class RpcClientPool {
  private readonly clients = new Map<string, RpcClient>();
  private readonly options: RpcClientOptions;

  constructor(options: RpcClientOptions = {}) {
    this.options = options;
  }

  get(address: PeerAddress): RpcClient {
    const key = formatAddress(address);
    let client = this.clients.get(key);
    if (client === undefined) {
      client = new RpcClient(address, this.options);
      this.clients.set(key, client);
    }
    return client;
  }

  stub<D extends ServiceDefinition>(address: PeerAddress, definition: D): Stub<D> {
    return this.get(address).stub(definition);
  }

  /** Closes and forgets the client for `address` (a peer that left the cluster). */
  async remove(address: PeerAddress, graceMs?: number): Promise<void> {
    const key = formatAddress(address);
    const client = this.clients.get(key);
    this.clients.delete(key);
    await client?.close(graceMs);
  }

  get size(): number {
    return this.clients.size;
  }

  async close(graceMs?: number): Promise<void> {
    const clients = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(clients.map((client) => client.close(graceMs)));
  }
}
