/**
 * Tests for the linearizability checker: hand-written histories that are and are not linearizable
 * (real-time order, stale reads, lost and duplicated compare-and-swaps, operations with unknown
 * outcome), and a seeded property test: histories generated from a real sequential register with
 * each operation's interval around its linearization point always pass, and corrupting one read
 * makes them fail.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  checkLinearizable,
  type Operation,
  type OpInput,
  type OpOutput,
  type RegisterValue,
} from './linearizability.js';

let nextId = 0;
function op(
  clientId: number,
  input: OpInput,
  output: OpOutput,
  invokeTime: number,
  returnTime: number,
  key = 'k',
): Operation {
  return { id: nextId++, clientId, key, input, output, invokeTime, returnTime };
}
const read = (value: RegisterValue): [OpInput, OpOutput] => [
  { kind: 'read' },
  { kind: 'read', value },
];
const write = (value: string): [OpInput, OpOutput] => [{ kind: 'write', value }, { kind: 'write' }];
const cas = (expected: RegisterValue, value: string, succeeded: boolean): [OpInput, OpOutput] => [
  { kind: 'cas', expected, value },
  { kind: 'cas', succeeded },
];
const unknown = ([input]: [OpInput, OpOutput]): [OpInput, OpOutput] => [input, { kind: 'unknown' }];

describe('linearizability checker', () => {
  test('a sequential history that reads what was written is linearizable', () => {
    const h = [op(1, ...write('a'), 0, 1), op(1, ...read('a'), 2, 3), op(2, ...read('a'), 4, 5)];
    assert.equal(checkLinearizable(h).linearizable, true);
  });

  test('the initial value is the absent key', () => {
    assert.equal(checkLinearizable([op(1, ...read(null), 0, 1)]).linearizable, true);
    assert.equal(checkLinearizable([op(1, ...read('x'), 0, 1)]).linearizable, false);
  });

  test('a stale read after a completed write is not linearizable, with a counterexample', () => {
    const h = [op(1, ...write('a'), 0, 1), op(1, ...write('b'), 2, 3), op(2, ...read('a'), 4, 5)];
    const result = checkLinearizable(h);
    assert.equal(result.linearizable, false);
    if (result.linearizable !== false) return;
    assert.equal(result.key, 'k');
    assert.deepEqual(
      result.longestPrefix.map((o) => o.input),
      [
        { kind: 'write', value: 'a' },
        { kind: 'write', value: 'b' },
      ],
    );
    assert.deepEqual(
      result.stuck.map((o) => o.output),
      [{ kind: 'read', value: 'a' }],
    );
    assert.match(result.explanation, /not linearizable/);
  });

  test('a read concurrent with a write may see either value', () => {
    for (const seen of [null, 'a']) {
      const h = [op(1, ...write('a'), 0, 10), op(2, ...read(seen), 2, 5)];
      assert.equal(checkLinearizable(h).linearizable, true, `read ${seen}`);
    }
  });

  test('real-time order: a value cannot flip back after a later write completed', () => {
    const h = [
      op(1, ...write('a'), 0, 10),
      op(2, ...write('b'), 0, 10),
      op(3, ...read('b'), 11, 12),
      op(3, ...read('a'), 13, 14),
    ];
    assert.equal(checkLinearizable(h).linearizable, false);
    // Had the two reads overlapped each other and the writes, the order a, b would explain them.
    const overlapping = [
      op(1, ...write('a'), 0, 10),
      op(2, ...write('b'), 0, 10),
      op(3, ...read('a'), 1, 12),
      op(4, ...read('b'), 1, 12),
    ];
    assert.equal(checkLinearizable(overlapping).linearizable, true);
  });

  test('two compare-and-swaps from the same value cannot both succeed', () => {
    const both = [op(1, ...cas(null, 'x', true), 0, 5), op(2, ...cas(null, 'y', true), 0, 5)];
    assert.equal(checkLinearizable(both).linearizable, false);
    const one = [op(1, ...cas(null, 'x', true), 0, 5), op(2, ...cas(null, 'y', false), 0, 5)];
    assert.equal(checkLinearizable(one).linearizable, true);
  });

  test('a failed compare-and-swap must have seen a different value', () => {
    const h = [op(1, ...write('a'), 0, 1), op(2, ...cas('a', 'b', false), 2, 3)];
    assert.equal(checkLinearizable(h).linearizable, false);
  });

  test('an operation with unknown outcome may take effect late or never', () => {
    const tookEffect = [
      op(1, ...unknown(write('a')), 0, 1),
      op(2, ...read(null), 2, 3),
      op(2, ...read('a'), 100, 101),
    ];
    assert.equal(checkLinearizable(tookEffect).linearizable, true);
    const never = [op(1, ...unknown(write('a')), 0, 1), op(2, ...read(null), 100, 101)];
    assert.equal(checkLinearizable(never).linearizable, true);
    const casLate = [op(1, ...unknown(cas(null, 'c', true)), 0, 1), op(2, ...read('c'), 50, 51)];
    assert.equal(checkLinearizable(casLate).linearizable, true);
  });

  test('an unknown write cannot explain a value that appears and then vanishes', () => {
    const h = [
      op(1, ...unknown(write('a')), 0, 1),
      op(2, ...read('a'), 2, 3),
      op(2, ...read(null), 4, 5),
    ];
    assert.equal(checkLinearizable(h).linearizable, false);
  });

  test('keys are checked independently and the failing key is named', () => {
    const h = [
      op(1, ...write('a'), 0, 1, 'good'),
      op(1, ...read('a'), 2, 3, 'good'),
      op(2, ...write('x'), 0, 1, 'bad'),
      op(2, ...read('y'), 2, 3, 'bad'),
    ];
    const result = checkLinearizable(h);
    assert.equal(result.linearizable, false);
    assert.equal(result.linearizable === false && result.key, 'bad');
  });

  test('histories from a real register are linearizable; a corrupted read is caught', () => {
    const generated = fc.array(
      fc.record({
        kind: fc.constantFrom('read', 'write', 'cas'),
        client: fc.integer({ min: 0, max: 4 }),
        before: fc.integer({ min: 0, max: 30 }),
        after: fc.integer({ min: 0, max: 30 }),
        pick: fc.integer({ min: 0, max: 3 }),
      }),
      { minLength: 1, maxLength: 40 },
    );
    fc.assert(
      fc.property(generated, (plan) => {
        // Run the plan sequentially on a real register; op i takes effect at time 100 * i and its
        // interval stretches `before`/`after` around that point, so intervals overlap freely.
        let state: RegisterValue = null;
        const values = ['v0', 'v1', 'v2', 'v3'];
        const history: Operation[] = plan.map((p, i) => {
          const at = 100 * i + 50;
          const range: [number, number] = [at - p.before * 7, at + p.after * 7];
          const value = `${values[p.pick]}-${i}`;
          if (p.kind === 'read') return op(p.client, ...read(state), ...range);
          if (p.kind === 'write') {
            state = value;
            return op(p.client, ...write(value), ...range);
          }
          const expected = p.pick % 2 === 0 ? state : 'nope';
          const succeeded = expected === state;
          if (succeeded) state = value;
          return op(p.client, ...cas(expected, value, succeeded), ...range);
        });
        assert.equal(checkLinearizable(history).linearizable, true);
        const readIndex = history.findIndex((o) => o.input.kind === 'read');
        if (readIndex >= 0) {
          const corrupted = history.map((o, i) =>
            i === readIndex
              ? { ...o, output: { kind: 'read' as const, value: 'never-written' } }
              : o,
          );
          assert.equal(checkLinearizable(corrupted).linearizable, false);
        }
      }),
      { seed: 20261124, numRuns: 300 },
    );
  });
});
