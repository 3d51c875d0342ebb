/**
 * A member started the ways shoal starts one runs with MEMBER_NODE_FLAGS: through bin/shoal.mjs's
 * `#!` line, or by the callers that run `node bin/shoal.mjs` (they pass the constant). A member
 * started without them says so on stderr. Each case runs `shoal start` with a flag value the
 * config refuses, so the process exits right after the check.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MEMBER_NODE_FLAGS, missingMemberNodeFlags } from './node-flags.js';

const bin = fileURLToPath(new URL('../../bin/shoal.mjs', import.meta.url));
const refused = ['start', '--heartbeat-interval=0'];

function run(command: string, args: string[]) {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 60_000 });
  assert.equal(result.status, 2, `exit status ${result.status}; stderr: ${result.stderr}`);
  assert.match(result.stderr, /--heartbeat-interval: "0" must be an integer/);
  return result.stderr;
}

test('the #! line of bin/shoal.mjs carries every member flag', () => {
  const shebang = readFileSync(bin, 'utf8').split('\n')[0]!;
  assert.ok(shebang.startsWith('#!/usr/bin/env -S node'), shebang);
  assert.deepEqual(missingMemberNodeFlags(shebang.split(' ')), []);
});

test('run through its #! line, a member has the flags and warns of nothing', () => {
  const stderr = run(bin, refused);
  assert.doesNotMatch(stderr, /node runs without/);
});

test('run with node and the flags, a member warns of nothing', () => {
  const stderr = run(process.execPath, [...MEMBER_NODE_FLAGS, bin, ...refused]);
  assert.doesNotMatch(stderr, /node runs without/);
});

test('run with node alone, a member names the missing flags', () => {
  const stderr = run(process.execPath, [bin, ...refused]);
  for (const flag of MEMBER_NODE_FLAGS) assert.match(stderr, new RegExp(`without.*${flag}`));
});

test('missingMemberNodeFlags lists only what execArgv lacks', () => {
  assert.deepEqual(missingMemberNodeFlags([]), [...MEMBER_NODE_FLAGS]);
  assert.deepEqual(missingMemberNodeFlags(['--inspect', ...MEMBER_NODE_FLAGS]), []);
});
