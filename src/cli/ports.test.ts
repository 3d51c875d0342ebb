/** freePorts: distinct, bindable ports below the ephemeral range, never handed out twice. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { freePorts } from './ports.js';

test('ports are distinct across calls, below the ephemeral range, and bindable', async () => {
  const first = await freePorts(10);
  const second = await freePorts(10);
  const all = [...first, ...second];
  assert.equal(new Set(all).size, all.length, 'a port was handed out twice');
  const low = Number(
    readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0],
  );
  for (const port of all)
    assert.ok(port >= 10_000 && port < low, `${port} outside [10000, ${low})`);
  for (const port of all) {
    await new Promise<void>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
    });
  }
});
