/**
 * Leader election with etcd's `concurrency.Election` semantics and key layout (concurrency.ts):
 * a campaigner's key `<name>/<lease hex>` holds its value; the leader is the campaigner whose key
 * has the lowest create revision under `<name>/`. `campaign` blocks until we lead; `proclaim`
 * changes the leader's value without a new election; `resign` hands over; `leader()` reads the
 * current leader; `observe()` follows the leaders' values as they change.
 *
 *   const lease = await client.grant(10);
 *   const election = new Election(client, lease, 'elections/scheduler');
 *   await election.campaign('node-a');            // resolves once node-a leads
 *   await election.proclaim('node-a, epoch 2');
 *   await election.resign();
 *
 *   for await (const leader of election.observe()) console.log(Buffer.from(leader.value).toString());
 */
import {
  Contender,
  firstCreated,
  Stop,
  type WaitOptions,
  waitDeletes,
  waitFirstPut,
} from './concurrency.js';
import { ShoalError } from './errors.js';
import type { KeyValue } from './protocol.js';
import { type Bytes, compare, op, toBytes } from './txn.js';

/** etcd's ErrElectionNotLeader text. */
export const NOT_LEADER_MESSAGE = 'election: not leader';

export class Election extends Contender {
  /** True between a successful campaign and resign (or the loss of the lease). */
  get isLeader(): boolean {
    return this.revision !== 0 && this.lease.state === 'alive';
  }

  /**
   * Puts our candidacy with `value` and resolves once we lead. On abort or timeout it withdraws
   * (deletes our key); if the lease is lost while waiting it throws the lease's error.
   */
  async campaign(value: Bytes, options?: WaitOptions): Promise<void> {
    const stop = new Stop(options, this.lease);
    try {
      stop.check();
      const bytes = toBytes(value);
      const response = await this.client
        .txn()
        .if(compare(this.key).createRevision('=', 0))
        .then(op.put(this.key, bytes, { lease: this.lease.id }))
        .else(op.get(this.key))
        .commit();
      this.revision = response.header.revision;
      if (!response.succeeded) {
        const first = response.responses[0];
        const existing = first?.type === 'range' ? first.response.kvs[0] : undefined;
        if (existing === undefined) throw new ShoalError('INTERNAL', 'election: key vanished');
        this.revision = existing.createRevision;
        if (!Buffer.from(existing.value).equals(bytes)) await this.proclaim(bytes);
      }
      try {
        await waitDeletes(this.client, this.prefix, this.revision - 1, stop);
        stop.check();
      } catch (error) {
        await this.withdraw();
        throw error;
      }
    } finally {
      stop.dispose();
    }
  }

  /** Changes the value we lead with; throws 'election: not leader' if we no longer lead. */
  async proclaim(value: Bytes): Promise<void> {
    if (this.revision === 0) throw new ShoalError('FAILED_PRECONDITION', NOT_LEADER_MESSAGE);
    const response = await this.client
      .txn()
      .if(compare(this.key).createRevision('=', this.revision))
      .then(op.put(this.key, value, { lease: this.lease.id }))
      .commit();
    if (!response.succeeded) {
      this.revision = 0;
      throw new ShoalError('FAILED_PRECONDITION', NOT_LEADER_MESSAGE);
    }
  }

  /** Gives up leadership (or candidacy); the next campaigner in line becomes leader. */
  async resign(): Promise<void> {
    if (this.revision === 0) return;
    await this.client
      .txn()
      .if(compare(this.key).createRevision('=', this.revision))
      .then(op.delete(this.key))
      .commit();
    this.revision = 0;
  }

  /** The current leader's key and value, or undefined when nobody campaigns. */
  async leader(): Promise<KeyValue | undefined> {
    const response = await this.client.rangeRequest(firstCreated(this.prefix));
    return response.kvs[0];
  }

  /**
   * The leader's key-value each time the leader or its value changes, starting with the current
   * one (or the first to appear). Ends when `signal` aborts or the loop breaks.
   */
  async *observe(options?: { signal?: AbortSignal }): AsyncGenerator<KeyValue> {
    const stop = new Stop(options, undefined);
    try {
      while (!stop.stopped) {
        const current = await this.client.rangeRequest(firstCreated(this.prefix));
        const leader =
          current.kvs[0] ??
          (await waitFirstPut(this.client, this.prefix, current.header.revision + 1, stop));
        if (leader === undefined) continue;
        yield leader;
        yield* this.followLeader(leader, stop);
      }
    } finally {
      stop.dispose();
    }
  }

  /** Yields the leader's new values until its key is deleted (or the observer stops). */
  private async *followLeader(leader: KeyValue, stop: Stop): AsyncGenerator<KeyValue> {
    const watch = this.client.watch(leader.key, { startRevision: leader.modRevision + 1 });
    const release = stop.cancels(watch);
    try {
      for await (const batch of watch) {
        for (const event of batch.events) {
          if (event.type === 'delete') return;
          yield event.kv;
        }
      }
    } catch (error) {
      // History compacted under us: start over from the current leader.
      if (error instanceof ShoalError && error.reason === 'compacted') return;
      throw error;
    } finally {
      release();
    }
  }
}
