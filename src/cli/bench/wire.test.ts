/** The hand-written request encoders agree with protobufjs decoding shoal's own .proto files. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadEtcdRoot } from '../../server/etcd/codec.js';
import {
  decimalKey,
  encodePutRequest,
  encodeRangeRequest,
  encodeTxnPutRequest,
  encodeWatchCreateRequest,
  summarizeRangeResponse,
  summarizeWatchResponse,
  writeDecimalKey,
} from './wire.js';

const root = loadEtcdRoot();
const type = (name: string) => root.lookupType(`etcdserverpb.${name}`);

test('put template decodes as a PutRequest, and rewriting the key in place changes only the key', () => {
  const template = encodePutRequest(decimalKey(8, 0), Buffer.alloc(300, 0x61));
  writeDecimalKey(template.buffer, template.keyOffset, template.keyLength, 4711);
  const decoded = type('PutRequest').decode(template.buffer) as unknown as {
    key: Buffer;
    value: Buffer;
  };
  assert.equal(Buffer.from(decoded.key).toString(), '00004711');
  assert.equal(decoded.value.length, 300);
  assert.throws(
    () => writeDecimalKey(template.buffer, template.keyOffset, 8, 123_456_789),
    RangeError,
  );
});

test('range and txn templates decode to the intended requests', () => {
  const range = type('RangeRequest').decode(
    encodeRangeRequest(Buffer.from('abc'), true).buffer,
  ) as unknown as {
    key: Buffer;
    serializable: boolean;
  };
  assert.equal(Buffer.from(range.key).toString(), 'abc');
  assert.equal(range.serializable, true);
  const linear = type('RangeRequest').decode(encodeRangeRequest(Buffer.from('abc'), false).buffer);
  assert.equal((linear as unknown as { serializable: boolean }).serializable, false);
  const txnTemplate = encodeTxnPutRequest(decimalKey(4, 7), Buffer.from('v'));
  writeDecimalKey(txnTemplate.buffer, txnTemplate.keyOffset, txnTemplate.keyLength, 42);
  const txn = type('TxnRequest').decode(txnTemplate.buffer) as unknown as {
    compare: unknown[];
    success: Array<{ requestPut: { key: Buffer; value: Buffer } }>;
  };
  assert.equal(txn.compare.length, 0);
  assert.equal(Buffer.from(txn.success[0]!.requestPut.key).toString(), '0042');
  assert.equal(Buffer.from(txn.success[0]!.requestPut.value).toString(), 'v');
});

test('watch create encodes, and response scanners read what protobufjs wrote', () => {
  const create = type('WatchRequest').decode(
    encodeWatchCreateRequest(Buffer.from('k')),
  ) as unknown as {
    createRequest: { key: Buffer };
  };
  assert.equal(Buffer.from(create.createRequest.key).toString(), 'k');
  const watchResponse = type('WatchResponse');
  const bytes = watchResponse
    .encode(
      watchResponse.fromObject({
        header: { revision: 9 },
        watchId: 3,
        events: [{ kv: { key: Buffer.from('k') } }, { kv: { key: Buffer.from('k') } }],
      }),
    )
    .finish();
  assert.deepEqual(summarizeWatchResponse(bytes), {
    watchId: 3,
    created: false,
    canceled: false,
    eventCount: 2,
  });
  const rangeResponse = type('RangeResponse');
  const rangeBytes = rangeResponse
    .encode(
      rangeResponse.fromObject({
        header: { revision: 5 },
        kvs: [{ key: Buffer.from('a') }],
        count: 1,
      }),
    )
    .finish();
  assert.deepEqual(summarizeRangeResponse(rangeBytes), { kvCount: 1, count: 1 });
});
