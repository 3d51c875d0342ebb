/**
 * The member's replicated state machine: committed raft entries go into the MVCC store (one LMDB
 * transaction per batch, entries at or below the store's applied index skipped after a restart)
 * and into the member registry; conf change entries also go into raft's configuration. Results are
 * handed to the waiting request when this member proposed the entry.
 *
 * An entry carrying a batch of requests is applied as that many requests, each with its own
 * revision, and its proposer receives all their results at once.
 *
 * Snapshots hold the registry and the whole key-value state: `[u32 length][bytes]` frames, the
 * first the registry as JSON, then either the CHECKPOINT_FRAME marker and the bytes of a store
 * checkpoint (an LMDB file, what members write now) or the MVCC store's snapshot chunks (what
 * members wrote before checkpoints; still read). See src/kv/snapshot.ts for both.
 */
import type { Logger } from 'pino';
import type { ApplyEntry, ApplyResult, MvccStore } from '../kv/mvcc.js';
import { APPLY_BATCH_ENTRIES_MAX } from '../kv/mvcc.js';
import type { KvRequest } from '../kv/types.js';
import {
  type ConfChange,
  ConfChangeType,
  type ConfState,
  decodeConfChange,
  EMPTY_CONF_STATE,
  type Entry,
  EntryType,
  type Snapshot,
} from '../raft/index.js';
import {
  type ConfChangeContext,
  decodeCommand,
  decodeConfChangeContext,
  type RegistryCommand,
  type RequestId,
} from './command.js';
import type { MemberRegistry, RegistryState } from './registry.js';

/** What a proposer's waiter receives when its entry is applied. */
export type ApplyOutcome = ApplyResult | { index: number; status: 'member' };

export interface StateMachineHooks {
  /** Raft applies a committed conf change and returns the new configuration. */
  applyConfChange(cc: ConfChange): ConfState;
  /** The proposer's request with this id was applied. */
  onApplied(id: RequestId, outcome: ApplyOutcome): void;
  onRegistryChanged(): void;
  /** This member was removed from the cluster. */
  onSelfRemoved(): void;
  /** A member was removed from the cluster (any member, this one included). */
  onRemoved(id: number): void;
  /** A lease grant, revoke or checkpoint from this raft entry was applied successfully. */
  onLeaseApplied?(request: KvRequest, entry: { index: number; term: number }): void;
  /** A snapshot replaced the store's whole state. */
  onStoreRestored?(): void;
}

export class StateMachine {
  confState: ConfState = EMPTY_CONF_STATE;
  /** The last raft index handed to `apply` or installed by a snapshot in this process. */
  appliedIndex: number;
  /**
   * The index of the last conf change or registry command handed to `apply` (or of the snapshot
   * installed): `confState` and the registry are as of any applied index at or after it.
   */
  membershipIndex: number;

  constructor(
    readonly kv: MvccStore,
    readonly registry: MemberRegistry,
    private readonly selfId: number,
    private readonly hooks: StateMachineHooks,
    private readonly log: Logger,
    snapshotIndex: number,
  ) {
    this.appliedIndex = snapshotIndex;
    this.membershipIndex = snapshotIndex;
  }

  /** Applies committed entries in order. Throws on a malformed entry (a bug: the member stops). */
  async apply(entries: readonly Entry[]): Promise<void> {
    const batch: ApplyEntry[] = [];
    const owners: (RequestId | undefined)[] = [];
    let registryChanged = false;
    for (const entry of entries) {
      if (entry.type === EntryType.ConfChange) {
        this.membershipIndex = entry.index;
        const cc = decodeConfChange(entry.data);
        this.confState = this.hooks.applyConfChange(cc);
        const context = decodeConfChangeContext(cc.context);
        if (context !== null && entry.index > this.registry.index) {
          this.applyMemberChange(cc, context);
          this.registry.index = entry.index;
          registryChanged = true;
        }
        batch.push({ index: entry.index });
        owners.push(context?.id);
        continue;
      }
      if (entry.data.length === 0) {
        batch.push({ index: entry.index });
        owners.push(undefined);
        continue;
      }
      const command = decodeCommand(entry.data);
      if (command.registry !== undefined) {
        this.membershipIndex = entry.index;
        if (entry.index > this.registry.index) {
          this.applyRegistryCommand(command.registry);
          this.registry.index = entry.index;
          registryChanged = true;
        }
        batch.push({ index: entry.index });
      } else if (command.kvBatch !== undefined) {
        batch.push({ index: entry.index, batch: command.kvBatch });
      } else {
        batch.push(
          command.kv === undefined
            ? { index: entry.index }
            : { index: entry.index, request: command.kv },
        );
      }
      owners.push(command.id);
    }
    // The registry is made durable before the store records these indexes as applied (see
    // registry.ts), so a crash in between replays registry changes rather than losing them.
    if (registryChanged) await this.registry.save();
    this.applyToStore(batch, owners, entries);
    if (entries.length > 0) this.appliedIndex = entries[entries.length - 1]!.index;
    if (registryChanged) this.hooks.onRegistryChanged();
  }

  private applyToStore(
    batch: ApplyEntry[],
    owners: (RequestId | undefined)[],
    entries: readonly Entry[],
  ): void {
    for (let start = 0; start < batch.length; start += APPLY_BATCH_ENTRIES_MAX) {
      const slice = batch.slice(start, start + APPLY_BATCH_ENTRIES_MAX);
      const results = this.kv.applyBatch(slice);
      for (let i = 0; i < results.length; i++) {
        const result = results[i]!;
        const { request, batch: requests } = slice[i]!;
        if (result.status === 'ok' && request !== undefined && isLeaseRequest(request)) {
          this.hooks.onLeaseApplied?.(request, entries[start + i]!);
        }
        if (result.status === 'batch' && requests !== undefined) {
          for (let j = 0; j < requests.length; j++) {
            const one = requests[j]!;
            if (result.results[j]!.status === 'ok' && isLeaseRequest(one)) {
              this.hooks.onLeaseApplied?.(one, entries[start + i]!);
            }
          }
        }
        const owner = owners[start + i];
        if (owner === undefined || owner.member !== this.selfId) continue;
        const entry = entries[start + i]!;
        const isMember =
          entry.type === EntryType.ConfChange ||
          (result.status === 'noop' && entry.data.length > 0);
        this.hooks.onApplied(owner, isMember ? { index: result.index, status: 'member' } : result);
      }
    }
  }

  private applyMemberChange(cc: ConfChange, context: ConfChangeContext): void {
    const change = cc.changes[0];
    if (change === undefined) return;
    const { member } = context;
    if (change.type === ConfChangeType.RemoveNode) {
      this.registry.remove(change.nodeId);
      this.hooks.onRemoved(change.nodeId);
      if (change.nodeId === this.selfId) this.hooks.onSelfRemoved();
      return;
    }
    if (context.action === 'promote') {
      this.registry.upsert(change.nodeId, { isLearner: false });
      return;
    }
    this.registry.upsert(change.nodeId, {
      name: member.name,
      peerUrls: member.peerUrls,
      isLearner: change.type === ConfChangeType.AddLearner,
    });
  }

  private applyRegistryCommand(command: RegistryCommand): void {
    if ('publish' in command) {
      const { id, name, clientUrls } = command.publish;
      if (this.registry.get(id) !== undefined) this.registry.upsert(id, { name, clientUrls });
      return;
    }
    if ('alarm' in command) {
      const { action, memberId, alarm } = command.alarm;
      if (action === 'activate') this.registry.activateAlarm({ memberId, alarm });
      else this.registry.deactivateAlarm({ memberId, alarm });
      return;
    }
    const { id, peerUrls } = command.updatePeerUrls;
    if (this.registry.get(id) !== undefined) this.registry.upsert(id, { peerUrls });
  }

  /** Installs a snapshot received from the leader: replaces the store and the registry. */
  async install(snapshot: Snapshot): Promise<void> {
    const decoded = decodeSnapshotData(snapshot.data);
    await restoreStore(this.kv, decoded);
    this.registry.replace({ ...decoded.registry, index: snapshot.metadata.index });
    await this.registry.save();
    this.confState = snapshot.metadata.confState;
    this.appliedIndex = snapshot.metadata.index;
    this.membershipIndex = snapshot.metadata.index;
    this.log.info({ index: snapshot.metadata.index }, 'installed snapshot from the leader');
    this.hooks.onStoreRestored?.();
    this.hooks.onRegistryChanged();
  }
}

function isLeaseRequest(request: KvRequest): boolean {
  return 'leaseGrant' in request || 'leaseRevoke' in request || 'leaseCheckpoint' in request;
}

/** The frame after the registry that says a store checkpoint follows. */
const CHECKPOINT_FRAME = Buffer.from('shoal-kv-checkpoint-v1');

/** A snapshot's data, decoded: the registry and the store in one of its two forms. */
export type SnapshotData = { registry: RegistryState } & (
  | { checkpoint: Uint8Array; chunks?: undefined }
  | { chunks: Uint8Array[]; checkpoint?: undefined }
);

/** Snapshot data from the registry and the store's snapshot chunks (the earlier form). */
export function encodeSnapshotData(registry: RegistryState, chunks: readonly Uint8Array[]): Buffer {
  const frames = [Buffer.from(JSON.stringify(registry)), ...chunks];
  let total = 0;
  for (const frame of frames) total += 4 + frame.length;
  const out = Buffer.allocUnsafe(total);
  let offset = 0;
  for (const frame of frames) {
    out.writeUInt32BE(frame.length, offset);
    out.set(frame, offset + 4);
    offset += 4 + frame.length;
  }
  return out;
}

/**
 * The snapshot data that comes before a store checkpoint of `checkpointBytes`: the registry, the
 * checkpoint marker and the checkpoint frame's length. The checkpoint file's bytes follow it.
 */
export function checkpointSnapshotHead(registry: RegistryState, checkpointBytes: number): Buffer {
  const head = encodeSnapshotData(registry, [CHECKPOINT_FRAME]);
  const frameHeader = Buffer.allocUnsafe(4);
  frameHeader.writeUInt32BE(checkpointBytes);
  return Buffer.concat([head, frameHeader]);
}

export function decodeSnapshotData(data: Uint8Array): SnapshotData {
  const buffer = Buffer.from(data.buffer, data.byteOffset, data.length);
  const frames: Uint8Array[] = [];
  let offset = 0;
  while (offset < buffer.length) {
    if (offset + 4 > buffer.length) throw new Error('snapshot data: truncated frame header');
    const length = buffer.readUInt32BE(offset);
    if (offset + 4 + length > buffer.length) throw new Error('snapshot data: truncated frame');
    frames.push(buffer.subarray(offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  const first = frames.shift();
  if (first === undefined) throw new Error('snapshot data: empty');
  const registry = JSON.parse(Buffer.from(first).toString('utf8')) as RegistryState;
  if (frames[0] !== undefined && CHECKPOINT_FRAME.equals(frames[0])) {
    if (frames.length !== 2) throw new Error('snapshot data: a checkpoint must be one frame');
    return { registry, checkpoint: frames[1]! };
  }
  return { registry, chunks: frames };
}

/** Replaces the store's state with a snapshot's, whichever form it has. */
export function restoreStore(kv: MvccStore, decoded: SnapshotData): Promise<void> {
  return decoded.checkpoint !== undefined
    ? kv.restoreCheckpoint(decoded.checkpoint)
    : kv.restore(asAsync(decoded.chunks));
}

/** The store's restore reads chunks as an async iterable. */
export async function* asAsync(chunks: readonly Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const chunk of chunks) yield chunk;
}
