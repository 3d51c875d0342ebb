/**
 * The native watch: a server stream of the events on a key or range from a start revision on.
 * It is driven by the committed history alone: the backend's commit feed only wakes it, and each
 * wake reads `readHistory` pages from the next undelivered revision until it reaches the head. So
 * a watch holds at most one page in memory whatever the write rate, a slow reader simply reads
 * later pages later (the RPC stream's credit pulls this generator), and no event can be lost or
 * repeated between catching up and following live commits. Whole revisions are sent together, so
 * a client that resumes from "last delivered revision + 1" on any member continues exactly.
 */
import type { WatchEvent, WatchResponse } from '../../client/protocol.js';
import type { CallContext } from '../../rpc/index.js';
import { RpcError } from '../../rpc/index.js';
import type { EtcdBackend } from '../etcd/backend.js';
import { EtcdError, etcdErrors } from '../etcd/errors.js';
import type * as api from '../etcd/types.js';
import { compareBytes } from '../etcd/validate.js';
import { rpcErrorOf, toWatch } from './convert.js';

/** Events read per history page (whole revisions, so a page may exceed it by one revision). */
export const WATCH_PAGE_EVENTS_MAX = 1000;

/** Is `key` inside the watched key or range? */
function matcher(start: Uint8Array, rangeEnd: Uint8Array): (key: Uint8Array) => boolean {
  if (rangeEnd.length === 0) return (key) => compareBytes(key, start) === 0;
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return (key) => compareBytes(key, start) >= 0;
  return (key) => compareBytes(key, start) >= 0 && compareBytes(key, rangeEnd) < 0;
}

/** Resolves on the next commit or when the call ends, whichever comes first. */
class CommitSignal {
  private wake: (() => void) | null = null;
  private pending = false;

  notify(): void {
    this.pending = true;
    this.wake?.();
  }

  next(signal: AbortSignal): Promise<void> {
    if (this.pending || signal.aborted) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        this.wake = null;
        this.pending = false;
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.wake = done;
      signal.addEventListener('abort', done, { once: true });
    });
  }
}

export async function* watchEvents(
  backend: EtcdBackend,
  rawRequest: unknown,
  context: CallContext,
): AsyncGenerator<WatchResponse> {
  const request = toWatch(rawRequest);
  const matches = matcher(request.key, request.rangeEnd);
  const commits = new CommitSignal();
  const unsubscribe = backend.subscribe(() => commits.notify());
  try {
    let next = request.startRevision > 0 ? request.startRevision : backend.currentRevision() + 1;
    yield { header: backend.header(next - 1), events: [], created: true };
    while (!context.signal.aborted) {
      if (next > backend.currentRevision()) {
        await commits.next(context.signal);
        continue;
      }
      let page: api.HistoryPage;
      try {
        page = backend.readHistory(next, WATCH_PAGE_EVENTS_MAX, request.prevKv);
      } catch (error) {
        if (error instanceof EtcdError && error.message === etcdErrors.compacted().message) {
          const compactRevision = backend.compactedRevision();
          yield {
            header: backend.header(backend.currentRevision()),
            events: [],
            canceled: true,
            compactRevision,
          };
          return;
        }
        throw error instanceof EtcdError ? rpcErrorOf(error) : error;
      }
      const events: WatchEvent[] = [];
      for (const revision of page.revisions) {
        for (const event of revision.events) if (matches(event.kv.key)) events.push(event);
      }
      if (page.nextRevision <= next)
        throw new RpcError('INTERNAL', `history did not advance past ${next}`);
      next = page.nextRevision;
      if (events.length > 0) yield { header: backend.header(next - 1), events };
    }
  } finally {
    unsubscribe();
  }
}
