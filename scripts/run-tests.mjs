#!/usr/bin/env node
// Finds every *.test.ts file under src/ and test/ and runs them with Node's built-in test runner
// (through tsx, so TypeScript runs without a build step). Node 20's `--test` does not expand globs,
// which is why this small script exists. Extra arguments narrow the run to paths containing them:
//   node scripts/run-tests.mjs rpc        # only files whose path contains "rpc"
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const filters = process.argv.slice(2);

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, out);
    else if (name.endsWith('.test.ts')) out.push(relative(root, path));
  }
  return out;
}

const files = ['src', 'test']
  .flatMap((dir) => walk(join(root, dir), []))
  .filter((file) => filters.length === 0 || filters.some((filter) => file.includes(filter)))
  .sort();
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const concurrency = process.env.SHOAL_TEST_CONCURRENCY ?? '2';
// A test that hangs (a lost event, a leaked socket) must fail by name instead of stalling CI:
// every test gets a generous timeout, and a file's process exits once its tests are done.
const timeoutMs = process.env.SHOAL_TEST_TIMEOUT_MS ?? '240000';
const result = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    `--test-concurrency=${concurrency}`,
    `--test-timeout=${timeoutMs}`,
    '--test-force-exit',
    ...files,
  ],
  { cwd: root, stdio: 'inherit' },
);
process.exit(result.status ?? 1);
