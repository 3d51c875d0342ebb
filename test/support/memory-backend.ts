/**
 * A small in-memory, single-member `EtcdBackend` with etcd's MVCC semantics (revisions, versions,
 * tombstones, compaction, txn compares). It is a TEST DOUBLE: it lets the gRPC front end, the
 * etcdctl comparison harness and the linearizability test run end to end before the LMDB MVCC
 * store is wired in, and it documents in code what the harness expects of a real backend.
 * Everything runs synchronously inside one call, so every operation is atomic and linearizable.
 */
import type { EtcdBackend } from '../../src/server/etcd/backend.js';
import { etcdErrors } from '../../src/server/etcd/errors.js';
import type {
  CompactionRequest,
  CompactionResponse,
  Compare,
  DeleteRangeRequest,
  DeleteRangeResponse,
  HashKvResponse,
  KeyValue,
  MemberListResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseHeader,
  ResponseOp,
  StatusResponse,
  TxnRequest,
  TxnResponse,
} from '../../src/server/etcd/types.js';
import { compareBytes } from '../../src/server/etcd/validate.js';

/** One version of a key; `kv === null` is a deletion (tombstone) at `revision`. */
interface Version {
  revision: number;
  kv: KeyValue | null;
}

export interface MemoryBackendOptions {
  clusterId?: bigint;
  memberId?: bigint;
  name?: string;
  clientUrl?: string;
}

const keyId = (key: Uint8Array): string => Buffer.from(key).toString('latin1');

export class MemoryBackend implements EtcdBackend {
  readonly clusterId: bigint;
  readonly memberId: bigint;
  readonly #name: string;
  #clientUrl: string;
  /** Per key, versions in revision order. */
  readonly #history = new Map<string, Version[]>();
  /** Invariant: compactRevision <= revision. etcd starts at revision 1 with nothing compacted. */
  #revision = 1;
  #compactRevision = 0;

  constructor(options: MemoryBackendOptions = {}) {
    this.clusterId = options.clusterId ?? 0x1c0ffee0d15ea5edn;
    this.memberId = options.memberId ?? 0x5ea1ab1e0000001n;
    this.#name = options.name ?? 'shoal-test';
    this.#clientUrl = options.clientUrl ?? 'http://127.0.0.1:0';
  }

  /** The URL MemberList reports; known only once the server has bound its port. */
  setClientUrl(url: string): void {
    this.#clientUrl = url;
  }

  #header(): ResponseHeader {
    return {
      clusterId: this.clusterId,
      memberId: this.memberId,
      revision: this.#revision,
      raftTerm: 1n,
    };
  }

  /** The live value of key at revision, or null. */
  #at(id: string, revision: number): KeyValue | null {
    const versions = this.#history.get(id);
    if (!versions) return null;
    for (let i = versions.length - 1; i >= 0; i--) {
      const v = versions[i]!;
      if (v.revision <= revision) return v.kv;
    }
    return null;
  }

  /** Live key-values in [key, rangeEnd) at revision, in key order. */
  #scan(key: Uint8Array, rangeEnd: Uint8Array, revision: number): KeyValue[] {
    const out: KeyValue[] = [];
    if (rangeEnd.length === 0) {
      const kv = this.#at(keyId(key), revision);
      return kv ? [kv] : [];
    }
    const toEnd = rangeEnd.length === 1 && rangeEnd[0] === 0;
    for (const id of this.#history.keys()) {
      const k = Buffer.from(id, 'latin1');
      if (compareBytes(k, key) < 0) continue;
      if (!toEnd && compareBytes(k, rangeEnd) >= 0) continue;
      const kv = this.#at(id, revision);
      if (kv) out.push(kv);
    }
    return out.sort((a, b) => compareBytes(a.key, b.key));
  }

  #readRevision(requested: number): number {
    const revision = requested <= 0 ? this.#revision : requested;
    if (revision > this.#revision) throw etcdErrors.futureRevision();
    if (revision < this.#compactRevision) throw etcdErrors.compacted();
    return revision;
  }

  async range(request: RangeRequest): Promise<RangeResponse> {
    return this.#rangeSync(request);
  }

  #rangeSync(request: RangeRequest): RangeResponse {
    const revision = this.#readRevision(request.revision);
    const all = this.#scan(request.key, request.rangeEnd, revision);
    let kvs = all.filter(
      (kv) =>
        (request.minModRevision === 0 || kv.modRevision >= request.minModRevision) &&
        (request.maxModRevision === 0 || kv.modRevision <= request.maxModRevision) &&
        (request.minCreateRevision === 0 || kv.createRevision >= request.minCreateRevision) &&
        (request.maxCreateRevision === 0 || kv.createRevision <= request.maxCreateRevision),
    );
    kvs = sortKvs(kvs, request);
    const count = all.length;
    if (request.countOnly) return { header: this.#header(), kvs: [], more: false, count };
    const more = request.limit > 0 && kvs.length > request.limit;
    if (more) kvs = kvs.slice(0, request.limit);
    if (request.keysOnly) kvs = kvs.map((kv) => ({ ...kv, value: new Uint8Array(0) }));
    return { header: this.#header(), kvs, more, count };
  }

  async put(request: PutRequest): Promise<PutResponse> {
    const revision = this.#revision + 1;
    const response = this.#putAt(request, revision);
    this.#revision = revision;
    return { ...response, header: this.#header() };
  }

  #putAt(request: PutRequest, revision: number): PutResponse {
    const id = keyId(request.key);
    const previous = this.#at(id, revision);
    if ((request.ignoreValue || request.ignoreLease) && !previous) throw etcdErrors.keyNotFound();
    const kv: KeyValue = {
      key: request.key,
      createRevision: previous ? previous.createRevision : revision,
      modRevision: revision,
      version: previous ? previous.version + 1 : 1,
      value: request.ignoreValue && previous ? previous.value : request.value,
      lease: request.ignoreLease && previous ? previous.lease : request.lease,
    };
    const versions = this.#history.get(id) ?? [];
    if (versions.at(-1)?.revision === revision) versions.pop();
    versions.push({ revision, kv });
    this.#history.set(id, versions);
    const response: PutResponse = { header: this.#header() };
    if (request.prevKv && previous) response.prevKv = previous;
    return response;
  }

  async deleteRange(request: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    const revision = this.#revision + 1;
    const response = this.#deleteAt(request, revision);
    if (response.deleted > 0) this.#revision = revision;
    return { ...response, header: this.#header() };
  }

  #deleteAt(request: DeleteRangeRequest, revision: number): DeleteRangeResponse {
    const doomed = this.#scan(request.key, request.rangeEnd, revision);
    for (const kv of doomed) {
      const versions = this.#history.get(keyId(kv.key))!;
      versions.push({ revision, kv: null });
    }
    return {
      header: this.#header(),
      deleted: doomed.length,
      prevKvs: request.prevKv ? doomed : [],
    };
  }

  async txn(request: TxnRequest): Promise<TxnResponse> {
    const revision = this.#revision + 1;
    const state = { wrote: false };
    const response = this.#txnAt(request, revision, state);
    if (state.wrote) this.#revision = revision;
    return { ...response, header: this.#header() };
  }

  #txnAt(request: TxnRequest, revision: number, state: { wrote: boolean }): TxnResponse {
    const succeeded = request.compare.every((c) => this.#compare(c));
    const ops = succeeded ? request.success : request.failure;
    const responses = ops.map((op) => this.#applyOp(op, revision, state));
    return { header: this.#header(), succeeded, responses };
  }

  #applyOp(op: RequestOp, revision: number, state: { wrote: boolean }): ResponseOp {
    switch (op.type) {
      case 'range': {
        // Reads inside a txn see the txn's own earlier writes.
        const readRevision = state.wrote ? revision : this.#revision;
        const saved = this.#revision;
        this.#revision = readRevision;
        try {
          return { type: 'range', response: this.#rangeSync({ ...op.request, revision: 0 }) };
        } finally {
          this.#revision = saved;
        }
      }
      case 'put':
        state.wrote = true;
        return { type: 'put', response: this.#putAt(op.request, revision) };
      case 'deleteRange': {
        const response = this.#deleteAt(op.request, revision);
        if (response.deleted > 0) state.wrote = true;
        return { type: 'deleteRange', response };
      }
      case 'txn':
        return { type: 'txn', response: this.#txnAt(op.request, revision, state) };
    }
  }

  #compare(c: Compare): boolean {
    const kvs = this.#scan(c.key, c.rangeEnd, this.#revision);
    if (kvs.length === 0) {
      // etcd: comparing the value of a missing key always fails; other targets compare to zero.
      if (c.target === 'value') return false;
      return compareOne(c, {
        key: c.key,
        createRevision: 0,
        modRevision: 0,
        version: 0,
        value: new Uint8Array(0),
        lease: 0n,
      });
    }
    return kvs.every((kv) => compareOne(c, kv));
  }

  async compact(request: CompactionRequest): Promise<CompactionResponse> {
    if (request.revision <= this.#compactRevision) throw etcdErrors.compacted();
    if (request.revision > this.#revision) throw etcdErrors.futureRevision();
    this.#compactRevision = request.revision;
    for (const [id, versions] of this.#history) {
      // Keep the newest version at or below the compaction point (unless it is a tombstone).
      let keepFrom = 0;
      for (let i = 0; i < versions.length; i++)
        if (versions[i]!.revision <= request.revision) keepFrom = i;
      const kept = versions.slice(keepFrom);
      if (kept[0] && kept[0].revision <= request.revision && kept[0].kv === null) kept.shift();
      if (kept.length === 0) this.#history.delete(id);
      else this.#history.set(id, kept);
    }
    return { header: this.#header() };
  }

  async memberList(): Promise<MemberListResponse> {
    return {
      header: this.#header(),
      members: [
        {
          id: this.memberId,
          name: this.#name,
          peerUrls: ['http://localhost:2380'],
          clientUrls: [this.#clientUrl],
          isLearner: false,
        },
      ],
    };
  }

  /** Bytes held: keys and values of every retained version, plus a fixed floor like a DB file. */
  #sizeBytes(): number {
    let bytes = 16 * 1024;
    for (const versions of this.#history.values()) {
      for (const v of versions) bytes += 64 + (v.kv ? v.kv.key.length + v.kv.value.length : 0);
    }
    return bytes;
  }

  async status(): Promise<StatusResponse> {
    const size = this.#sizeBytes();
    return {
      header: this.#header(),
      version: '3.4.0',
      dbSize: size,
      leader: this.memberId,
      raftIndex: BigInt(this.#revision),
      raftTerm: 1n,
      raftAppliedIndex: BigInt(this.#revision),
      errors: [],
      dbSizeInUse: size,
      isLearner: false,
    };
  }

  async hashKv(_revision: number): Promise<HashKvResponse> {
    return { header: this.#header(), hash: 0, compactRevision: this.#compactRevision };
  }
}

function compareOne(c: Compare, kv: KeyValue): boolean {
  let order: number;
  switch (c.target) {
    case 'version':
      order = Math.sign(kv.version - c.version);
      break;
    case 'create':
      order = Math.sign(kv.createRevision - c.createRevision);
      break;
    case 'mod':
      order = Math.sign(kv.modRevision - c.modRevision);
      break;
    case 'value':
      order = Math.sign(compareBytes(kv.value, c.value));
      break;
    case 'lease':
      order = kv.lease === c.lease ? 0 : kv.lease < c.lease ? -1 : 1;
      break;
  }
  switch (c.result) {
    case 'equal':
      return order === 0;
    case 'notEqual':
      return order !== 0;
    case 'greater':
      return order > 0;
    case 'less':
      return order < 0;
  }
}

function sortKvs(kvs: KeyValue[], request: RangeRequest): KeyValue[] {
  let order = request.sortOrder;
  // etcd sorts ascending when a target other than the key is named without an order.
  if (order === 'none' && request.sortTarget !== 'key') order = 'ascend';
  if (order === 'none') return kvs;
  const field = (kv: KeyValue): number | Uint8Array => {
    switch (request.sortTarget) {
      case 'key':
        return kv.key;
      case 'version':
        return kv.version;
      case 'create':
        return kv.createRevision;
      case 'mod':
        return kv.modRevision;
      case 'value':
        return kv.value;
    }
  };
  const sorted = [...kvs].sort((a, b) => {
    const x = field(a);
    const y = field(b);
    return typeof x === 'number' ? x - (y as number) : compareBytes(x, y as Uint8Array);
  });
  return order === 'descend' ? sorted.reverse() : sorted;
}
