/**
 * shoal's TypeScript client for the native protocol (`import ... from 'shoal/client'`). It talks
 * shoal RPC (msgpack over TCP) to the members' peer ports, finds the leader itself, spreads
 * serializable reads over all members, fails over when a member dies, and retries only what is
 * safe to retry.
 *
 *   import { ShoalClient, compare, op } from 'shoal/client';
 *
 *   const client = new ShoalClient({ endpoints: ['127.0.0.1:2380', '127.0.0.1:12380', '127.0.0.1:22380'] });
 *
 *   await client.put('config/color', 'blue');                     // strings or Buffers/Uint8Arrays
 *   const kv = await client.get('config/color');                  // KeyValue | undefined
 *   console.log(Buffer.from(kv!.value).toString(), kv!.modRevision);
 *
 *   const all = await client.range('config/', { prefix: true, limit: 100 });
 *   const stale = await client.range('config/', { prefix: true, serializable: true }); // any member
 *   await client.delete('config/', { prefix: true, prevKv: true });
 *
 *   const result = await client.txn()                             // compare-and-swap
 *     .if(compare('config/color').value('=', 'blue'))
 *     .then(op.put('config/color', 'green'))
 *     .else(op.get('config/color'))
 *     .commit();
 *   if (!result.succeeded) { ... }
 *
 *   await client.compact(result.header.revision);
 *   const status = await client.status();                         // leader's status
 *   await client.close();
 *
 * Errors are `ShoalError`s: `code` is the gRPC status name ('OUT_OF_RANGE', 'UNAVAILABLE', ...),
 * `message` is etcd's text, `reason` is one of 'compacted', 'futureRevision', 'noLeader',
 * 'notLeader', 'leaderChanged', 'unavailable', 'timeout', 'invalidArgument', 'other'.
 *
 *   try { await client.get('k', { revision: 1 }); }
 *   catch (error) { if (error instanceof ShoalError && error.reason === 'compacted') { ... } }
 *
 * Retries: reads are retried (on another member) when a member is unreachable, times out or has
 * no leader. Writes are retried only when the failure proves they were not applied: the request
 * never left this process (connection refused, peer in dial backoff) or the member answered "no
 * leader"/"not leader". A write whose connection broke after sending fails with UNAVAILABLE, since
 * it may or may not have been applied; the caller decides (a txn with a compare makes it safe).
 *
 * Hot loops (benchmarks): build requests once and use `putRequest`/`rangeRequest`, which go
 * straight to the known leader (or the next member, for serializable reads) with no allocation
 * beyond the call itself.
 *
 * Watch: an async iterator of event batches that survives member failures without losing or
 * repeating events (it resumes on another member from the revision after the last delivered one).
 *
 *   const watch = client.watch('config/', { prefix: true, prevKv: true });
 *   for await (const { revision, events } of watch) {
 *     for (const event of events) console.log(event.type, Buffer.from(event.kv.key).toString());
 *   }                                                             // `break` or watch.cancel() ends it
 *
 * Leases keep themselves alive (lease.ts); Mutex and Election follow etcd's concurrency package,
 * keys included (`<name>/<lease id in hex>`), so etcdctl lock/elect interoperate:
 *
 *   const lease = await client.grant(10);                        // renewed every ~ttl/3 seconds
 *   lease.on('lost', (error) => ...);                            // expired or not renewed in time
 *   await client.put('service/a', 'up', { lease: lease.id });
 *
 *   const mutex = new Mutex(client, lease, 'locks/job');
 *   await mutex.lock({ timeoutMs: 30_000 });
 *   try { ... } finally { await mutex.unlock(); }
 *
 *   const election = new Election(client, lease, 'elections/scheduler');
 *   await election.campaign('node-a');                           // resolves once we lead
 *   for await (const leader of election.observe()) { ... }       // every leader, in order
 *
 *   await lease.revoke();                                        // deletes service/a
 *
 * Full guide: docs/client.md.
 */
export {
  CALL_ATTEMPTS_MAX,
  CALL_TIMEOUT_MS_DEFAULT,
  ShoalClient,
  type ShoalClientOptions,
  type WatchOptions,
} from './client.js';
export type { WaitOptions } from './concurrency.js';
export { Election, NOT_LEADER_MESSAGE } from './election.js';
export { ShoalError, type ShoalErrorReason } from './errors.js';
export { KEEP_ALIVE_DIVISOR, type Lease, type LeaseEvents, type LeaseState } from './lease.js';
export { Mutex } from './mutex.js';
export type {
  CompactResponse,
  Compare,
  DeleteRangeRequest,
  DeleteRangeResponse,
  KeyValue,
  LeaseGrantResponse,
  LeaseKeepAliveResponse,
  LeaseRevokeResponse,
  LeaseTimeToLiveResponse,
  Member,
  MemberListResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseHeader,
  ResponseOp,
  ServerStatsResponse,
  SortOrder,
  SortTarget,
  StatusResponse,
  TxnRequest,
  TxnResponse,
  WatchEvent,
} from './protocol.js';
export { nativeKv } from './protocol.js';
export {
  type Bytes,
  CompareBuilder,
  type CompareOperator,
  compare,
  type DeleteOptions,
  type GetOptions,
  op,
  type PutOptions,
  prefixEnd,
  TxnBuilder,
  toBytes,
} from './txn.js';
export { Watch, type WatchBatch } from './watch.js';
