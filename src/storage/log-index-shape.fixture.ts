/**
 * Run by log-index.test.ts in a child `node --allow-natives-syntax` (V8's %-functions are off in
 * the test process): drives one LogIndex through everything a long-lived member does to it (the
 * cache filling and evicting, chunks released, payloads too large for a chunk, truncation,
 * compaction, a reset, totals past 2^31) and prints, as JSON, whether it still has the hidden
 * class of a LogIndex that was only constructed.
 *
 * When V8 has to change the representation of one of an object's fields (a small integer field
 * that receives a double, say), it gives the object a new hidden class and deprecates the old
 * one; every optimized function that checked for the old class deoptimizes the next time it runs.
 * For the log index, which every write and every append to a follower goes through, that was a
 * stall of the whole write path, in every member at once.
 */
import { type Entry, EntryType } from '../raft/types.js';
import { CACHE_CHUNK_BYTES, LogIndex } from './log-index.js';

const haveSameMap = new Function('a', 'b', 'return %HaveSameMap(a, b);') as (
  a: object,
  b: object,
) => boolean;

const cacheBytesMax = 256 * 1024;
const untouched = new LogIndex(cacheBytesMax);
const index = new LogIndex(cacheBytesMax);
const sameBefore = haveSameMap(index, untouched);

let term = 1;
let position = 0;
function append(count: number, bytes: number, written = true): void {
  for (let i = 0; i < count; i++) {
    const entry: Entry = {
      term,
      index: index.last + 1,
      type: EntryType.Normal,
      data: new Uint8Array(bytes),
    };
    const generation = index.append(entry);
    if (written) {
      index.setLocation(entry.index, generation, 1, position, bytes + 20);
      position += bytes + 20;
    }
  }
}

// Fill the cache and keep evicting (chunks are released as they empty), with some payloads that
// are held on their own rather than in a chunk.
for (let round = 0; round < 40; round++) {
  append(200, 300 + (round % 7));
  append(1, CACHE_CHUNK_BYTES / 8 + 1);
  index.evict();
}
// A conflicting suffix replaced under a new term, then a compaction and more appends.
append(20, 300, false);
index.truncateFrom(index.last - 10);
term = 2;
append(50, 300);
index.evict();
index.compactTo(index.last - 100, term);
append(500, 300);
index.evict();
// Past 2^31 bytes of payloads through the chunk stream, as a long-lived member goes: the largest
// payloads a chunk takes, 16 Ki of them.
const chunked = CACHE_CHUNK_BYTES / 8;
for (let written = 0; written <= 2 ** 31; written += chunked * 64) {
  append(64, chunked);
  index.evict();
}
index.resetTo(index.last + 5, term);
append(100, 300);
index.evict();

process.stdout.write(
  `${JSON.stringify({
    sameBefore,
    sameAfter: haveSameMap(index, untouched),
    cachedBytes: index.cachedBytes,
    count: index.count,
  })}\n`,
);
