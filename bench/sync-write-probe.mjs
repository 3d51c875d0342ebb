/**
 * The disk's own latency for small synchronous appends, without shoal: one writer process appending
 * 350-byte records (a one-put WAL batch) to a zero-filled 64 MiB file, either through a descriptor
 * opened with O_DSYNC (as shoal's WAL) or with a write then an fdatasync (as etcd's WAL), pacing its
 * writes GAP_US apart, all from the main thread (no threadpool, no event loop). Start three at
 * once to load the disk like a 3-member cluster:
 *   t=$(( $(date +%s%3N) + 1500 )); for k in 1 2 3; do
 *     node bench/sync-write-probe.mjs dsync|fdatasync /tmp/w-$k.bin 8000 300 $t & done; wait
 * Arguments: mode, file, writes, GAP_US (default 300), START_AT (epoch ms to start at).
 */
import fs from 'node:fs';

const [mode, file, n, gapUs] = [
  process.argv[2],
  process.argv[3],
  Number(process.argv[4]),
  Number(process.argv[5] ?? 300),
];
if ((mode !== 'dsync' && mode !== 'fdatasync') || file === undefined || !(n > 0)) {
  console.error(
    'usage: node bench/sync-write-probe.mjs dsync|fdatasync FILE WRITES [GAP_US] [START_AT]',
  );
  process.exit(2);
}
const size = 64 * 1024 * 1024;
{
  const fd = fs.openSync(file, 'w');
  const z = Buffer.alloc(1 << 20);
  for (let p = 0; p < size; p += z.length) fs.writeSync(fd, z, 0, z.length, p);
  fs.fdatasyncSync(fd);
  fs.closeSync(fd);
}
const flags = mode === 'dsync' ? fs.constants.O_RDWR | fs.constants.O_DSYNC : fs.constants.O_RDWR;
const fd = fs.openSync(file, flags);
const rec = Buffer.alloc(350, 7);
const lat = [];
let pos = 4096;
// Sleeps between writes (not a spin: three spinning writers would contend for two cores).
const pause = new Int32Array(new SharedArrayBuffer(4));
Atomics.wait(pause, 0, 0, Math.max(0, Number(process.argv[6] ?? 0) - Date.now()));
for (let i = 0; i < n; i++) {
  const t = process.hrtime.bigint();
  fs.writeSync(fd, rec, 0, rec.length, pos);
  pos += rec.length;
  if (mode === 'fdatasync') fs.fdatasyncSync(fd);
  lat.push(Number(process.hrtime.bigint() - t) / 1e6);
  Atomics.wait(pause, 0, 0, gapUs / 1000);
}
lat.sort((a, b) => a - b);
const q = (x) => lat[Math.floor(lat.length * x)].toFixed(3);
console.log(
  mode,
  'p50',
  q(0.5),
  'p90',
  q(0.9),
  'p99',
  q(0.99),
  'p99.9',
  q(0.999),
  'max',
  lat.at(-1).toFixed(2),
);
