/**
 * A distributed mutex with etcd's `concurrency.Mutex` semantics and key layout (concurrency.ts):
 * `lock()` creates `<name>/<lease hex>` if absent, attached to the session lease, and returns once
 * that key has the lowest create revision under `<name>/`; waiters queue in create-revision order
 * and each watches only its predecessor. The lock is held as long as the key exists, so it is lost
 * when the lease is (revoked, expired, or not renewed in time): `mutex.lost` then resolves.
 *
 *   const lease = await client.grant(10);
 *   const mutex = new Mutex(client, lease, 'locks/job');
 *   await mutex.lock({ timeoutMs: 30_000 });       // or { signal }
 *   try { ... } finally { await mutex.unlock(); }
 */
import { Contender, firstCreated, Stop, type WaitOptions, waitDeletes } from './concurrency.js';
import { ShoalError } from './errors.js';
import type { RangeResponse } from './protocol.js';
import { compare, op } from './txn.js';

export class Mutex extends Contender {
  /** Resolves with the reason once the session lease, and with it the lock, is lost. */
  get lost(): Promise<ShoalError> {
    return this.lease.lost;
  }

  /** Our key's create revision while we hold or wait for the lock (etcd's Header revision). */
  get createRevision(): number {
    return this.revision;
  }

  /**
   * Acquires the lock, waiting behind earlier contenders. On abort, timeout or lease loss it
   * withdraws from the queue (deletes our key) and throws a ShoalError saying why.
   */
  async lock(options?: WaitOptions): Promise<void> {
    const stop = new Stop(options, this.lease);
    try {
      stop.check();
      if (await this.tryAcquire()) return;
      try {
        await waitDeletes(this.client, this.prefix, this.revision - 1, stop);
        // The lease may have expired while we waited: then our key, and our place, are gone.
        const mine = await this.client.get(this.key);
        if (mine === undefined || mine.createRevision !== this.revision)
          throw new ShoalError('FAILED_PRECONDITION', 'mutex: session expired while waiting');
        stop.check();
      } catch (error) {
        await this.withdraw();
        throw error;
      }
    } finally {
      stop.dispose();
    }
  }

  /** Takes the lock only if nobody holds it; false (and no queued key left behind) otherwise. */
  async tryLock(): Promise<boolean> {
    this.lease.assertAlive();
    if (await this.tryAcquire()) return true;
    await this.withdraw();
    return false;
  }

  /** Releases the lock (or withdraws from the queue) by deleting our key. */
  async unlock(): Promise<void> {
    if (this.revision === 0) throw new ShoalError('FAILED_PRECONDITION', 'mutex: not locked');
    await this.client.delete(this.key);
    this.revision = 0;
  }

  /** Whether our key is, right now, the earliest one under the prefix. */
  async isOwner(): Promise<boolean> {
    if (this.revision === 0) return false;
    const owner = await this.client.rangeRequest(firstCreated(this.prefix));
    return ownerIs(owner, this.revision);
  }

  /**
   * Creates our key if absent and reads the current owner in one transaction, remembering our
   * key's create revision; true when we are the owner.
   */
  private async tryAcquire(): Promise<boolean> {
    const owner = op.get(this.prefix, {
      prefix: true,
      sortTarget: 'create',
      sortOrder: 'ascend',
      limit: 1,
    });
    const response = await this.client
      .txn()
      .if(compare(this.key).createRevision('=', 0))
      .then(op.put(this.key, '', { lease: this.lease.id }), owner)
      .else(op.get(this.key), owner)
      .commit();
    const first = response.responses[0];
    const ownerRange = response.responses[1];
    if (ownerRange?.type !== 'range') throw new ShoalError('INTERNAL', 'mutex: malformed txn');
    if (response.succeeded) this.revision = response.header.revision;
    else if (first?.type === 'range' && first.response.kvs[0] !== undefined)
      this.revision = first.response.kvs[0].createRevision;
    else throw new ShoalError('INTERNAL', 'mutex: our key vanished inside the transaction');
    return ownerIs(ownerRange.response, this.revision);
  }
}

function ownerIs(owner: RangeResponse, revision: number): boolean {
  const first = owner.kvs[0];
  return first === undefined || first.createRevision === revision;
}
