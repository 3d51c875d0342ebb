/**
 * Conversions between the etcd front end's request/response values (src/server/etcd/types.ts,
 * enums as strings, raft term as bigint) and the key-value state machine's (src/kv/types.ts, enums
 * as protobuf numbers). Both mirror etcd's protobuf messages field by field, so each conversion is
 * a plain mapping; the response header's identity fields are filled in by the caller.
 */
import type { RevisionEvents } from '../kv/history.js';
import * as kv from '../kv/types.js';
import type * as api from './etcd/types.js';

const SORT_ORDERS: Record<api.SortOrder, kv.SortOrder> = { none: 0, ascend: 1, descend: 2 };
const SORT_TARGETS: Record<api.SortTarget, kv.SortTarget> = {
  key: 0,
  version: 1,
  create: 2,
  mod: 3,
  value: 4,
};
const COMPARE_RESULTS: Record<api.CompareResult, kv.CompareResult> = {
  equal: 0,
  greater: 1,
  less: 2,
  notEqual: 3,
};

/** Identity fields of every response header; the revision comes from the store. */
export interface HeaderIdentity {
  clusterId: bigint;
  memberId: bigint;
  raftTerm: bigint;
}

export function toKvRange(r: api.RangeRequest): kv.RangeRequest {
  return {
    key: r.key,
    rangeEnd: r.rangeEnd,
    limit: r.limit,
    revision: r.revision,
    sortOrder: SORT_ORDERS[r.sortOrder],
    sortTarget: SORT_TARGETS[r.sortTarget],
    serializable: r.serializable,
    keysOnly: r.keysOnly,
    countOnly: r.countOnly,
    minModRevision: r.minModRevision,
    maxModRevision: r.maxModRevision,
    minCreateRevision: r.minCreateRevision,
    maxCreateRevision: r.maxCreateRevision,
  };
}

export function toKvPut(r: api.PutRequest): kv.PutRequest {
  return {
    key: r.key,
    value: r.value,
    lease: r.lease,
    prevKv: r.prevKv,
    ignoreValue: r.ignoreValue,
    ignoreLease: r.ignoreLease,
  };
}

export function toKvDeleteRange(r: api.DeleteRangeRequest): kv.DeleteRangeRequest {
  return { key: r.key, rangeEnd: r.rangeEnd, prevKv: r.prevKv };
}

function toKvCompare(c: api.Compare): kv.Compare {
  const base = { result: COMPARE_RESULTS[c.result], key: c.key, rangeEnd: c.rangeEnd };
  switch (c.target) {
    case 'version':
      return { ...base, target: 0, version: c.version };
    case 'create':
      return { ...base, target: 1, createRevision: c.createRevision };
    case 'mod':
      return { ...base, target: 2, modRevision: c.modRevision };
    case 'value':
      return { ...base, target: 3, value: c.value };
    case 'lease':
      return { ...base, target: 4, lease: c.lease };
  }
}

function toKvOp(op: api.RequestOp): kv.RequestOp {
  switch (op.type) {
    case 'range':
      return { requestRange: toKvRange(op.request) };
    case 'put':
      return { requestPut: toKvPut(op.request) };
    case 'deleteRange':
      return { requestDeleteRange: toKvDeleteRange(op.request) };
    case 'txn':
      return { requestTxn: toKvTxn(op.request) };
  }
}

export function toKvTxn(r: api.TxnRequest): kv.TxnRequest {
  return {
    compare: r.compare.map(toKvCompare),
    success: r.success.map(toKvOp),
    failure: r.failure.map(toKvOp),
  };
}

/** Whether a txn (at any depth) writes; read-only txns are served like ranges, without raft. */
export function txnWrites(r: api.TxnRequest): boolean {
  return [...r.success, ...r.failure].some(
    (op) =>
      op.type === 'put' ||
      op.type === 'deleteRange' ||
      (op.type === 'txn' && txnWrites(op.request)),
  );
}

export function fromKvHeader(h: kv.ResponseHeader, id: HeaderIdentity): api.ResponseHeader {
  return {
    clusterId: id.clusterId,
    memberId: id.memberId,
    revision: h.revision,
    raftTerm: id.raftTerm,
  };
}

export function fromKvRange(r: kv.RangeResponse, id: HeaderIdentity): api.RangeResponse {
  return { header: fromKvHeader(r.header, id), kvs: r.kvs, more: r.more, count: r.count };
}

export function fromKvPut(r: kv.PutResponse, id: HeaderIdentity): api.PutResponse {
  const out: api.PutResponse = { header: fromKvHeader(r.header, id) };
  if (r.prevKv !== undefined) out.prevKv = r.prevKv;
  return out;
}

export function fromKvDeleteRange(
  r: kv.DeleteRangeResponse,
  id: HeaderIdentity,
): api.DeleteRangeResponse {
  return { header: fromKvHeader(r.header, id), deleted: r.deleted, prevKvs: r.prevKvs };
}

function fromKvOp(op: kv.ResponseOp, id: HeaderIdentity): api.ResponseOp {
  if ('responseRange' in op) return { type: 'range', response: fromKvRange(op.responseRange, id) };
  if ('responsePut' in op) return { type: 'put', response: fromKvPut(op.responsePut, id) };
  if ('responseDeleteRange' in op) {
    return { type: 'deleteRange', response: fromKvDeleteRange(op.responseDeleteRange, id) };
  }
  return { type: 'txn', response: fromKvTxn(op.responseTxn, id) };
}

export function fromKvTxn(r: kv.TxnResponse, id: HeaderIdentity): api.TxnResponse {
  return {
    header: fromKvHeader(r.header, id),
    succeeded: r.succeeded,
    responses: r.responses.map((op) => fromKvOp(op, id)),
  };
}

export function fromKvRevision(revision: RevisionEvents): api.RevisionEvents {
  return {
    revision: revision.revision,
    events: revision.events.map((event) => {
      const out: api.WatchEvent = {
        type: event.type === kv.EventType.DELETE ? 'delete' : 'put',
        kv: event.kv,
      };
      if (event.prevKv !== undefined) out.prevKv = event.prevKv;
      return out;
    }),
  };
}
