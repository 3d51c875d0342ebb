/**
 * Shared fixtures for the RPC suites: a test service covering every call kind, a server/client
 * pair on port 0, a silent logger that records warnings, and a bounded wait-for-condition helper
 * (tests never sleep to synchronize).
 */
import pino, { type Logger } from 'pino';
import {
  clientStream,
  defineService,
  oneWay,
  RpcClient,
  type RpcClientOptions,
  RpcServer,
  type RpcServerOptions,
  type ServiceImplementation,
  serverStream,
  unary,
} from '../../src/rpc/index.js';

export interface EchoRequest {
  text: string;
  delayMs?: number;
}
export interface Chunk {
  index: number;
  data: Uint8Array;
}

export const testService = defineService({
  name: 'test',
  methods: {
    echo: unary<EchoRequest, EchoRequest>(),
    bytes: unary<Uint8Array, Uint8Array>(),
    fail: unary<{ code: string }, never>(),
    wait: unary<{ id: string }, string>(),
    notify: oneWay<{ seq: number }>(),
    download: serverStream<{ count: number; size: number }, Chunk>(),
    upload: clientStream<Chunk, { count: number; bytes: number }>(),
    validated: unary<{ n: number }, number>({
      validateRequest: (value): value is { n: number } =>
        typeof value === 'object' &&
        value !== null &&
        typeof (value as { n?: unknown }).n === 'number',
    }),
  },
});

/**
 * Every socket test gets this bound, so a lost answer fails the test by name instead of hanging
 * the run; the tests themselves finish in well under a second.
 */
export const TEST_TIMEOUT_MS = 30_000;

/** A pino logger that discards output but keeps every record at warn and above for assertions. */
export function recordingLogger(): { logger: Logger; records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'warn' },
    {
      write(line: string) {
        records.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  );
  return { logger, records };
}

export { waitFor } from '../support/wait-for.js';

export function defaultImplementation(
  overrides: Partial<ServiceImplementation<typeof testService>> = {},
): ServiceImplementation<typeof testService> {
  return {
    echo: async (request) => request,
    bytes: (request) => request,
    fail: (request) => {
      throw new (class extends Error {})(`failing with ${request.code}`);
    },
    wait: (_request, context) =>
      new Promise((_, reject) =>
        context.signal.addEventListener('abort', () => reject(context.signal.reason)),
      ),
    notify: () => {},
    async *download(request) {
      for (let index = 0; index < request.count; index++)
        yield { index, data: new Uint8Array(request.size).fill(index & 0xff) };
    },
    async upload(chunks) {
      let count = 0;
      let bytes = 0;
      for await (const chunk of chunks) {
        count++;
        bytes += chunk.data.length;
      }
      return { count, bytes };
    },
    validated: (request) => request.n * 2,
    ...overrides,
  };
}

export async function startPair(
  implementation = defaultImplementation(),
  serverOptions: RpcServerOptions = {},
  clientOptions: RpcClientOptions = {},
): Promise<{ server: RpcServer; client: RpcClient; address: string; close: () => Promise<void> }> {
  const quiet = recordingLogger().logger;
  const server = new RpcServer({ logger: quiet, ...serverOptions });
  server.addService(testService, implementation);
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
  const address = `127.0.0.1:${port}`;
  const client = new RpcClient(address, { logger: quiet, ...clientOptions });
  return {
    server,
    client,
    address,
    close: async () => {
      await client.close(1_000);
      await server.close(1_000);
    },
  };
}

/** A started pair whose server records the `seq` of every `notify` it receives, in order. */
export async function startNotifyPair(
  serverOptions: RpcServerOptions = {},
  clientOptions: RpcClientOptions = {},
) {
  const received: number[] = [];
  const pair = await startPair(
    defaultImplementation({ notify: (message) => void received.push(message.seq) }),
    serverOptions,
    clientOptions,
  );
  return { ...pair, received, stub: pair.client.stub(testService) };
}
