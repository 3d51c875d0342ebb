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

/**
 * V8's optimization controls for a fixture that checks a function stays optimized: prepare it,
 * optimize it at its next call, and whether optimized code is attached now (the "optimized" bit
 * of %GetOptimizationStatus, src/runtime/runtime.h). Only callable with --allow-natives-syntax.
 */
export function optimizationFunctions(): {
  prepare: (f: unknown) => void;
  optimizeOnNextCall: (f: unknown) => void;
  isOptimized: (f: unknown) => boolean;
} {
  const status = new Function('f', 'return %GetOptimizationStatus(f);') as (f: unknown) => number;
  const optimizedBit = 1 << 4;
  return {
    prepare: new Function('f', '%PrepareFunctionForOptimization(f);') as (f: unknown) => void,
    optimizeOnNextCall: new Function('f', '%OptimizeFunctionOnNextCall(f);') as (
      f: unknown,
    ) => void,
    isOptimized: (f) => (status(f) & optimizedBit) !== 0,
  };
}
