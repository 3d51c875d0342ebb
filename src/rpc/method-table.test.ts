/** MethodTable finds methods from raw name bytes, rejects near misses and duplicate names. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MethodTable, type RegisteredMethod } from './method-table.js';

function method(path: string): RegisteredMethod {
  return { path, kind: 'unary', handler: () => path, validate: undefined };
}

test('lookup by bytes finds exactly the registered names', () => {
  const table = new MethodTable();
  const names = Array.from({ length: 500 }, (_, i) => `service${i % 7}.method${i}`);
  for (const name of names) table.add(method(name));
  for (const name of names) {
    // The name sits at the start of a longer body, as in a CALL frame.
    const body = Buffer.concat([Buffer.from(name), Buffer.from([0x92, 1, 2])]);
    assert.equal(table.lookup(body, Buffer.byteLength(name))?.path, name);
  }
  for (const miss of ['service0.method', 'service0.method00', 'x', 'service1.method1 ']) {
    assert.equal(table.lookup(Buffer.from(miss), Buffer.byteLength(miss)), undefined, miss);
  }
  assert.ok(table.has('service0.method0'));
});

test('registering a name twice is an error', () => {
  const table = new MethodTable();
  table.add(method('a.b'));
  assert.throws(() => table.add(method('a.b')), /already registered/);
});
