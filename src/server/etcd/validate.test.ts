/**
 * Tests for the request checks: empty keys, contradictory put flags, op limits, and the
 * duplicate-key rules of txn branches (repeated puts, puts inside deleted ranges, nested txns).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PutRequest, RequestOp, TxnRequest } from './types.js';
import { checkPutRequest, checkTxnRequest } from './validate.js';

const bytes = (text: string) => new Uint8Array(Buffer.from(text));
const putReq = (key: string): PutRequest => ({
  key: bytes(key),
  value: bytes('v'),
  lease: 0n,
  prevKv: false,
  ignoreValue: false,
  ignoreLease: false,
});
const put = (key: string): RequestOp => ({ type: 'put', request: putReq(key) });
const del = (key: string, end = ''): RequestOp => ({
  type: 'deleteRange',
  request: {
    key: bytes(key),
    rangeEnd: end === '\0' ? new Uint8Array([0]) : bytes(end),
    prevKv: false,
  },
});
const txn = (success: RequestOp[], failure: RequestOp[] = []): TxnRequest => ({
  compare: [],
  success,
  failure,
});
const nested = (success: RequestOp[], failure: RequestOp[] = []): RequestOp => ({
  type: 'txn',
  request: txn(success, failure),
});
const dup = /duplicate key given in txn request/;

test('put flags that contradict the request are refused with etcd messages', () => {
  assert.throws(
    () => checkPutRequest({ ...putReq(''), value: new Uint8Array() }),
    /key is not provided/,
  );
  assert.throws(() => checkPutRequest({ ...putReq('k'), ignoreValue: true }), /value is provided/);
  assert.throws(
    () => checkPutRequest({ ...putReq('k'), ignoreLease: true, lease: 5n }),
    /lease is provided/,
  );
  assert.doesNotThrow(() =>
    checkPutRequest({ ...putReq('k'), ignoreValue: true, value: new Uint8Array() }),
  );
});

test('a branch may not write one key twice', () => {
  assert.throws(() => checkTxnRequest(txn([put('a'), put('a')])), dup);
  assert.throws(() => checkTxnRequest(txn([del('a', 'c'), put('b')])), dup);
  assert.throws(() => checkTxnRequest(txn([del('a'), put('a')])), dup);
  assert.throws(() => checkTxnRequest(txn([del('a', '\0'), put('zzz')])), dup);
  // Different branches are exclusive, and a put just outside the deleted range is fine.
  assert.doesNotThrow(() => checkTxnRequest(txn([put('a')], [put('a')])));
  assert.doesNotThrow(() => checkTxnRequest(txn([del('a', 'c'), put('c')])));
  assert.doesNotThrow(() => checkTxnRequest(txn([del('b'), put('ba')])));
});

test('nested txns: both branches may put one key, but not collide with their siblings', () => {
  assert.doesNotThrow(() => checkTxnRequest(txn([nested([put('n')], [put('n')])])));
  assert.throws(() => checkTxnRequest(txn([nested([put('n')]), put('n')])), dup);
  assert.throws(() => checkTxnRequest(txn([nested([], [put('n')]), nested([put('n')])])), dup);
  assert.throws(() => checkTxnRequest(txn([del('m', 'o'), nested([put('n')])])), dup);
  assert.throws(() => checkTxnRequest(txn([nested([put('x'), put('x')])])), dup);
});

test('op counts are limited per list and empty ops are refused', () => {
  const many = Array.from({ length: 4 }, (_, i) => put(`k${i}`));
  assert.throws(() => checkTxnRequest(txn(many), 3), /too many operations/);
  assert.doesNotThrow(() => checkTxnRequest(txn(many), 4));
  assert.throws(() => checkTxnRequest({ ...txn([]), hasEmptyOp: true }), /key not found/);
  assert.throws(() => checkTxnRequest(txn([put('')])), /key is not provided/);
});
