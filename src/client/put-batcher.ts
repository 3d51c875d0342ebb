/**
 * Puts to one member that are waiting at the end of an event-loop turn leave together, as one
 * `putBatch` call, instead of one call each. Every put keeps its own revision, answer and error,
 * exactly as if it had been sent alone (the member proposes them in the same turn either way);
 * what the batch saves is the per-call work on both sides: a frame, a call record and a response
 * each. A lone put goes out as a plain `put`, so a single caller pays nothing for the batching.
 *
 * The batch leaves from `process.nextTick`, which runs once every promise reaction of the current
 * turn has settled: a hundred callers whose previous puts were answered by one message all queue
 * their next put before it fires, and nothing waits for I/O or a timer. A batch is cut at
 * PUT_BATCH_PUTS_MAX puts or PUT_BATCH_BYTES_MAX key and value bytes (a bigger put leaves alone).
 *
 * A put whose batch failed as a whole (the connection broke, the deadline passed) is rejected with
 * that call's error, and a put the member refused with its own error, rebuilt as the RpcError a
 * single call would have thrown: the client's retry rules see the same facts either way.
 */
import { type CallOptions, RpcError, type Stub, statusFromNumber } from '../rpc/index.js';
import {
  type NativeKvService,
  PUT_BATCH_PUTS_MAX,
  type PutBatchError,
  type PutRequest,
  type PutResponse,
} from './protocol.js';

/** Key and value bytes one batch carries at most. */
export const PUT_BATCH_BYTES_MAX = 1024 * 1024;

interface WaitingPut {
  request: PutRequest;
  resolve(response: PutResponse): void;
  reject(error: unknown): void;
}

export class PutBatcher {
  private waiting: WaitingPut[] = [];
  private waitingBytes = 0;
  private scheduled = false;
  private readonly flushScheduled = () => {
    this.scheduled = false;
    this.flush();
  };

  constructor(
    private readonly stub: Stub<NativeKvService>,
    private readonly options: CallOptions,
  ) {}

  put(request: PutRequest): Promise<PutResponse> {
    const bytes = request.key.length + (request.value?.length ?? 0);
    const full =
      this.waiting.length >= PUT_BATCH_PUTS_MAX || this.waitingBytes + bytes > PUT_BATCH_BYTES_MAX;
    if (full && this.waiting.length > 0) this.flush();
    return new Promise<PutResponse>((resolve, reject) => {
      this.waiting.push({ request, resolve, reject });
      this.waitingBytes += bytes;
      if (!this.scheduled) {
        this.scheduled = true;
        process.nextTick(this.flushScheduled);
      }
    });
  }

  /** Sends what waits now: a plain put for one, a putBatch for more. */
  private flush(): void {
    const batch = this.waiting;
    if (batch.length === 0) return;
    this.waiting = [];
    this.waitingBytes = 0;
    if (batch.length === 1) {
      const only = batch[0]!;
      this.stub.put(only.request, this.options).then(only.resolve, only.reject);
      return;
    }
    const puts = batch.map((waiting) => waiting.request);
    this.stub.putBatch({ puts }, this.options).then(
      (response) => answer(batch, response.results),
      (error: unknown) => {
        for (const waiting of batch) waiting.reject(error);
      },
    );
  }
}

function answer(batch: readonly WaitingPut[], results: unknown): void {
  if (!Array.isArray(results) || results.length !== batch.length) {
    // The member answered something this client cannot match to its puts; any of them may have
    // been applied, so none may be retried as if it had not been.
    const error = new RpcError('UNKNOWN', 'shoal: a putBatch answer did not match its puts');
    for (const waiting of batch) waiting.reject(error);
    return;
  }
  for (let i = 0; i < batch.length; i++) {
    const result = results[i] as PutResponse | PutBatchError | null;
    const waiting = batch[i]!;
    if (typeof result !== 'object' || result === null) {
      waiting.reject(new RpcError('UNKNOWN', 'shoal: a putBatch answer held no result for a put'));
    } else if ('error' in result) {
      const { status, message } = result.error;
      waiting.reject(new RpcError(statusFromNumber(status), String(message)));
    } else waiting.resolve(result);
  }
}
