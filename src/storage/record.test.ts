/**
 * Record framing: every record type round-trips, and every kind of damage is named, never read as
 * a record.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EntryType } from '../raft/types.js';
import {
  decodeEntry,
  decodeHardState,
  decodeIndexTerm,
  encodeBatch,
  encodeEntry,
  encodeHardState,
  encodeIndexTerm,
  entryRecordBytes,
  RecordType,
  type RecordView,
  readRecord,
} from './record.js';

function view(result: RecordView | string): RecordView {
  assert.ok(typeof result !== 'string', `expected a record, got ${String(result)}`);
  return result;
}

test('records round-trip and stay 8-byte aligned', () => {
  const entry = {
    index: 2 ** 40 + 3,
    term: 2 ** 33,
    type: EntryType.ConfChange,
    data: new Uint8Array([1, 2, 3]),
  };
  const buffer = Buffer.alloc(4096);
  let position = encodeBatch(buffer, 0, 1234);
  const entryAt = position;
  position = encodeEntry(buffer, position, entry);
  assert.equal(position - entryAt, entryRecordBytes(entry));
  const hardAt = position;
  position = encodeHardState(buffer, position, { term: 7, vote: 3, commit: 2 ** 50 });
  const markerAt = position;
  position = encodeIndexTerm(buffer, position, RecordType.Reset, 99, 5);
  assert.equal(position % 8, 0);

  const decoded = decodeEntry(buffer, view(readRecord(buffer, entryAt, position)));
  assert.deepEqual({ ...decoded, data: [...decoded.data] }, { ...entry, data: [1, 2, 3] });
  assert.deepEqual(decodeHardState(buffer, view(readRecord(buffer, hardAt, position))), {
    term: 7,
    vote: 3,
    commit: 2 ** 50,
  });
  const marker = view(readRecord(buffer, markerAt, position));
  assert.equal(marker.type, RecordType.Reset);
  assert.deepEqual(decodeIndexTerm(buffer, marker), { index: 99, term: 5 });
});

test('damage of every kind is named', () => {
  const buffer = Buffer.alloc(256);
  const end = encodeEntry(buffer, 0, { index: 1, term: 1, type: 0, data: new Uint8Array([9]) });
  const damaged = (mutate: (b: Buffer) => void) => {
    const copy = Buffer.from(buffer);
    mutate(copy);
    return readRecord(copy, 0, copy.length);
  };
  assert.equal(readRecord(Buffer.alloc(64), 0, 64), 'zero');
  assert.equal(readRecord(buffer, 0, 20), 'truncated');
  assert.equal(
    damaged((b) => b.writeUInt32LE(0xffffffff, 4)),
    'bad-length',
  );
  assert.equal(
    damaged((b) => b.writeUInt8(77, 8)),
    'bad-type',
  );
  assert.equal(
    damaged((b) => b.writeUInt8(b[14]! ^ 1, 14)),
    'bad-crc',
  );
  assert.equal(
    damaged((b) => b.writeUInt8(1, end - 1)),
    'bad-padding',
  );
  assert.equal(view(readRecord(buffer, 0, buffer.length)).end, end);
});
