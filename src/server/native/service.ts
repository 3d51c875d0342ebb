/**
 * The member side of shoal's native key-value protocol (src/client/protocol.ts): handlers that
 * check every decoded request field by field, fill etcd's defaults, run the same checks as the etcd
 * gRPC front end (src/server/etcd/validate.ts) and call an `EtcdBackend`. Failures become RpcErrors
 * with etcd's status code and message; "no leader"-style answers carry a hint naming the leader
 * when this member knows one. Anything unexpected is logged and answered as UNKNOWN, never crashing
 * the member.
 *
 *   server.addService(nativeKv, createNativeKvService({ backend, logger }).handlers);
 */
import { type Logger, pino } from 'pino';
import type * as wire from '../../client/protocol.js';
import { addressOfUrl, formatLeaderHint, nativeKv } from '../../client/protocol.js';
import { RpcError, type ServiceImplementation } from '../../rpc/index.js';
import type { EtcdBackend } from '../etcd/backend.js';
import { EtcdError, etcdErrors } from '../etcd/errors.js';
import { maxRequestBytesDefault } from '../etcd/server.js';
import type * as api from '../etcd/types.js';
import {
  checkDeleteRangeRequest,
  checkPutRequest,
  checkRangeRequest,
  checkTxnRequest,
  txnOpsMaxDefault,
} from '../etcd/validate.js';
import {
  rpcErrorOf,
  toDeleteRange,
  toLeaseGrant,
  toLeaseId,
  toLeaseTimeToLive,
  toPut,
  toPutBatch,
  toRange,
  toTxn,
} from './convert.js';
import { watchEvents } from './watch.js';

export interface NativeKvServiceOptions {
  backend: EtcdBackend;
  logger?: Logger;
  /** The most compares, or ops in one branch, a txn may carry (etcd's --max-txn-ops). */
  txnOpsMax?: number;
  /**
   * The most key, value and range-end bytes one write may carry (the member's
   * --max-request-bytes, etcd's default 1.5 MiB); a bigger one is refused with etcd's
   * "request is too large" before it reaches raft.
   */
  maxRequestBytes?: number;
}

export interface NativeKvService {
  readonly handlers: ServiceImplementation<wire.NativeKvService>;
  /**
   * Requests answered so far, by method (also served by the `stats` call). `put` counts every
   * put, whether it came alone or in a batch; `putBatch` counts the batch calls.
   */
  readonly requests: Record<string, number>;
}

/** Messages that mean the request reached no leader, so a leader hint helps the caller. */
const LEADERLESS_MESSAGES = new Set<string>([
  etcdErrors.noLeader().message,
  etcdErrors.notLeader().message,
  etcdErrors.leaderChanged().message,
  etcdErrors.timeoutDueToLeaderFail().message,
]);

export function createNativeKvService(options: NativeKvServiceOptions): NativeKvService {
  const { backend } = options;
  const log = options.logger ?? pino({ name: 'native-kv', level: 'warn' });
  const txnOpsMax = options.txnOpsMax ?? txnOpsMaxDefault;
  const maxRequestBytes = options.maxRequestBytes ?? maxRequestBytesDefault;
  const checkSize = (bytes: number) => {
    if (bytes > maxRequestBytes) throw etcdErrors.requestTooLarge();
  };
  const requests: Record<string, number> = {};
  for (const name of Object.keys(nativeKv.methods)) requests[name] = 0;

  async function leaderHint(message: string): Promise<string> {
    try {
      const status = await backend.status();
      if (status.leader === 0n) return message;
      const members = await backend.memberList();
      const leader = members.members.find((m) => m.id === status.leader);
      const url = leader?.peerUrls[0];
      return formatLeaderHint(message, {
        id: status.leader,
        address: url === undefined ? undefined : addressOfUrl(url),
      });
    } catch {
      return message;
    }
  }

  /**
   * The RpcError the caller sees for a failure. `hints`, shared by the puts of one batch, asks
   * for the leader hint once per message rather than once per put.
   */
  async function failure(
    method: string,
    error: unknown,
    hints?: Map<string, Promise<string>>,
  ): Promise<RpcError> {
    if (error instanceof RpcError) return error;
    if (error instanceof EtcdError) {
      if (!LEADERLESS_MESSAGES.has(error.message)) return rpcErrorOf(error);
      let hint = hints?.get(error.message);
      if (hint === undefined) {
        hint = leaderHint(error.message);
        hints?.set(error.message, hint);
      }
      return new RpcError(rpcErrorOf(error).code, await hint);
    }
    log.error({ err: error, method }, 'native kv: unexpected backend failure');
    return new RpcError('UNKNOWN', `shoal: ${method} failed: ${(error as Error).message}`);
  }

  /** Counts the call and turns any failure into the RpcError the caller sees. */
  async function run<T>(method: string, work: () => Promise<T>): Promise<T> {
    requests[method] = (requests[method] ?? 0) + 1;
    try {
      return await work();
    } catch (error) {
      throw await failure(method, error);
    }
  }

  /** A put converted and checked (fields, etcd's rules, the size limit), or the error. */
  function checkedPut(request: unknown, path: string): api.PutRequest {
    const converted = toPut(request, path);
    checkPutRequest(converted);
    checkSize(putBytes(converted));
    return converted;
  }

  /** One put, from the `put` method or from a batch (`path` names it in errors). */
  function putOne(request: unknown, path: string): Promise<wire.PutResponse> {
    return backend.put(checkedPut(request, path));
  }

  /**
   * The puts of a putBatch call that pass the checks go to the backend as few writes as the
   * request size limit allows (one, unless --max-request-bytes is below the batch's bytes): one
   * raft entry each, applied as consecutive puts. A put that fails a check, or that its write
   * refuses alone, is answered with its own error; a write that fails as a whole fails its puts.
   */
  async function putBatch(
    puts: readonly unknown[],
  ): Promise<Array<wire.PutResponse | wire.PutBatchError>> {
    requests.put = (requests.put ?? 0) + puts.length;
    const answers = new Array<wire.PutResponse | wire.PutBatchError>(puts.length);
    const refused: { slot: number; error: unknown }[] = [];
    const writes: { slots: number[]; puts: api.PutRequest[]; bytes: number }[] = [];
    for (let i = 0; i < puts.length; i++) {
      let put: api.PutRequest;
      try {
        put = checkedPut(puts[i], `putBatch.puts[${i}]`);
      } catch (error) {
        refused.push({ slot: i, error });
        continue;
      }
      const bytes = putBytes(put);
      let write = writes[writes.length - 1];
      if (write === undefined || write.bytes + bytes > maxRequestBytes) {
        write = { slots: [], puts: [], bytes: 0 };
        writes.push(write);
      }
      write.slots.push(i);
      write.puts.push(put);
      write.bytes += bytes;
    }
    // Every write starts in this same pass, so all are proposed in one event-loop turn (one
    // Ready). The answer waits for the slowest: a write that outlives the caller's deadline
    // fails the call.
    await Promise.all(
      writes.map(({ slots, puts }) =>
        backend.putBatch(puts).then(
          (results) => {
            for (let j = 0; j < slots.length; j++) {
              const result = results[j]!;
              if (result instanceof Error) refused.push({ slot: slots[j]!, error: result });
              else answers[slots[j]!] = result;
            }
          },
          (error: unknown) => {
            for (const slot of slots) refused.push({ slot, error });
          },
        ),
      ),
    );
    const hints = new Map<string, Promise<string>>();
    for (const { slot, error } of refused) {
      answers[slot] = batchError(await failure('put', error, hints));
    }
    return answers;
  }

  const handlers: ServiceImplementation<wire.NativeKvService> = {
    range: (request) =>
      run('range', async () => {
        const converted = toRange(request, 'range');
        checkRangeRequest(converted);
        return backend.range(converted);
      }),
    put: (request) => run('put', () => putOne(request, 'put')),
    putBatch: async (request) => {
      requests.putBatch = (requests.putBatch ?? 0) + 1;
      return { results: await putBatch(toPutBatch(request)) };
    },
    deleteRange: (request) =>
      run('deleteRange', async () => {
        const converted = toDeleteRange(request, 'deleteRange');
        checkDeleteRangeRequest(converted);
        checkSize(converted.key.length + converted.rangeEnd.length);
        return backend.deleteRange(converted);
      }),
    txn: (request) =>
      run('txn', async () => {
        const converted = toTxn(request, 'txn', 0);
        checkTxnRequest(converted, txnOpsMax);
        checkSize(txnBytes(converted));
        return backend.txn(converted) as Promise<wire.TxnResponse>;
      }),
    compact: (request) =>
      run('compact', async () => {
        const converted = toCompact(request);
        return backend.compact(converted);
      }),
    status: () => run('status', () => backend.status()),
    memberList: () => run('memberList', () => backend.memberList()),
    leaseGrant: (request) =>
      run('leaseGrant', async () => {
        const { ttlSeconds, id } = toLeaseGrant(request);
        return backend.leaseGrant(ttlSeconds, id);
      }),
    leaseRevoke: (request) =>
      run('leaseRevoke', () => backend.leaseRevoke(toLeaseId(request, 'leaseRevoke'))),
    leaseKeepAlive: (request) =>
      run('leaseKeepAlive', () => backend.leaseKeepAlive(toLeaseId(request, 'leaseKeepAlive'))),
    leaseTimeToLive: (request) =>
      run('leaseTimeToLive', async () => {
        const { id, keys } = toLeaseTimeToLive(request);
        return backend.leaseTimeToLive(id, keys);
      }),
    watch: (request, context) => {
      requests.watch = (requests.watch ?? 0) + 1;
      return watchEvents(backend, request, context);
    },
    stats: () =>
      run('stats', async () => {
        const status = await backend.status();
        return { memberId: status.header.memberId, requests: { ...requests } };
      }),
  };
  return { handlers, requests };
}

function batchError(refused: RpcError): wire.PutBatchError {
  return { error: { status: refused.status, message: refused.message } };
}

function putBytes(request: api.PutRequest): number {
  return request.key.length + request.value.length;
}

/** The key, value and range-end bytes of a txn, nested txns included. */
function txnBytes(request: api.TxnRequest): number {
  let bytes = 0;
  for (const compare of request.compare) {
    bytes += compare.key.length + compare.rangeEnd.length;
    if (compare.target === 'value') bytes += compare.value.length;
  }
  for (const op of [...request.success, ...request.failure]) {
    if (op.type === 'put') bytes += putBytes(op.request);
    else if (op.type === 'txn') bytes += txnBytes(op.request);
    else bytes += op.request.key.length + op.request.rangeEnd.length;
  }
  return bytes;
}

function toCompact(request: unknown): api.CompactionRequest {
  if (typeof request !== 'object' || request === null)
    throw new RpcError('INVALID_ARGUMENT', 'shoal: compact: the request must be a map');
  const { revision, physical } = request as Record<string, unknown>;
  if (typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 0)
    throw new RpcError(
      'INVALID_ARGUMENT',
      'shoal: compact.revision must be a non-negative integer',
    );
  if (physical !== undefined && typeof physical !== 'boolean')
    throw new RpcError('INVALID_ARGUMENT', 'shoal: compact.physical must be a boolean');
  return { revision, physical: physical ?? false };
}
