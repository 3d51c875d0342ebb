/**
 * Typed service definitions. A service is declared once as a value; both the server's handler
 * object and the client's stub are typed from it, with no code generation:
 *
 *   const echo = defineService({
 *     name: 'echo',
 *     methods: { echo: unary<Req, Res>(), download: serverStream<Req, Chunk>(),
 *                upload: clientStream<Chunk, Res>(), notify: oneWay<Msg>() },
 *   });
 *
 * The type parameters exist only at compile time. A method may also carry a runtime validator for
 * its request messages; a request that fails it is answered with INVALID_ARGUMENT before the handler
 * runs, which is how a layer guards against peers that send well-formed msgpack of the wrong shape.
 */

export type MethodKind = 'unary' | 'serverStream' | 'clientStream' | 'oneWay';

/** Checks that a decoded request has the expected shape. */
export type Validator<T> = (value: unknown) => value is T;

export interface MethodOptions<Req> {
  /** Runs on every decoded request message before the handler sees it. */
  validateRequest?: Validator<Req>;
}

/** One method of a service. `Req` and `Res` are phantom: they are never present at run time. */
export interface MethodDefinition<K extends MethodKind, Req, Res> {
  readonly kind: K;
  readonly validateRequest: Validator<Req> | undefined;
  /** Phantom field that carries the message types for inference; always undefined. */
  readonly types?: { request: Req; response: Res };
}

export type UnaryMethod<Req, Res> = MethodDefinition<'unary', Req, Res>;
export type ServerStreamMethod<Req, Res> = MethodDefinition<'serverStream', Req, Res>;
export type ClientStreamMethod<Req, Res> = MethodDefinition<'clientStream', Req, Res>;
export type OneWayMethod<Req> = MethodDefinition<'oneWay', Req, void>;

// biome-ignore lint/suspicious/noExplicitAny: the widest method type, used only as a constraint.
export type AnyMethod = MethodDefinition<MethodKind, any, any>;

function method<K extends MethodKind, Req, Res>(
  kind: K,
  options: MethodOptions<Req> | undefined,
): MethodDefinition<K, Req, Res> {
  return { kind, validateRequest: options?.validateRequest };
}

/** A call with one request and one response. */
export function unary<Req, Res>(options?: MethodOptions<Req>): UnaryMethod<Req, Res> {
  return method('unary', options);
}

/** A call with one request and a stream of responses (flow controlled). */
export function serverStream<Req, Res>(options?: MethodOptions<Req>): ServerStreamMethod<Req, Res> {
  return method('serverStream', options);
}

/** A call with a stream of requests (flow controlled) and one response. */
export function clientStream<Req, Res>(options?: MethodOptions<Req>): ClientStreamMethod<Req, Res> {
  return method('clientStream', options);
}

/** A fire-and-forget message: no response, no deadline, no delivery guarantee. */
export function oneWay<Req>(options?: MethodOptions<Req>): OneWayMethod<Req> {
  return method('oneWay', options);
}

export interface ServiceDefinition<
  Name extends string = string,
  Methods extends Record<string, AnyMethod> = Record<string, AnyMethod>,
> {
  readonly name: Name;
  readonly methods: Methods;
}

const NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;

/** Declares a service. Names must be short identifiers: they travel in every call frame. */
export function defineService<const Name extends string, Methods extends Record<string, AnyMethod>>(
  definition: ServiceDefinition<Name, Methods>,
): ServiceDefinition<Name, Methods> {
  if (!NAME_PATTERN.test(definition.name))
    throw new TypeError(`invalid service name ${JSON.stringify(definition.name)}`);
  for (const name of Object.keys(definition.methods)) {
    if (!NAME_PATTERN.test(name))
      throw new TypeError(`invalid method name ${JSON.stringify(name)}`);
  }
  return definition;
}

/** The wire name of a method: "service.method". */
export function methodPath(service: string, method: string): string {
  return `${service}.${method}`;
}

/** Per-call options on the client side. */
export interface CallOptions {
  /** Time the call may take, in ms, from the moment it is issued; sent to the server too. */
  timeoutMs?: number;
  /** Aborting it cancels the call on both sides (the handler's signal aborts). */
  signal?: AbortSignal;
}

/** A stream of responses: iterate it; breaking out of the loop or `cancel()` cancels the call. */
export interface ResponseStream<T> extends AsyncIterable<T> {
  cancel(): void;
}

/** What a handler learns about its call. */
export interface CallContext {
  /** Aborts when the caller cancels, the deadline passes or the connection dies. */
  readonly signal: AbortSignal;
  /** Local `performance.now()` time at which the call's deadline passes, if it has one. */
  readonly deadline: number | undefined;
  /** "host:port" of the caller. */
  readonly peer: string;
  /** "service.method". */
  readonly method: string;
}

type RequestOf<M> = M extends MethodDefinition<MethodKind, infer Req, unknown> ? Req : never;
type ResponseOf<M> = M extends MethodDefinition<MethodKind, unknown, infer Res> ? Res : never;

/** The client-side function for one method. */
export type StubMethod<M> = M extends { kind: 'unary' }
  ? (request: RequestOf<M>, options?: CallOptions) => Promise<ResponseOf<M>>
  : M extends { kind: 'serverStream' }
    ? (request: RequestOf<M>, options?: CallOptions) => ResponseStream<ResponseOf<M>>
    : M extends { kind: 'clientStream' }
      ? (
          requests: AsyncIterable<RequestOf<M>> | Iterable<RequestOf<M>>,
          options?: CallOptions,
        ) => Promise<ResponseOf<M>>
      : M extends { kind: 'oneWay' }
        ? (message: RequestOf<M>) => void
        : never;

/** The typed client of a service. */
export type Stub<D extends ServiceDefinition> = {
  readonly [K in keyof D['methods']]: StubMethod<D['methods'][K]>;
};

/** The server-side handler for one method. */
export type Handler<M> = M extends { kind: 'unary' }
  ? (request: RequestOf<M>, context: CallContext) => ResponseOf<M> | Promise<ResponseOf<M>>
  : M extends { kind: 'serverStream' }
    ? (
        request: RequestOf<M>,
        context: CallContext,
      ) => AsyncIterable<ResponseOf<M>> | Iterable<ResponseOf<M>>
    : M extends { kind: 'clientStream' }
      ? (
          requests: AsyncIterable<RequestOf<M>>,
          context: CallContext,
        ) => ResponseOf<M> | Promise<ResponseOf<M>>
      : M extends { kind: 'oneWay' }
        ? (message: RequestOf<M>, context: CallContext) => void | Promise<void>
        : never;

/** The object a server registers for a service: one handler per method. */
export type ServiceImplementation<D extends ServiceDefinition> = {
  readonly [K in keyof D['methods']]: Handler<D['methods'][K]>;
};
