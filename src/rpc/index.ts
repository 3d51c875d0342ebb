/**
 * shoal RPC: the transport for every byte between members (raft messages, snapshot streams, file
 * chunks, forwarded proposals) and for shoal's native client protocol.
 *
 * Length-prefixed frames over TCP (layout in frame.ts), msgpack bodies (codec.ts), calls multiplexed
 * over one connection by id: unary, one-way, server-streaming and client-streaming, with per-stream
 * credit flow control, deadlines and cancellation that reach the handler, keepalive, reconnect with
 * backoff, and a named limit on every buffer (options.ts). Failures are RpcError with a gRPC status
 * code name.
 *
 * Usage:
 *
 *   const echo = defineService({
 *     name: 'echo',
 *     methods: {
 *       echo: unary<{ text: string }, { text: string }>(),
 *       notify: oneWay<{ seq: number }>(),
 *       download: serverStream<{ count: number }, Uint8Array>(),
 *       upload: clientStream<Uint8Array, { bytes: number }>(),
 *     },
 *   });
 *
 *   const server = new RpcServer();
 *   server.addService(echo, {
 *     echo: (request, context) => ({ text: request.text }),   // context.signal, .deadline, .peer
 *     notify: (message) => { ... },
 *     async *download(request) { for (let i = 0; i < request.count; i++) yield new Uint8Array(4096); },
 *     async upload(chunks) { let bytes = 0; for await (const chunk of chunks) bytes += chunk.length; return { bytes }; },
 *   });
 *   const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
 *
 *   const client = new RpcClient(`127.0.0.1:${port}`);
 *   const stub = client.stub(echo);
 *   const reply = await stub.echo({ text: 'hi' }, { timeoutMs: 1000 });
 *   stub.notify({ seq: 1 });                                   // fire-and-forget, throws RpcError if it cannot queue
 *   for await (const chunk of stub.download({ count: 3 })) { ... }
 *   await stub.upload(chunks);                                 // any (async) iterable; pulled only as credit allows
 *   await client.close(); await server.close();
 *
 * Errors: every failure is an `RpcError` with `code` (CANCELLED, DEADLINE_EXCEEDED, UNAVAILABLE,
 * RESOURCE_EXHAUSTED, INVALID_ARGUMENT, UNIMPLEMENTED, INTERNAL, UNKNOWN, ...). A handler throwing an
 * RpcError chooses the code the caller sees; anything else thrown arrives as UNKNOWN.
 */
export { BACKOFF_DEFAULTS, type BackoffOptions, backoffDelayMs, seededRandom } from './backoff.js';
export {
  type ClientState,
  type PeerAddress,
  RpcClient,
  type RpcClientOptions,
  RpcClientPool,
} from './client.js';
export { isRpcError, RpcError, Status, type StatusCode } from './errors.js';
export { FRAME_BYTES_MAX_DEFAULT } from './frame.js';
export { CONNECTION_DEFAULTS, type ConnectionOptions } from './options.js';
export { type ListenOptions, RpcServer, type RpcServerOptions } from './server.js';
export {
  type CallContext,
  type CallOptions,
  clientStream,
  defineService,
  type Handler,
  type MethodDefinition,
  oneWay,
  type ResponseStream,
  type ServiceDefinition,
  type ServiceImplementation,
  type Stub,
  serverStream,
  unary,
} from './service.js';
export { INITIAL_WINDOW_BYTES } from './stream.js';
