/**
 * Cost of shoal's protobuf layer alone (protobufjs reflection codecs plus the conversion to and
 * from the API types), per message, without gRPC or the store:
 *   npm run bench:etcd-codec
 * Machine load makes the figures noisy; they are meant to show the codec is not the bottleneck.
 */
import { performance } from 'node:perf_hooks';
import {
  decodePutRequest,
  decodeRangeRequest,
  encodePutResponse,
  encodeRangeResponse,
  loadEtcdRoot,
  type PbMessage,
} from '../src/server/etcd/codec.js';
import type { KeyValue } from '../src/server/etcd/types.js';

const root = loadEtcdRoot();
const types = {
  put: root.lookupType('etcdserverpb.PutRequest'),
  putResponse: root.lookupType('etcdserverpb.PutResponse'),
  range: root.lookupType('etcdserverpb.RangeRequest'),
  rangeResponse: root.lookupType('etcdserverpb.RangeResponse'),
};
const header = { clusterId: 2n ** 63n + 1n, memberId: 12345n, revision: 123456, raftTerm: 3n };
const kv = (i: number): KeyValue => ({
  key: Buffer.from(`bench/key/${i}`),
  createRevision: 1000 + i,
  modRevision: 2000 + i,
  version: 3,
  value: Buffer.alloc(256, 'v'),
  lease: 0n,
});

function measure(name: string, iterations: number, run: () => void): void {
  for (let i = 0; i < Math.min(iterations, 1000); i++) run(); // warm up the generated code
  const start = performance.now();
  for (let i = 0; i < iterations; i++) run();
  const seconds = (performance.now() - start) / 1000;
  console.log(
    JSON.stringify({
      name,
      perSecond: Math.round(iterations / seconds),
      usPerOp: +((seconds * 1e6) / iterations).toFixed(2),
    }),
  );
}

const putBytes = types.put
  .encode({ key: Buffer.from('bench/key/1'), value: Buffer.alloc(256, 'v') })
  .finish();
measure('decode PutRequest (256 B value)', 200_000, () => {
  decodePutRequest(types.put.decode(putBytes) as unknown as PbMessage);
});
measure('encode PutResponse', 200_000, () => {
  types.putResponse.encode(encodePutResponse({ header })).finish();
});
const rangeBytes = types.range
  .encode({ key: Buffer.from('bench/'), rangeEnd: Buffer.from('bench0'), limit: 100 })
  .finish();
measure('decode RangeRequest', 200_000, () => {
  decodeRangeRequest(types.range.decode(rangeBytes) as unknown as PbMessage);
});
const kvs1 = [kv(1)];
measure('encode RangeResponse, 1 kv', 100_000, () => {
  types.rangeResponse
    .encode(encodeRangeResponse({ header, kvs: kvs1, more: false, count: 1 }))
    .finish();
});
const kvs100 = Array.from({ length: 100 }, (_, i) => kv(i));
measure('encode RangeResponse, 100 kvs', 5_000, () => {
  types.rangeResponse
    .encode(encodeRangeResponse({ header, kvs: kvs100, more: true, count: 1000 }))
    .finish();
});
