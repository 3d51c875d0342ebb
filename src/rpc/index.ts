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
 *
 * Semantics other layers rely on:
 * - Messages are msgpack values. A top-level Uint8Array message travels raw (no msgpack, no copy);
 *   Uint8Array fields inside objects arrive as Buffers that are views into the received frame.
 *   A Uint8Array larger than 16 KiB is written by reference: do not modify it after sending it.
 * - On one connection, frames are sent and handled in the order they were issued: one-way messages
 *   arrive in order and handlers start in call order (they may finish in any order).
 * - One-way sends are at-most-once: queued messages are lost if the connection dies. `send` throws
 *   synchronously (UNAVAILABLE while the peer is in dial backoff, RESOURCE_EXHAUSTED when
 *   bufferedBytesMax bytes are already queued) and never blocks.
 * - Deadlines (`timeoutMs`) cover dialing, queueing and the server's work; the server receives the
 *   remaining time, aborts the handler's `context.signal` when it passes, and answers
 *   DEADLINE_EXCEEDED. Cancelling (`signal`, `stream.cancel()`, breaking out of a `for await`)
 *   aborts the handler's signal with CANCELLED.
 * - Connections are dialed on first use and redialed after loss. After a failed dial, calls fail
 *   fast with UNAVAILABLE until the backoff delay (exponential with jitter) has passed; there is no
 *   silent retry of calls, callers decide.
 * - `server.close()` and `client.close()` send GOAWAY, let calls in flight finish (up to a grace
 *   period) and refuse new ones; a client that receives GOAWAY sends new calls on a new connection.
 */
export { BACKOFF_DEFAULTS, type BackoffOptions, backoffDelayMs, seededRandom } from './backoff.js';
export {
  type ClientState,
  type PeerAddress,
  RpcClient,
  type RpcClientOptions,
  RpcClientPool,
} from './client.js';
export { isRpcError, RpcError, Status, type StatusCode, statusFromNumber } from './errors.js';
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
