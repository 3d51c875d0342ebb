/**
 * `shoal dev` (what `npm start` runs): one command starts a local 3-member cluster, prints its data
 * folder, endpoints and an etcdctl example that works, and SIGINT (Ctrl-C) stops every member.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { etcdctl } from './support/etcdctl.js';
import { waitFor } from './support/member-process.js';

const SHOAL_BIN = fileURLToPath(new URL('../bin/shoal.mjs', import.meta.url));

describe('shoal dev', { timeout: 60_000 }, () => {
  const root = mkdtempSync(join(tmpdir(), 'shoal-dev-test-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  it('starts 3 members, prints a working etcdctl example, and stops them all on SIGINT', async () => {
    const data = join(root, 'data');
    const child = spawn(process.execPath, [SHOAL_BIN, 'dev', `--data=${data}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    await waitFor(
      '3 members ready',
      () => (output.match(/shoal member ready/g) ?? []).length === 3,
      40_000,
    );
    assert.ok(output.includes(`data: ${data}`), output);
    const endpoints = /--endpoints=(\S+) put/.exec(output)?.[1];
    assert.ok(endpoints, output);
    await waitFor('a successful put through the printed endpoints', async () => {
      const put = await etcdctl(endpoints, ['put', 'hello', 'world']);
      return put.code === 0;
    });
    const get = await etcdctl(endpoints, ['get', 'hello', '--print-value-only']);
    assert.equal(get.stdout.trim(), 'world');
    for (let i = 1; i <= 3; i++) assert.ok(existsSync(join(data, `shoal-${i}`, 'wal')));
    child.kill('SIGINT');
    assert.equal(await exited, 0);
    assert.match(output, /stopped; data kept in/);
  });
});
