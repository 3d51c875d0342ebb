/**
 * ShoalClient's watch: an async iterator of event batches (one or more whole revisions each) on a
 * key or prefix. It reads from any member (every member applies the same history) and, when that
 * member fails, reopens the stream on another one from the revision after the last one it
 * delivered, so the caller sees every event exactly once and in order. A start revision that was
 * compacted away ends the iteration with a ShoalError of reason 'compacted'.
 *
 *   const watch = client.watch('config/', { prefix: true });
 *   for await (const { revision, events } of watch) { ... }   // `break` or watch.cancel() ends it
 */
import { isRpcError } from '../rpc/index.js';
import { isConnectionFailure, ShoalError } from './errors.js';
import { ETCD_MESSAGE, type WatchEvent, type WatchRequest } from './protocol.js';
import type { Router } from './router.js';

/** Stream (re)opens in a row that may fail before the watch gives up with the last error. */
export const WATCH_REOPENS_MAX = 20;
/** Delay before reopening a failed watch stream; doubles up to WATCH_REOPEN_DELAY_MS_MAX. */
export const WATCH_REOPEN_DELAY_MS_INITIAL = 25;
export const WATCH_REOPEN_DELAY_MS_MAX = 500;

export interface WatchBatch {
  /** The revision of the last event in the batch. */
  revision: number;
  events: WatchEvent[];
}

export class Watch implements AsyncIterable<WatchBatch> {
  private readonly controller = new AbortController();
  /** The first revision not yet delivered; 0 until the first stream says where it starts. */
  private nextRevision: number;
  /** How many streams have been opened (the first plus every resume). */
  opens = 0;
  /**
   * Resolves with the revision the watch starts after, once the first stream is open (iterating
   * opens it): changes committed after that are delivered.
   */
  readonly started: Promise<number>;
  private resolveStarted: (revision: number) => void = () => {};

  constructor(
    private readonly router: Router,
    private readonly request: WatchRequest,
  ) {
    this.nextRevision = request.startRevision ?? 0;
    this.started = new Promise((resolve) => {
      this.resolveStarted = resolve;
    });
  }

  /** Ends the watch; a loop over it finishes. */
  cancel(): void {
    this.controller.abort();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<WatchBatch> {
    let failures = 0;
    try {
      while (!this.controller.signal.aborted) {
        const endpoint = this.router.pickAny();
        let failure: unknown;
        try {
          for await (const batch of this.open(endpoint.stub)) {
            failures = 0;
            yield batch;
          }
        } catch (error) {
          if (error instanceof ShoalError) throw error;
          failure = error;
        }
        if (this.controller.signal.aborted) return;
        // The stream failed, or the member ended it (it is shutting down): resume elsewhere.
        if (failure !== undefined && isConnectionFailure(failure)) this.router.markDown(endpoint);
        if ((failure !== undefined && !resumable(failure)) || ++failures >= WATCH_REOPENS_MAX)
          throw ShoalError.from(
            failure ?? new Error('watch streams keep ending'),
            endpoint.address,
          );
        const delayMs = Math.min(
          WATCH_REOPEN_DELAY_MS_INITIAL * 2 ** failures,
          WATCH_REOPEN_DELAY_MS_MAX,
        );
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    } finally {
      this.controller.abort();
    }
  }

  private async *open(stub: Router['endpoints'][number]['stub']): AsyncGenerator<WatchBatch> {
    this.opens++;
    const request: WatchRequest = { ...this.request, startRevision: this.nextRevision };
    const stream = stub.watch(request, { signal: this.controller.signal });
    for await (const response of stream) {
      if (response.canceled) {
        throw new ShoalError(
          'OUT_OF_RANGE',
          `${ETCD_MESSAGE.compacted} (compacted at ${response.compactRevision ?? 0})`,
        );
      }
      if (response.created) {
        if (this.nextRevision === 0) this.nextRevision = response.header.revision + 1;
        this.resolveStarted(this.nextRevision - 1);
        continue;
      }
      const last = response.events[response.events.length - 1];
      if (last === undefined) continue;
      this.nextRevision = last.kv.modRevision + 1;
      yield { revision: last.kv.modRevision, events: response.events };
    }
  }
}

/** A watch stream may be reopened after any failure that is not a refusal of the request. */
function resumable(error: unknown): boolean {
  return (
    isRpcError(error, 'UNAVAILABLE') ||
    isRpcError(error, 'DEADLINE_EXCEEDED') ||
    isRpcError(error, 'CANCELLED') ||
    isRpcError(error, 'INTERNAL')
  );
}
