/**
 * Unit tests of the in-memory key index: the newest change at or below a revision, removal by
 * compaction, key order over arbitrary bytes, and the ordering invariant it enforces. A property
 * test checks it against a plain list of changes.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { KeyIndex } from './key-index.js';

const b = (...bytes: number[]) => Buffer.from(bytes);

describe('key index', () => {
  test('latestAt is the newest change at or below the revision, highest sub first', () => {
    const index = new KeyIndex();
    const key = Buffer.from('k');
    index.add(key, 2, 0, false);
    index.add(key, 5, 0, true);
    index.add(key, 5, 1, false); // a delete then a put of the same key in one transaction
    index.add(key, 9, 3, false);
    assert.equal(index.latestAt(key, 1), undefined);
    assert.deepEqual(index.latestAt(key, 2), { main: 2, sub: 0, tombstone: false });
    assert.deepEqual(index.latestAt(key, 4), { main: 2, sub: 0, tombstone: false });
    assert.deepEqual(index.latestAt(key, 5), { main: 5, sub: 1, tombstone: false });
    assert.deepEqual(index.latestAt(key, 100), { main: 9, sub: 3, tombstone: false });
    assert.equal(index.latestAt(Buffer.from('other'), 100), undefined);
    assert.equal(index.keyCount, 1);
    assert.equal(index.revisions, 4);
  });

  test('a change older than the key’s last one is refused', () => {
    const index = new KeyIndex();
    index.add(Buffer.from('k'), 5, 2, false);
    assert.throws(() => index.add(Buffer.from('k'), 5, 2, false), /arrived after 5\.2/);
    assert.throws(() => index.add(Buffer.from('k'), 4, 9, true), /arrived after 5\.2/);
    index.add(Buffer.from('k'), 5, 3, true);
    assert.deepEqual(index.latestAt(Buffer.from('k'), 5), { main: 5, sub: 3, tombstone: true });
  });

  test('remove forgets one change; the key goes with its last change', () => {
    const index = new KeyIndex();
    const key = Buffer.from('k');
    index.add(key, 2, 0, false);
    index.add(key, 3, 0, true);
    index.remove(key, 2, 0);
    index.remove(key, 7, 0); // unknown: ignored
    assert.equal(index.latestAt(key, 2), undefined);
    assert.deepEqual(index.latestAt(key, 3), { main: 3, sub: 0, tombstone: true });
    index.remove(key, 3, 0);
    assert.equal(index.keyCount, 0);
    assert.equal(index.revisions, 0);
    assert.deepEqual([...index.latestInRange(Buffer.alloc(0), undefined, 10)], []);
  });

  test('ranges list keys in bytewise order, 0x00 and 0xff included, end exclusive', () => {
    const index = new KeyIndex();
    const keys = [b(0xff), b(0x61, 0x00), b(0x61), b(0x00), b(0x61, 0xff), b(0x80, 0x01)];
    keys.forEach((key, i) => {
      index.add(key, i + 2, 0, false);
    });
    const listed = (start: Buffer, end: Buffer | undefined, revision: number) =>
      [...index.latestInRange(start, end, revision)].map(([key]) => key.toString('hex'));
    assert.deepEqual(listed(Buffer.alloc(0), undefined, 100), [
      '00',
      '61',
      '6100',
      '61ff',
      '8001',
      'ff',
    ]);
    assert.deepEqual(listed(b(0x61), b(0x61, 0xff), 100), ['61', '6100']);
    // At revision 4 only the first three keys added (0xff, "a\0", "a") had changed.
    assert.deepEqual(listed(Buffer.alloc(0), undefined, 4), ['61', '6100', 'ff']);
  });

  test('agrees with a plain list of changes on random histories', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            key: fc.integer({ min: 0, max: 5 }),
            tombstone: fc.boolean(),
            sameRevision: fc.boolean(),
            removed: fc.boolean(),
          }),
          { maxLength: 60 },
        ),
        fc.integer({ min: 0, max: 80 }),
        (changes, at) => {
          const index = new KeyIndex();
          const kept: { key: number; main: number; sub: number; tombstone: boolean }[] = [];
          let main = 1;
          let sub = 0;
          const lastOf = new Map<number, number>();
          changes.forEach((change, i) => {
            if (!change.sameRevision || lastOf.get(change.key) === main) {
              main += 1;
              sub = 0;
            } else sub += 1;
            lastOf.set(change.key, main);
            index.add(b(change.key), main, sub, change.tombstone);
            kept.push({ key: change.key, main, sub, tombstone: change.tombstone });
            if (change.removed && i % 3 === 0) {
              const victim = kept.splice(0, 1)[0]!;
              index.remove(b(victim.key), victim.main, victim.sub);
            }
          });
          for (let key = 0; key <= 5; key++) {
            const expected = kept.filter((c) => c.key === key && c.main <= at).pop();
            const actual = index.latestAt(b(key), at);
            assert.deepEqual(
              actual,
              expected && { main: expected.main, sub: expected.sub, tombstone: expected.tombstone },
            );
          }
          const listed = [...index.latestInRange(Buffer.alloc(0), undefined, at)].map(
            ([key]) => key[0],
          );
          const expectedKeys = [...new Set(kept.filter((c) => c.main <= at).map((c) => c.key))];
          assert.deepEqual(
            listed,
            expectedKeys.sort((x, y) => x - y),
          );
          assert.equal(index.revisions, kept.length);
        },
      ),
      { seed: 7, numRuns: 300 },
    );
  });
});
