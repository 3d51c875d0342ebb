/**
 * End-to-end linearizability: concurrent clients read, write and compare-and-swap a few keys
 * through the etcd gRPC API, and the recorded history must be linearizable. Run against real etcd
 * it proves the workload, the client and the checker agree with a known-correct server; run against
 * shoal it checks shoal. A deliberately stale server shows that the pipeline does catch violations.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { EtcdBackend } from '../src/server/etcd/backend.js';
import { etcdInstalled, type RunningEtcd, startEtcd } from './support/etcd-process.js';
import { checkLinearizable, type Operation } from './support/linearizability.js';
import { runRegisterWorkload, type WorkloadOptions } from './support/register-workload.js';
import { type RunningShoal, startShoal } from './support/shoal-server.js';

const workload: Omit<WorkloadOptions, 'address' | 'prefix'> = {
  clients: 6,
  opsPerClient: 60,
  keys: ['a', 'b', 'c'],
  seed: 7,
};

/** Checks the history and that it exercised what it should (so a pass means something). */
function assertLinearizableAndRich(history: Operation[]): void {
  assert.equal(history.length, workload.clients * workload.opsPerClient);
  const count = (predicate: (op: Operation) => boolean) => history.filter(predicate).length;
  assert.ok(count((o) => o.output.kind === 'cas' && o.output.succeeded) > 0, 'no cas succeeded');
  assert.ok(count((o) => o.output.kind === 'cas' && !o.output.succeeded) > 0, 'no cas failed');
  assert.ok(
    count((o) => o.output.kind === 'read' && o.output.value !== null) > 0,
    'no read saw data',
  );
  const result = checkLinearizable(history);
  assert.equal(result.linearizable, true, result.linearizable === false ? result.explanation : '');
}

describe('linearizability of the etcd API under concurrent clients', () => {
  let shoal: RunningShoal;
  before(async () => {
    shoal = await startShoal();
  });
  after(async () => {
    await shoal?.close();
  });

  test('shoal (single member on the MVCC store) is linearizable', async () => {
    const history = await runRegisterWorkload({
      ...workload,
      address: `127.0.0.1:${shoal.port}`,
      prefix: 'lin/',
    });
    assertLinearizableAndRich(history);
  });

  test('a server that serves stale reads is caught', async () => {
    const stale = await startShoal({ wrapBackend: staleReads });
    try {
      // One client, sequential: write a, write b, then read. A stale read returns a, which no
      // linearization allows once the write of b has returned.
      const history = await runRegisterWorkload({
        clients: 1,
        opsPerClient: 40,
        keys: ['only'],
        seed: 3,
        address: `127.0.0.1:${stale.port}`,
        prefix: 'stale/',
      });
      const result = checkLinearizable(history);
      assert.equal(result.linearizable, false);
    } finally {
      await stale.close();
    }
  });

  test('writes that time out but still take effect are handled as unknown outcomes', async () => {
    // Every fifth write is applied, then its answer is held back past the client's deadline: the
    // client cannot know it happened, and the checker must still find the history linearizable.
    const slow = await startShoal({ wrapBackend: slowAnswers });
    try {
      const history = await runRegisterWorkload({
        ...workload,
        opsPerClient: 30,
        deadlineMs: 1_000,
        address: `127.0.0.1:${slow.port}`,
        prefix: 'slow/',
      });
      const unknown = history.filter((o) => o.output.kind === 'unknown');
      assert.ok(unknown.length > 0, 'expected some operations with unknown outcome');
      const result = checkLinearizable(history);
      assert.equal(
        result.linearizable,
        true,
        result.linearizable === false ? result.explanation : '',
      );
    } finally {
      await slow.close();
    }
  });

  describe('real etcd', { skip: etcdInstalled() ? false : 'etcd is not installed' }, () => {
    let etcd: RunningEtcd;
    before(async () => {
      etcd = await startEtcd();
    });
    after(async () => {
      await etcd?.stop();
    });

    test('etcd is linearizable under the same workload', async () => {
      const history = await runRegisterWorkload({
        ...workload,
        address: etcd.endpoint,
        prefix: 'lin/',
      });
      assertLinearizableAndRich(history);
    });
  });
});

/** Wraps a backend so that every read is answered as of one revision before the last write. */
function staleReads(backend: EtcdBackend): EtcdBackend {
  let lastWriteRevision = 1;
  const note = <T extends { header: { revision: number } }>(response: T): T => {
    lastWriteRevision = response.header.revision;
    return response;
  };
  const overrides: Partial<EtcdBackend> = {
    range: (request) => backend.range({ ...request, revision: Math.max(1, lastWriteRevision - 1) }),
    put: async (request) => note(await backend.put(request)),
    txn: async (request) => note(await backend.txn(request)),
  };
  return new Proxy(backend, {
    get(target, property, receiver) {
      const override = overrides[property as keyof EtcdBackend];
      if (override) return override;
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** Wraps a backend so that every fifth write answers 3 s after it has been applied. */
function slowAnswers(backend: EtcdBackend): EtcdBackend {
  let writes = 0;
  const delayed = async <T>(result: Promise<T>): Promise<T> => {
    const value = await result;
    if (++writes % 5 === 0) await new Promise((resolve) => setTimeout(resolve, 3_000));
    return value;
  };
  const overrides: Partial<EtcdBackend> = {
    put: (request) => delayed(backend.put(request)),
    txn: (request) => delayed(backend.txn(request)),
  };
  return new Proxy(backend, {
    get(target, property, receiver) {
      const override = overrides[property as keyof EtcdBackend];
      if (override) return override;
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
