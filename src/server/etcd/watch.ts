/**
 * The etcd Watch protocol on one gRPC stream: create and cancel watchers, deliver events in
 * revision order, report compaction and progress. Each watcher is either synced (it takes events
 * live from the backend's commit feed) or catching up (it reads the committed history page by page
 * until it reaches the head, then becomes synced). A watcher never buffers more than one history
 * page: when the client reads too slowly (the HTTP/2 stream pushes back), every watcher on the
 * stream drops to catching up and resumes from its next revision once the stream drains, so memory
 * stays bounded and no event is lost or repeated.
 */
import type { Logger } from 'pino';
import type { EtcdBackend } from './backend.js';
import {
  boolField,
  bytesField,
  encodeHeader,
  encodeKeyValue,
  int64Number,
  messageField,
  type PbMessage,
} from './codec.js';
import { EtcdError } from './errors.js';
import type { GrpcCall } from './h2-grpc.js';
import type { RevisionEvents, WatchEvent } from './types.js';
import { compareBytes } from './validate.js';

/** Watchers one stream may hold; more are refused with a cancel reason. */
export const watchersPerStreamMax = 10_000;
/** Events read from history per page while a watcher catches up. */
export const historyPageEventsMax = 1000;
/** etcd's default interval for progress notifications to watchers that asked for them. */
export const progressIntervalMsDefault = 10 * 60 * 1000;

/** etcd's id for responses that belong to no watcher (progress answers). */
const noWatcherId = -1;

interface Watcher {
  id: number;
  key: Uint8Array;
  /** null: only `key`; empty: every key >= key; otherwise [key, rangeEnd). */
  rangeEnd: Uint8Array | null;
  noPut: boolean;
  noDelete: boolean;
  prevKv: boolean;
  progressNotify: boolean;
  /** Split responses larger than the member's max request bytes into fragments (etcd 3.4's rule). */
  fragment: boolean;
  /** The first revision this watcher has not been sent yet. */
  nextRevision: number;
  synced: boolean;
  /** Set when an event went out since the last progress notification. */
  sentSinceProgress: boolean;
}

type Call = GrpcCall<{ message: PbMessage; wireBytes: number }, PbMessage>;

export class WatchStream {
  readonly #call: Call;
  readonly #backend: EtcdBackend;
  readonly #log: Logger;
  readonly #watchers = new Map<number, Watcher>();
  #nextAutoId = 0;
  #blocked = false;
  #closed = false;
  #catchUpScheduled = false;
  readonly #unsubscribe: () => void;
  readonly #progressTimer: NodeJS.Timeout;

  readonly #fragmentBytesMax: number;

  constructor(
    call: Call,
    backend: EtcdBackend,
    log: Logger,
    progressIntervalMs: number,
    fragmentBytesMax: number,
  ) {
    this.#call = call;
    this.#fragmentBytesMax = fragmentBytesMax;
    this.#backend = backend;
    this.#log = log;
    this.#unsubscribe = backend.subscribe((revisions) => this.#onCommit(revisions));
    this.#progressTimer = setInterval(() => this.#notifyProgress(), progressIntervalMs);
    this.#progressTimer.unref();
    call.on('data', (request: { message: PbMessage }) => this.#onRequest(request.message));
    call.on('drain', () => {
      this.#blocked = false;
      this.#scheduleCatchUp();
    });
    call.on('end', () => this.#close(true));
    call.on('error', () => this.#close(false));
    call.on('cancelled', () => this.#close(false));
  }

  #close(endCall: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    clearInterval(this.#progressTimer);
    this.#watchers.clear();
    if (endCall) this.#call.end();
  }

  #send(response: PbMessage): void {
    if (this.#closed) return;
    if (!this.#call.write(response)) this.#blocked = true;
  }

  #onRequest(message: PbMessage): void {
    try {
      const create = messageField(message, 'createRequest');
      const cancel = messageField(message, 'cancelRequest');
      if (create) this.#create(create);
      else if (cancel) this.#cancel(int64Number(cancel, 'watchId'));
      else if (messageField(message, 'progressRequest')) this.#progress();
    } catch (error) {
      // A malformed request ends the stream with its status; the member carries on.
      if (!(error instanceof EtcdError)) this.#log.error({ err: error }, 'watch request failed');
      this.#close(false);
      const status = error instanceof EtcdError ? error.code : 2;
      const details = error instanceof Error ? error.message : String(error);
      this.#call.emit('error', Object.assign(new Error(details), { code: status, details }));
    }
  }

  #create(request: PbMessage): void {
    const current = this.#backend.currentRevision();
    const header = encodeHeader(this.#backend.header(current));
    const requestedId = int64Number(request, 'watchId');
    const refuse = (reason: string) =>
      this.#send({
        header,
        watchId: noWatcherId,
        created: true,
        canceled: true,
        cancelReason: reason,
      });
    if (this.#watchers.size >= watchersPerStreamMax) {
      refuse(`shoal: more than ${watchersPerStreamMax} watchers on one stream`);
      return;
    }
    if (requestedId !== 0 && this.#watchers.has(requestedId)) {
      refuse('mvcc: duplicate watch ID provided on the WatchStream');
      return;
    }
    const id = requestedId !== 0 ? requestedId : this.#autoId();
    const rangeEndBytes = bytesField(request, 'rangeEnd');
    const filters = Array.isArray(request.filters) ? (request.filters as unknown[]) : [];
    const startRevision = int64Number(request, 'startRevision');
    const watcher: Watcher = {
      id,
      key: bytesField(request, 'key'),
      rangeEnd:
        rangeEndBytes.length === 0
          ? null
          : rangeEndBytes.length === 1 && rangeEndBytes[0] === 0
            ? new Uint8Array(0)
            : rangeEndBytes,
      noPut: filters.includes(0),
      noDelete: filters.includes(1),
      prevKv: boolField(request, 'prevKv'),
      progressNotify: boolField(request, 'progressNotify'),
      fragment: boolField(request, 'fragment'),
      nextRevision: startRevision > 0 ? startRevision : current + 1,
      synced: true,
      sentSinceProgress: false,
    };
    this.#watchers.set(id, watcher);
    this.#send({ header, watchId: id, created: true });
    if (watcher.nextRevision <= current) {
      watcher.synced = false;
      this.#scheduleCatchUp();
    }
  }

  #autoId(): number {
    while (this.#watchers.has(this.#nextAutoId)) this.#nextAutoId++;
    return this.#nextAutoId++;
  }

  #cancel(id: number): void {
    // etcd answers only when the watcher existed.
    if (!this.#watchers.delete(id)) return;
    const header = encodeHeader(this.#backend.header(this.#backend.currentRevision()));
    this.#send({ header, watchId: id, canceled: true });
  }

  #progress(): void {
    const header = encodeHeader(this.#backend.header(this.#backend.currentRevision()));
    this.#send({ header, watchId: noWatcherId });
  }

  #notifyProgress(): void {
    const header = encodeHeader(this.#backend.header(this.#backend.currentRevision()));
    for (const w of this.#watchers.values()) {
      if (w.progressNotify && w.synced && !w.sentSinceProgress) {
        this.#send({ header, watchId: w.id });
      }
      w.sentSinceProgress = false;
    }
  }

  /** Live events from a commit: synced watchers take them, unless the stream pushes back. */
  #onCommit(revisions: readonly RevisionEvents[]): void {
    if (this.#closed) return;
    for (const w of this.#watchers.values()) {
      if (!w.synced) continue;
      if (this.#blocked) {
        // The client is behind: stop feeding it live; it will read this from history.
        w.synced = false;
        continue;
      }
      for (const revision of revisions) {
        if (revision.revision < w.nextRevision) continue;
        const events = this.#matching(w, revision.events);
        if (events.length > 0) {
          const header = encodeHeader(this.#backend.header(revision.revision));
          this.#sendEvents(w, header, events);
          w.sentSinceProgress = true;
        }
        w.nextRevision = revision.revision + 1;
      }
    }
    if (this.#blocked) this.#scheduleCatchUp();
  }

  #scheduleCatchUp(): void {
    if (this.#catchUpScheduled || this.#closed) return;
    this.#catchUpScheduled = true;
    setImmediate(() => {
      this.#catchUpScheduled = false;
      this.#catchUp();
    });
  }

  /** Sends one history page to each watcher that is behind; reschedules while any remain. */
  #catchUp(): void {
    if (this.#closed || this.#blocked) return;
    let behind = false;
    for (const w of [...this.#watchers.values()]) {
      if (w.synced) continue;
      if (this.#blocked) return;
      const current = this.#backend.currentRevision();
      let page: ReturnType<EtcdBackend['readHistory']>;
      try {
        page = this.#backend.readHistory(w.nextRevision, historyPageEventsMax, w.prevKv);
      } catch (error) {
        if (!(error instanceof EtcdError)) throw error;
        this.#compacted(w);
        continue;
      }
      const events = page.revisions.flatMap((r) => this.#matching(w, r.events));
      if (events.length > 0) {
        const header = encodeHeader(this.#backend.header(current));
        this.#sendEvents(w, header, events);
        w.sentSinceProgress = true;
      }
      w.nextRevision = page.nextRevision;
      // History and the live feed meet here: nothing can commit between the read and this line.
      if (w.nextRevision > current) w.synced = true;
      else behind = true;
    }
    if (behind) this.#scheduleCatchUp();
  }

  /**
   * Sends a watcher's events. A watcher that asked for fragments gets a response of two or more
   * events whose size reaches the member's max request bytes split into several responses, each
   * filled while it stays below that size (at least one event each), all but the last marked
   * `fragment`; the client joins them. Without the flag the response goes out whole, as in etcd.
   */
  #sendEvents(w: Watcher, header: PbMessage, events: PbMessage[]): void {
    const limitBytes = this.#fragmentBytesMax;
    const sizes = events.map(eventSizeBytes);
    const totalBytes = sizes.reduce((sum, size) => sum + size, responseOverheadBytes);
    if (!w.fragment || events.length < 2 || totalBytes < limitBytes) {
      this.#send({ header, watchId: w.id, events });
      return;
    }
    let start = 0;
    while (start < events.length) {
      let end = start + 1;
      let bytes = responseOverheadBytes + sizes[start]!;
      while (end < events.length && bytes + sizes[end]! < limitBytes) bytes += sizes[end++]!;
      const last = end === events.length;
      this.#send({ header, watchId: w.id, events: events.slice(start, end), fragment: !last });
      start = end;
    }
  }

  /** The watcher's start is below the compaction: tell the client and drop the watcher. */
  #compacted(w: Watcher): void {
    this.#watchers.delete(w.id);
    const compactRevision = this.#backend.compactedRevision();
    const header = encodeHeader(this.#backend.header(this.#backend.currentRevision()));
    this.#send({ header, watchId: w.id, canceled: true, compactRevision });
  }

  #matching(w: Watcher, events: readonly WatchEvent[]): PbMessage[] {
    const out: PbMessage[] = [];
    for (const event of events) {
      if (event.type === 'put' ? w.noPut : w.noDelete) continue;
      if (!inRange(w, event.kv.key)) continue;
      const encoded: PbMessage = {
        type: event.type === 'put' ? 0 : 1,
        kv: encodeKeyValue(event.kv),
      };
      if (w.prevKv && event.prevKv) encoded.prevKv = encodeKeyValue(event.prevKv);
      out.push(encoded);
    }
    return out;
  }
}

/** Room for the header and the response's own fields when sizing fragments. */
const responseOverheadBytes = 64;

/** An encoded event's size on the wire, closely enough to keep fragments below the limit. */
function eventSizeBytes(event: PbMessage): number {
  let bytes = 8;
  for (const field of ['kv', 'prevKv'] as const) {
    const kv = event[field] as { key?: Uint8Array; value?: Uint8Array } | undefined;
    if (kv !== undefined) bytes += 48 + (kv.key?.length ?? 0) + (kv.value?.length ?? 0);
  }
  return bytes;
}

function inRange(w: Watcher, key: Uint8Array): boolean {
  if (w.rangeEnd === null) return compareBytes(key, w.key) === 0;
  if (compareBytes(key, w.key) < 0) return false;
  return w.rangeEnd.length === 0 || compareBytes(key, w.rangeEnd) < 0;
}
