/**
 * Runs a fixture script in a child `node --allow-natives-syntax` (V8's %-functions, off in the
 * test process) and returns the JSON it printed on stdout. The shape fixtures use
 * %HaveSameMap to check that a hot object keeps the hidden class it was constructed with: when V8
 * widens the representation of one of its fields (a small integer field that receives a double,
 * say), it gives the object a new hidden class and every optimized function that checks for the
 * old one deoptimizes the next time it runs.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export function runShapeFixture<T>(fixture: URL): T {
  const result = spawnSync(
    process.execPath,
    ['--allow-natives-syntax', '--import', 'tsx', fileURLToPath(fixture)],
    { encoding: 'utf8', timeout: 120_000 },
  );
  assert.equal(result.status, 0, `${fileURLToPath(fixture)} failed:\n${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

/** `%HaveSameMap(a, b)`; only callable in a process started with --allow-natives-syntax. */
export function haveSameMapFunction(): (a: object, b: object) => boolean {
  return new Function('a', 'b', 'return %HaveSameMap(a, b);') as (a: object, b: object) => boolean;
}
