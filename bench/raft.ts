/**
 * Raft core throughput: three RawNodes in one process, an in-memory transport (messages handed
 * over by reference) and zero-cost storage (MemoryStorage, durable at once). Proposals are 256
 * bytes; the leader receives them in batches, so many share one Ready, one append message per
 * follower and one fsync's worth of persistence. Prints committed proposals per second (counted
 * when the leader applies them) and writes bench/results/raft.md.
 *
 * It runs three batch sizes: 1 (one proposal per Ready: no batching), 64 and 1024.
 *
 *   npm run bench:raft [-- --seconds 3]
 */
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import {
  decodeConfChange,
  EntryType,
  MemoryStorage,
  type Message,
  RawNode,
} from '../src/raft/index.js';

function argument(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at < 0 ? fallback : Number(process.argv[at + 1]);
}

const SECONDS = argument('--seconds', 3);
const BATCHES = [1, 64, 1024];
const PAYLOAD_BYTES = 256;

interface BenchNode {
  raw: RawNode;
  storage: MemoryStorage;
  applied: number;
}

function makeCluster(): Map<number, BenchNode> {
  const nodes = new Map<number, BenchNode>();
  let seed = 1;
  for (const id of [1, 2, 3]) {
    const storage = new MemoryStorage();
    const raw = new RawNode({
      id,
      storage,
      electionTick: 10,
      heartbeatTick: 1,
      maxSizePerMsgBytes: 1 << 20,
      maxInflightMsgs: 256,
      maxUncommittedEntriesBytes: 64 << 20,
      checkQuorum: false,
      preVote: false,
      random: () => {
        seed = (seed * 16807) % 2147483647;
        return seed / 2147483647;
      },
    });
    raw.bootstrap([1, 2, 3]);
    nodes.set(id, { raw, storage, applied: 0 });
  }
  return nodes;
}

/** Handles every Ready and delivers every message until the cluster is quiet. */
function pump(nodes: Map<number, BenchNode>): void {
  let queue: Message[] = [];
  for (;;) {
    let busy = false;
    for (const node of nodes.values()) {
      if (!node.raw.hasReady()) continue;
      busy = true;
      const rd = node.raw.ready();
      for (const m of rd.messages) queue.push(m);
      if (rd.snapshot !== null) node.storage.applySnapshot(rd.snapshot);
      node.storage.save(rd.hardState, rd.entries);
      for (const m of rd.messagesAfterPersist) queue.push(m);
      for (const entry of rd.committedEntries) {
        if (entry.type === EntryType.ConfChange) {
          node.raw.applyConfChange(decodeConfChange(entry.data));
        } else if (entry.data.byteLength === PAYLOAD_BYTES) {
          node.applied++;
        }
      }
      node.raw.advance();
    }
    if (queue.length > 0) {
      busy = true;
      const batch = queue;
      queue = [];
      for (const m of batch) nodes.get(m.to)!.raw.step(m);
    }
    if (!busy) return;
  }
}

function run(batch: number): { proposalsPerSecond: number; committed: number; seconds: number } {
  const nodes = makeCluster();
  pump(nodes);
  const leader = nodes.get(1)!;
  leader.raw.campaign();
  pump(nodes);
  if (leader.raw.status().role !== 2) throw new Error('node 1 did not become leader');
  const payload = new Uint8Array(PAYLOAD_BYTES).fill(7);
  // Compact the logs now and then, as a member would after snapshots, to keep memory flat.
  const compactEvery = 200_000;
  let lastCompact = 0;
  const started = performance.now();
  const deadline = started + SECONDS * 1000;
  let now = started;
  while (now < deadline) {
    for (let i = 0; i < batch; i++) leader.raw.propose(payload);
    pump(nodes);
    if (leader.applied - lastCompact >= compactEvery) {
      for (const node of nodes.values()) {
        const applied = node.raw.status().applied;
        node.storage.createSnapshot(applied, node.raw.status().config, new Uint8Array(0));
        node.storage.compact(applied);
      }
      lastCompact = leader.applied;
    }
    now = performance.now();
  }
  const seconds = (now - started) / 1000;
  for (const node of nodes.values()) {
    if (node.applied !== leader.applied) throw new Error('members disagree on the applied count');
  }
  return { proposalsPerSecond: leader.applied / seconds, committed: leader.applied, seconds };
}

const cpu = cpus()[0]?.model ?? 'unknown cpu';
const machine = `${cpu}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
const date = new Date().toISOString().slice(0, 10);
const rows: string[] = [];
for (const batch of BATCHES) {
  const result = run(batch);
  const rate = Math.round(result.proposalsPerSecond).toLocaleString('en-US');
  console.log(
    `raft: ${rate} committed proposals/s (${PAYLOAD_BYTES} B, batch ${batch}, 3 members, ${result.committed} in ${result.seconds.toFixed(1)} s)`,
  );
  rows.push(`| ${date} | ${machine} | ${batch} | ${rate} |`);
}
const report = `# Raft core throughput

Measured by \`npm run bench:raft\` (bench/raft.ts): three raft cores in one process, in-memory
transport (messages passed by reference), zero-cost storage (MemoryStorage), proposals of
${PAYLOAD_BYTES} bytes proposed on the leader, \`batch\` proposals per Ready (batch 1 means no
batching across proposals); counted when the leader applies them.

| date | machine | batch | committed proposals/s |
| --- | --- | --- | --- |
${rows.join('\n')}

The machine is shared with other work (about six engineers on 2 cores), so the figures are noisy;
re-run on a quiet machine for clean numbers.
`;
writeFileSync(new URL('./results/raft.md', import.meta.url), report);
