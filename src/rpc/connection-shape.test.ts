/**
 * A connection's hidden class does not change when its keepalive pings start (see the fixture):
 * a field that did was widened seconds into every member's life, under load, and deoptimized the
 * send path of every connection.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runShapeFixture } from '../../test/support/v8-shape.js';

test('a connection keeps its hidden class once keepalive pings are sent and answered', () => {
  const outcome = runShapeFixture<{ sameBefore: boolean; sameAfter: boolean; pings: number }>(
    new URL('../../test/fixtures/connection-shape.ts', import.meta.url),
  );
  assert.equal(outcome.sameBefore, true, 'two fresh client connections should share a class');
  assert.ok(outcome.pings >= 2);
  assert.equal(
    outcome.sameAfter,
    true,
    'a Connection field changed representation when pings began: its send path deoptimizes',
  );
});
