/**
 * What Mutex and Election share, following etcd's Go `concurrency` package so that the keys they
 * write mean the same to an etcd client: a contender's key is `<name>/<lease id in hex>`, created
 * if absent with a transaction and attached to the contender's lease; the contender whose key has
 * the lowest create revision under `<name>/` holds the lock (or leads). A waiter watches only the
 * key created just before its own (the greatest create revision below its own) for a delete, then
 * looks again, so a release wakes one waiter, not the whole queue.
 *
 * `Stop` folds the ways a wait can end early (the caller's AbortSignal, a timeout, the session
 * lease being lost) into one signal whose reason is the ShoalError to throw.
 */
import type { ShoalClient } from './client.js';
import { ShoalError } from './errors.js';
import type { Lease } from './lease.js';
import type { KeyValue, RangeRequest } from './protocol.js';
import { type Bytes, prefixEnd, toBytes } from './txn.js';

export interface WaitOptions {
  /** Gives up (with reason 'CANCELLED') when this signal aborts. */
  signal?: AbortSignal;
  /** Gives up (with code DEADLINE_EXCEEDED) after this long. */
  timeoutMs?: number;
}

/**
 * Waits for the keys queued before ours, one at a time, at most this many before the wait gives up
 * with an error (each step watches one key and re-reads; a queue this long is a misuse).
 */
export const WAIT_STEPS_MAX = 100_000;

/** One signal for the caller's AbortSignal, the timeout and the loss of the lease. */
export class Stop {
  private readonly controller = new AbortController();
  private readonly cleanups: Array<() => void> = [];

  constructor(options: WaitOptions | undefined, lease: Lease | undefined) {
    const signal = options?.signal;
    if (signal !== undefined) {
      const onAbort = () => this.stop(new ShoalError('CANCELLED', 'the wait was aborted'));
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        this.cleanups.push(() => signal.removeEventListener('abort', onAbort));
      }
    }
    if (options?.timeoutMs !== undefined) {
      const timeoutMs = options.timeoutMs;
      const timer = setTimeout(
        () => this.stop(new ShoalError('DEADLINE_EXCEEDED', `not done within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.cleanups.push(() => clearTimeout(timer));
    }
    if (lease !== undefined) {
      const onLost = (error: ShoalError) => this.stop(error);
      lease.on('lost', onLost);
      this.cleanups.push(() => lease.off('lost', onLost));
      if (lease.state !== 'alive')
        this.stop(new ShoalError('FAILED_PRECONDITION', `lease ${lease.idHex} is ${lease.state}`));
    }
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get stopped(): boolean {
    return this.controller.signal.aborted;
  }

  /** Throws the reason the wait ended, if it did. */
  check(): void {
    if (this.stopped) throw this.controller.signal.reason as ShoalError;
  }

  /**
   * Ties a watch to this stop: the watch is cancelled when the stop fires (or at once if it already
   * has). Call the returned function when done with the watch: it detaches and cancels it.
   */
  cancels(watch: { cancel(): void }): () => void {
    const cancel = () => watch.cancel();
    this.signal.addEventListener('abort', cancel, { once: true });
    // The stop may have fired before the listener was added (during the caller's last await).
    if (this.stopped) watch.cancel();
    return () => {
      this.signal.removeEventListener('abort', cancel);
      watch.cancel();
    };
  }

  dispose(): void {
    for (const cleanup of this.cleanups) cleanup();
    this.cleanups.length = 0;
  }

  private stop(reason: ShoalError): void {
    if (!this.stopped) this.controller.abort(reason);
  }
}

/** `<name>/`: the prefix under which contenders' keys live (etcd's pfx). */
export function contenderPrefix(name: Bytes): Uint8Array {
  const bytes = toBytes(name);
  return Buffer.concat([bytes, Buffer.from('/')]);
}

/** `<name>/<lease id in hex>`: a contender's key (etcd's `fmt.Sprintf("%s%x", pfx, lease)`). */
export function contenderKey(prefix: Uint8Array, lease: Lease): Uint8Array {
  return Buffer.concat([prefix, Buffer.from(lease.idHex)]);
}

/**
 * A session's place in a queue under `<name>/` (what Mutex and Election have in common): its key,
 * the key's create revision while queued or holding, and withdrawal from the queue.
 */
export abstract class Contender {
  /** `<name>/`, under which every contender's key lives. */
  readonly prefix: Uint8Array;
  /** `<name>/<lease hex>`: this session's key. */
  readonly key: Uint8Array;
  /** Our key's create revision while we wait, hold or lead; 0 otherwise. */
  protected revision = 0;

  constructor(
    protected readonly client: ShoalClient,
    readonly lease: Lease,
    name: Bytes,
  ) {
    this.prefix = contenderPrefix(name);
    this.key = contenderKey(this.prefix, lease);
  }

  /** Deletes our key after a failed or abandoned wait, best effort (the lease reaps it anyway). */
  protected async withdraw(): Promise<void> {
    this.revision = 0;
    try {
      await this.client.delete(this.key);
    } catch {
      // Nothing more to do: the key goes when the session lease ends.
    }
  }
}

/** The range request for the earliest-created key under `prefix` (etcd's WithFirstCreate). */
export function firstCreated(prefix: Uint8Array): RangeRequest {
  return {
    key: prefix,
    rangeEnd: prefixEnd(prefix),
    sortTarget: 'create',
    sortOrder: 'ascend',
    limit: 1,
  };
}

/**
 * Returns once no key under `prefix` has a create revision at most `maxCreateRevision`: every
 * contender queued before us has gone (etcd's waitDeletes).
 */
export async function waitDeletes(
  client: ShoalClient,
  prefix: Uint8Array,
  maxCreateRevision: number,
  stop: Stop,
): Promise<void> {
  for (let step = 0; step < WAIT_STEPS_MAX; step++) {
    stop.check();
    const response = await client.rangeRequest({
      key: prefix,
      rangeEnd: prefixEnd(prefix),
      sortTarget: 'create',
      sortOrder: 'descend',
      limit: 1,
      maxCreateRevision,
    });
    const last = response.kvs[0];
    if (last === undefined) return;
    await waitDelete(client, last.key, response.header.revision + 1, stop);
  }
  throw new ShoalError('RESOURCE_EXHAUSTED', `more than ${WAIT_STEPS_MAX} contenders queued`);
}

/** Returns when `key` is deleted at or after `startRevision` (or its history was compacted). */
async function waitDelete(
  client: ShoalClient,
  key: Uint8Array,
  startRevision: number,
  stop: Stop,
): Promise<void> {
  const watch = client.watch(key, { startRevision });
  const release = stop.cancels(watch);
  try {
    for await (const batch of watch) {
      if (batch.events.some((event) => event.type === 'delete')) return;
    }
    stop.check();
  } catch (error) {
    // A compacted start revision: the caller's next range shows whether the key is still there.
    if (error instanceof ShoalError && error.reason === 'compacted') return;
    throw error;
  } finally {
    release();
  }
}

/** The first put under `prefix` at or after `startRevision` (a leader appearing). */
export async function waitFirstPut(
  client: ShoalClient,
  prefix: Uint8Array,
  startRevision: number,
  stop: Stop,
): Promise<KeyValue | undefined> {
  const watch = client.watch(prefix, { prefix: true, startRevision });
  const release = stop.cancels(watch);
  try {
    for await (const batch of watch) {
      const put = batch.events.find((event) => event.type === 'put');
      if (put !== undefined) return put.kv;
    }
    stop.check();
    return undefined;
  } catch (error) {
    if (error instanceof ShoalError && error.reason === 'compacted') return undefined;
    throw error;
  } finally {
    release();
  }
}
