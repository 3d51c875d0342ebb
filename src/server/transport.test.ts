/**
 * Resumable snapshot transfer between two real PeerTransports (port 0, one process, fake raft
 * handlers): a transfer cut midway resumes from the receiver's partial file, a partial that fails
 * the whole-snapshot checksum or belongs to another snapshot is discarded and the transfer starts
 * from 0. Faults are injected through the transport's observer hooks; every wait is on an event.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import { pino } from 'pino';
import { EMPTY_CONF_STATE, type Message, MessageType } from '../raft/index.js';
import { message } from '../raft/raft.js';
import { clientStream, defineService, RpcServer } from '../rpc/index.js';
import { partialFileName, SnapshotInbox } from './snapshot-inbox.js';
import { PeerTransport, SNAPSHOT_CHUNK_BYTES, type TransportHandlers } from './transport.js';

const CLUSTER_ID = 77;
const SENDER_ID = 1;
const RECEIVER_ID = 2;
const EVENT_DEADLINE_MS = 20_000;
const logger = pino({ level: process.env.TEST_LOG ?? 'silent' }, pino.destination(2));

/** Deterministic bytes (xorshift32 from `seed`). */
function seededBytes(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

function snapMessage(index: number, term: number, data: Uint8Array): Message {
  return message(MessageType.Snap, {
    from: SENDER_ID,
    to: RECEIVER_ID,
    term,
    snapshot: { metadata: { index, term, confState: EMPTY_CONF_STATE }, data },
  });
}

/** Values pushed by callbacks, awaited one at a time with a deadline that fails the test. */
class Events<T> {
  private readonly values: T[] = [];
  private waiter: ((value: T) => void) | null = null;

  push(value: T): void {
    const waiter = this.waiter;
    this.waiter = null;
    if (waiter !== null) waiter(value);
    else this.values.push(value);
  }

  next(what: string): Promise<T> {
    if (this.values.length > 0) return Promise.resolve(this.values.shift()!);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no ${what} within ${EVENT_DEADLINE_MS} ms`)),
        EVENT_DEADLINE_MS,
      );
      this.waiter = (value) => {
        clearTimeout(timer);
        resolve(value);
      };
    });
  }

  clear(): void {
    this.values.length = 0;
  }

  get pending(): number {
    return this.values.length;
  }
}

function handlers(overrides: Partial<TransportHandlers>): TransportHandlers {
  return {
    step() {},
    reportUnreachable() {},
    reportSnapshot() {},
    info: () => ({ registry: { index: 0, clusterId: CLUSTER_ID, members: [] } }),
    promote: async () => ({ ok: false, code: 14, message: 'not leader' }),
    lease: () => ({ ttlSeconds: -1, grantedTtlSeconds: 0 }),
    removed() {},
    ...overrides,
  };
}

/**
 * One sender and one receiver. `cutAtChunk` makes the sender's next attempt break before it sends
 * that chunk (once the receiver has written everything before it), as a dropped connection would.
 */
async function transportPair() {
  const dir = fs.mkdtempSync(join(tmpdir(), 'shoal-snapresume-'));
  const reports = new Events<string>();
  const stepped = new Events<Message>();
  const written = new Events<number>();
  const control = {
    cutAtChunk: -1,
    /** Per attempt: the offsets of the chunks the sender handed to the stream. */
    attempts: [] as { offset: number; bytes: number }[][],
  };
  /** A receiving member: its inbox opened on `dir` as at start-up. */
  const startReceiver = async () => {
    const inbox = await SnapshotInbox.open(dir, { installedIndex: 0, logger });
    return new PeerTransport(
      RECEIVER_ID,
      CLUSTER_ID,
      handlers({ step: (m) => stepped.push(m) }),
      logger,
      {
        snapshotInbox: inbox,
        observer: { receivedSnapshotChunk: (_from, bytes) => written.push(bytes) },
      },
    );
  };
  let receiver = await startReceiver();
  const sender = new PeerTransport(
    SENDER_ID,
    CLUSTER_ID,
    handlers({ reportSnapshot: (_id, status) => reports.push(status) }),
    logger,
    {
      observer: {
        async sendingSnapshotChunk(_to, offset, bytes) {
          const cut = control.cutAtChunk;
          if (cut >= 0 && offset === cut * SNAPSHOT_CHUNK_BYTES) {
            control.cutAtChunk = -1;
            // Wait until the receiver has written every chunk sent before the cut.
            while ((await written.next('receiver write')) < offset) {}
            throw new Error('injected fault: connection cut');
          }
          control.attempts.at(-1)!.push({ offset, bytes });
        },
      },
    },
  );
  const connect = async () => {
    const { port } = await receiver.listen('127.0.0.1', 0);
    sender.setPeers(new Map([[RECEIVER_ID, `127.0.0.1:${port}`]]));
  };
  await connect();
  /** Stops the receiving member and starts it again on the same data dir (a new port). */
  const restartReceiver = async () => {
    await receiver.close();
    receiver = await startReceiver();
    await connect();
  };
  /** Sends the snapshot once; resolves with raft's report ('finish' or 'failure'). */
  const attempt = (snap: Message, cutAtChunk = -1): Promise<string> => {
    control.cutAtChunk = cutAtChunk;
    control.attempts.push([]);
    written.clear();
    sender.send([snap]);
    return reports.next('snapshot report');
  };
  const sentBytes = (n: number) => control.attempts[n]!.reduce((sum, c) => sum + c.bytes, 0);
  const firstOffset = (n: number) => control.attempts[n]![0]?.offset;
  const partials = () => fs.readdirSync(dir).filter((name) => name.endsWith('.partial'));
  const close = async () => {
    await Promise.all([sender.close(), receiver.close()]);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { dir, attempt, sentBytes, firstOffset, partials, stepped, restartReceiver, close };
}

describe('resumable snapshot transfer', () => {
  let cleanup: (() => Promise<void>) | null = null;
  afterEach(async () => {
    await cleanup?.();
    cleanup = null;
  });

  it('resumes a cut transfer from the receiver offset and sends only the rest', async () => {
    const pair = await transportPair();
    cleanup = pair.close;
    const total = 5 * SNAPSHOT_CHUNK_BYTES + 12345;
    const data = seededBytes(total, 42);
    const snap = snapMessage(100, 3, data);

    assert.equal(await pair.attempt(snap, 3), 'failure');
    assert.deepEqual(pair.partials().length, 1);
    assert.equal(pair.stepped.pending, 0, 'nothing is stepped before the snapshot is complete');
    const partialBytes = fs.statSync(join(pair.dir, pair.partials()[0]!)).size;
    assert.equal(partialBytes, 3 * SNAPSHOT_CHUNK_BYTES);

    assert.equal(await pair.attempt(snap), 'finish');
    assert.equal(pair.firstOffset(1), 3 * SNAPSHOT_CHUNK_BYTES);
    assert.equal(pair.sentBytes(1), total - 3 * SNAPSHOT_CHUNK_BYTES);
    const installed = await pair.stepped.next('stepped snapshot');
    assert.equal(installed.type, MessageType.Snap);
    assert.equal(installed.from, SENDER_ID);
    assert.deepEqual(installed.snapshot?.metadata, snap.snapshot?.metadata);
    assert.ok(Buffer.from(installed.snapshot!.data).equals(Buffer.from(data)));
    assert.deepEqual(pair.partials(), [], 'the partial is deleted once installed');
  });

  it('resumes after the receiving member restarts, from the partial on its disk', async () => {
    const pair = await transportPair();
    cleanup = pair.close;
    const total = 4 * SNAPSHOT_CHUNK_BYTES + 99;
    const data = seededBytes(total, 5);
    const snap = snapMessage(30, 4, data);
    assert.equal(await pair.attempt(snap, 2), 'failure');
    await pair.restartReceiver();
    assert.equal(pair.partials().length, 1, 'start-up keeps a partial of a snapshot not installed');
    assert.equal(await pair.attempt(snap), 'finish');
    assert.equal(pair.firstOffset(1), 2 * SNAPSHOT_CHUNK_BYTES);
    assert.equal(pair.sentBytes(1), total - 2 * SNAPSHOT_CHUNK_BYTES);
    const installed = await pair.stepped.next('stepped snapshot');
    assert.ok(Buffer.from(installed.snapshot!.data).equals(Buffer.from(data)));
  });

  it('discards a partial that fails the checksum and restarts from byte 0', async () => {
    const pair = await transportPair();
    cleanup = pair.close;
    const total = 4 * SNAPSHOT_CHUNK_BYTES + 7;
    const data = seededBytes(total, 7);
    const snap = snapMessage(50, 2, data);

    assert.equal(await pair.attempt(snap, 2), 'failure');
    // Damage the kept partial, as a torn write before a crash would.
    const partialPath = join(pair.dir, pair.partials()[0]!);
    const fd = fs.openSync(partialPath, 'r+');
    fs.writeSync(fd, Buffer.from([data[1000]! ^ 0xff]), 0, 1, 1000);
    fs.closeSync(fd);

    assert.equal(await pair.attempt(snap), 'failure', 'the corrupt whole is refused');
    assert.equal(pair.firstOffset(1), 2 * SNAPSHOT_CHUNK_BYTES, 'the damage was found at the end');
    assert.equal(pair.stepped.pending, 0);
    assert.deepEqual(pair.partials(), [], 'the corrupt partial is discarded');

    assert.equal(await pair.attempt(snap), 'finish');
    assert.equal(pair.firstOffset(2), 0);
    assert.equal(pair.sentBytes(2), total);
    const installed = await pair.stepped.next('stepped snapshot');
    assert.ok(Buffer.from(installed.snapshot!.data).equals(Buffer.from(data)));
  });

  it('discards the partial of an older snapshot when a newer one is sent', async () => {
    const pair = await transportPair();
    cleanup = pair.close;
    const older = snapMessage(10, 1, seededBytes(3 * SNAPSHOT_CHUNK_BYTES, 1));
    assert.equal(await pair.attempt(older, 2), 'failure');
    const olderPartial = pair.partials();
    assert.equal(olderPartial.length, 1);

    const newerData = seededBytes(3 * SNAPSHOT_CHUNK_BYTES, 2);
    assert.equal(await pair.attempt(snapMessage(20, 1, newerData)), 'finish');
    assert.equal(pair.firstOffset(1), 0, 'a different snapshot starts from byte 0');
    assert.equal(pair.sentBytes(1), newerData.length);
    const installed = await pair.stepped.next('stepped snapshot');
    assert.equal(installed.snapshot?.metadata.index, 20);
    assert.ok(Buffer.from(installed.snapshot!.data).equals(Buffer.from(newerData)));
    assert.deepEqual(pair.partials(), [], 'the older partial is gone');
  });

  it('sends an empty snapshot, and only the end of one a previous run received whole', async () => {
    const pair = await transportPair();
    cleanup = pair.close;
    assert.equal(await pair.attempt(snapMessage(5, 1, new Uint8Array(0))), 'finish');
    assert.equal((await pair.stepped.next('empty snapshot')).snapshot?.data.length, 0);
    // A partial holding every byte (the stream broke just before its end, then the member
    // restarted): the resume sends no chunk at all, and the whole is still verified.
    const data = seededBytes(2 * SNAPSHOT_CHUNK_BYTES, 9);
    const id = { from: SENDER_ID, index: 6, term: 1, totalBytes: data.length, crc: crc32c(data) };
    fs.writeFileSync(join(pair.dir, partialFileName(id)), data);
    assert.equal(await pair.attempt(snapMessage(6, 1, data)), 'finish');
    assert.equal(pair.sentBytes(1), 0);
    const installed = await pair.stepped.next('stepped snapshot');
    assert.ok(Buffer.from(installed.snapshot!.data).equals(Buffer.from(data)));
    assert.deepEqual(pair.partials(), []);
  });

  it('sends the whole snapshot to a member from before resumable transfers', async () => {
    // The old peer service: a snapshot stream of a header and chunks, no snapshotOffset.
    const oldService = defineService({
      name: 'shoal.raft',
      methods: {
        snapshot: clientStream<
          { header?: { totalBytes: number }; chunk?: Uint8Array },
          { ok: boolean }
        >(),
      },
    });
    const received: Uint8Array[] = [];
    let announcedBytes = -1;
    const server = new RpcServer({ logger });
    server.addService(oldService, {
      async snapshot(parts) {
        for await (const part of parts) {
          if (part.header !== undefined) announcedBytes = part.header.totalBytes;
          if (part.chunk !== undefined) received.push(part.chunk);
        }
        return { ok: true };
      },
    });
    const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
    const reports = new Events<string>();
    const sender = new PeerTransport(
      SENDER_ID,
      CLUSTER_ID,
      handlers({ reportSnapshot: (_id, status) => reports.push(status) }),
      logger,
    );
    cleanup = async () => {
      await Promise.all([sender.close(), server.close()]);
    };
    sender.setPeers(new Map([[RECEIVER_ID, `127.0.0.1:${port}`]]));
    const data = seededBytes(2 * SNAPSHOT_CHUNK_BYTES + 3, 11);
    sender.send([snapMessage(9, 1, data)]);
    assert.equal(await reports.next('snapshot report'), 'finish');
    assert.equal(announcedBytes, data.length);
    assert.ok(Buffer.concat(received).equals(Buffer.from(data)));
  });
});
