import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Counter, Histogram, Registry } from 'prom-client';
import { FastCounter, FastHistogram } from './fast-metrics.js';

const BOUNDS = [0.001, 0.01, 0.1, 1];
/** Values on, between, below and above the bounds, for two label values. */
const OBSERVATIONS: [string, number][] = [
  ['KV.Put', 0.0005],
  ['KV.Put', 0.001],
  ['KV.Put', 0.0011],
  ['KV.Range', 0.05],
  ['KV.Put', 0.5],
  ['KV.Range', 3],
  ['KV.Put', 1],
  ['KV.Range', 0],
];

function registry(): Registry {
  const r = new Registry();
  r.setDefaultLabels({ member: 'm1' });
  return r;
}

describe('fast metrics', () => {
  it('a histogram scrapes to the same text as prom-client for the same observations', async () => {
    const reference = registry();
    const theirs = new Histogram({
      name: 'x_seconds',
      help: 'Latency.',
      labelNames: ['method'],
      buckets: BOUNDS,
      registers: [reference],
    });
    const fast = registry();
    const ours = new FastHistogram('x_seconds', 'Latency.', ['method'], BOUNDS).register(fast);
    for (const [method, value] of OBSERVATIONS) {
      theirs.observe({ method }, value);
      ours.observe([method], value);
    }
    const expected = await reference.metrics();
    assert.match(expected, /x_seconds_bucket\{le="0.01",member="m1",method="KV.Put"\} 3/);
    assert.equal(await fast.metrics(), expected);
  });

  it('an unlabelled histogram matches too', async () => {
    const reference = registry();
    const theirs = new Histogram({
      name: 'y',
      help: 'Y.',
      buckets: BOUNDS,
      registers: [reference],
    });
    const fast = registry();
    const ours = new FastHistogram('y', 'Y.', [], BOUNDS).register(fast);
    for (const [, value] of OBSERVATIONS) {
      theirs.observe(value);
      ours.observe([], value);
    }
    assert.equal(await fast.metrics(), await reference.metrics());
  });

  it('a counter with two labels scrapes to the same text as prom-client', async () => {
    const reference = registry();
    const theirs = new Counter({
      name: 'calls_total',
      help: 'Calls.',
      labelNames: ['method', 'code'],
      registers: [reference],
    });
    const fast = registry();
    const ours = new FastCounter('calls_total', 'Calls.', ['method', 'code']).register(fast);
    for (const [method, value] of OBSERVATIONS) {
      const code = value > 1 ? '4' : '0';
      theirs.inc({ method, code }, 2);
      ours.inc([method, code], 2);
    }
    const expected = await reference.metrics();
    assert.match(expected, /calls_total\{method="KV.Put",code="0",member="m1"\} 10/);
    assert.equal(await fast.metrics(), expected);
  });

  it('keeps label values that contain the separator apart', async () => {
    const fast = registry();
    const ours = new FastCounter('c', 'C.', ['a', 'b']).register(fast);
    ours.inc(['x', 'y']);
    ours.inc(['x', 'y']);
    ours.inc(['x y', '']);
    const text = await fast.metrics();
    assert.match(text, /c\{a="x",b="y",member="m1"\} 2/);
    assert.match(text, /c\{a="x y",b="",member="m1"\} 1/);
  });
});
