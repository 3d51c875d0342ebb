/**
 * Puts to one member that are waiting at the end of an event-loop turn leave together, as one
 * `putBatch` call, instead of one call each. Every put keeps its own revision, answer and error,
 * exactly as if it had been sent alone (the member proposes them in the same turn either way);
 * what the batch saves is the per-call work on both sides: a frame, a call record and a response
 * each. A lone put goes out as a plain `put`, so a single caller pays nothing for the batching.
 *
 * The batch leaves from `process.nextTick`, which runs once every promise reaction of the current
 * turn has settled: a hundred callers whose previous puts were answered by one message all queue
 * their next put before it fires, and nothing waits for I/O or a timer. Any other call the client
 * sends first calls `flush()`, so a put never leaves after a write (or read) issued after it. A
 * batch is cut at PUT_BATCH_PUTS_MAX puts or PUT_BATCH_BYTES_MAX key and value bytes (a bigger
 * put leaves alone).
 *
 * Failures keep a plain put's meaning. A put the member refused is rejected with the RpcError a
 * single call would have thrown. A batch that failed as a whole after it was sent (the connection
 * broke, the deadline passed) rejects each of its puts with that error, and the client's retry
 * rules decide per put. A batch that provably never left (it could not be encoded: one bad put
 * would otherwise fail its neighbours) or that the member does not know (a member of an older
 * version: UNIMPLEMENTED, nothing applied) is sent again as single puts; after UNIMPLEMENTED this
 * endpoint stops batching.
 */
import {
  type CallOptions,
  isRpcError,
  RpcError,
  type Stub,
  statusFromNumber,
} from '../rpc/index.js';
import { isRefusedBeforeSending } from './errors.js';
import {
  type NativeKvService,
  PUT_BATCH_BYTES_MAX,
  PUT_BATCH_PUTS_MAX,
  type PutRequest,
  type PutResponse,
} from './protocol.js';

interface WaitingPut {
  request: PutRequest;
  resolve(response: PutResponse): void;
  reject(error: unknown): void;
}

export class PutBatcher {
  private waiting: WaitingPut[] = [];
  private waitingBytes = 0;
  private scheduled = false;
  /** False once the member answered that it has no putBatch method. */
  private batching = true;
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
  flush(): void {
    const batch = this.waiting;
    if (batch.length === 0) return;
    this.waiting = [];
    this.waitingBytes = 0;
    if (batch.length === 1 || !this.batching) {
      for (const waiting of batch) this.sendAlone(waiting);
      return;
    }
    const puts = batch.map((waiting) => waiting.request);
    this.stub
      .putBatch({ puts }, this.options)
      .then(
        (response) => answer(batch, response),
        (error: unknown) => this.batchFailed(batch, error),
      )
      .catch((error: unknown) => {
        // Only a bug in the two handlers above gets here; settle whatever they left pending.
        for (const waiting of batch) waiting.reject(error);
      });
  }

  /** Fails every waiting put without sending it (the client is closing). */
  cancel(error: unknown): void {
    const batch = this.waiting;
    this.waiting = [];
    this.waitingBytes = 0;
    for (const waiting of batch) waiting.reject(error);
  }

  private sendAlone(waiting: WaitingPut): void {
    this.stub.put(waiting.request, this.options).then(waiting.resolve, waiting.reject);
  }

  private batchFailed(batch: readonly WaitingPut[], error: unknown): void {
    const unknownMethod = isRpcError(error, 'UNIMPLEMENTED');
    if (unknownMethod) this.batching = false;
    if (unknownMethod || isRefusedBeforeSending(error)) {
      for (const waiting of batch) this.sendAlone(waiting);
      return;
    }
    for (const waiting of batch) waiting.reject(error);
  }
}

/** Settles each put from its result; an answer that does not fit the batch fails it whole. */
function answer(batch: readonly WaitingPut[], response: unknown): void {
  const results = (response as { results?: unknown } | null)?.results;
  if (!Array.isArray(results) || results.length !== batch.length) {
    // Any of the puts may have been applied, so none may be retried as if it had not been.
    const error = new RpcError('UNKNOWN', 'shoal: a putBatch answer did not match its puts');
    for (const waiting of batch) waiting.reject(error);
    return;
  }
  for (let i = 0; i < batch.length; i++) {
    const waiting = batch[i]!;
    const result: unknown = results[i];
    const failure = failureOf(result);
    if (failure !== undefined) waiting.reject(failure);
    else waiting.resolve(result as PutResponse);
  }
}

/** The error a put's result carries, undefined for a success; malformed results are errors. */
function failureOf(result: unknown): RpcError | undefined {
  if (typeof result !== 'object' || result === null) {
    return new RpcError('UNKNOWN', 'shoal: a putBatch answer held no result for a put');
  }
  if (!('error' in result)) return undefined;
  const { error } = result as { error: unknown };
  const { status, message } = (error ?? {}) as { status?: unknown; message?: unknown };
  if (typeof status !== 'number' || typeof message !== 'string') {
    return new RpcError('UNKNOWN', 'shoal: a putBatch answer held a malformed error');
  }
  return new RpcError(statusFromNumber(status), message);
}
