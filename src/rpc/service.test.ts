/**
 * Service definitions: the type-level checks below are verified by `tsc --noEmit` (part of
 * `npm test`): each `@ts-expect-error` line must be a compile error, or tsc fails on the unused
 * directive. The runtime tests check name validation and stub shape.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RpcClient } from './client.js';
import {
  clientStream,
  defineService,
  oneWay,
  type ServiceImplementation,
  type Stub,
  serverStream,
  unary,
} from './service.js';

interface Req {
  text: string;
}
interface Res {
  length: number;
}
interface Chunk {
  data: Uint8Array;
}

const echo = defineService({
  name: 'echo',
  methods: {
    echo: unary<Req, Res>(),
    upload: clientStream<Chunk, Res>(),
    download: serverStream<Req, Chunk>(),
    notify: oneWay<{ seq: number }>(),
  },
});

/** Never called: exists so tsc checks the stub and handler types. */
export function typeChecks(stub: Stub<typeof echo>): void {
  const response: Promise<Res> = stub.echo({ text: 'hi' }, { timeoutMs: 5 });
  void response;
  // @ts-expect-error: unknown method name
  void stub.ehco({ text: 'hi' });
  // @ts-expect-error: wrong request type
  void stub.echo({ text: 42 });
  // @ts-expect-error: missing request
  void stub.echo();
  // @ts-expect-error: response is Res, not string
  const wrong: Promise<string> = stub.echo({ text: 'hi' });
  void wrong;
  // @ts-expect-error: unknown call option
  void stub.echo({ text: 'hi' }, { deadline: 5 });
  stub.notify({ seq: 1 });
  // @ts-expect-error: one-way message of the wrong type
  stub.notify({ seq: '1' });
  // @ts-expect-error: one-way methods return nothing to await on
  const nothing: Promise<void> = stub.notify({ seq: 1 });
  void nothing;
  void stub.upload([{ data: new Uint8Array(1) }]);
  // @ts-expect-error: client streams take an iterable of Chunk
  void stub.upload([{ text: 'hi' }]);
  const chunks: AsyncIterable<Chunk> = stub.download({ text: 'x' });
  void chunks;
  // @ts-expect-error: server streams yield Chunk, not Res
  const wrongChunks: AsyncIterable<Res> = stub.download({ text: 'x' });
  void wrongChunks;
}

export const goodImplementation: ServiceImplementation<typeof echo> = {
  echo: (request) => ({ length: request.text.length }),
  async upload(chunks) {
    let length = 0;
    for await (const chunk of chunks) length += chunk.data.length;
    return { length };
  },
  async *download(request) {
    yield { data: Buffer.from(request.text) };
  },
  notify: () => {},
};

export const badImplementation: ServiceImplementation<typeof echo> = {
  // @ts-expect-error: handler returns the wrong response type
  echo: (request) => request.text.length,
  upload: async () => ({ length: 0 }),
  download: () => [],
  notify: () => {},
};

// @ts-expect-error: a handler is missing
export const incompleteImplementation: ServiceImplementation<typeof echo> = {
  echo: () => ({ length: 0 }),
};

test('stubs expose exactly the declared methods, as functions', async () => {
  const client = new RpcClient('127.0.0.1:1');
  const stub = client.stub(echo);
  assert.deepEqual(Object.keys(stub).sort(), ['download', 'echo', 'notify', 'upload']);
  for (const method of Object.values(stub)) assert.equal(typeof method, 'function');
  assert.equal(client.stub(echo), stub, 'stubs are cached per definition');
  await client.close();
});

test('service and method names are validated', () => {
  assert.throws(() => defineService({ name: 'has space', methods: {} }), TypeError);
  assert.throws(() => defineService({ name: 'ok', methods: { 'bad/name': unary() } }), TypeError);
  assert.doesNotThrow(() => defineService({ name: 'shoal.raft', methods: { append: oneWay() } }));
});
