/** The latency histogram: bucket boundaries, percentiles against exact sorted values, merging. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bucketIndexOf, bucketRangeOf, LatencyHistogram } from './histogram.js';

test('every value lies inside the range of its bucket, and buckets are contiguous', () => {
  let previousHighUs = -1;
  for (let index = 0; index < 3000; index++) {
    const { lowUs, highUs } = bucketRangeOf(index);
    assert.equal(
      lowUs,
      previousHighUs + 1,
      `bucket ${index} starts right after bucket ${index - 1}`,
    );
    assert.equal(bucketIndexOf(lowUs), index);
    assert.equal(bucketIndexOf(highUs), index);
    previousHighUs = highUs;
  }
});

test('bucket width stays within 1/128 of the value', () => {
  for (const valueUs of [300, 1_000, 12_345, 999_999, 60_000_000, 0xffff_ffff]) {
    const { lowUs, highUs } = bucketRangeOf(bucketIndexOf(valueUs));
    assert.ok(valueUs >= lowUs && valueUs <= highUs);
    assert.ok(
      (highUs - lowUs + 1) / lowUs <= 1 / 128,
      `bucket of ${valueUs} is [${lowUs}, ${highUs}]`,
    );
  }
});

test('percentiles match the exact order statistics within the bucket precision', () => {
  // A seeded spread of latencies from 50 µs to about 2 s (log-uniform, like real latencies).
  let state = 12345;
  const random = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
  const histogram = new LatencyHistogram();
  const values: number[] = [];
  for (let i = 0; i < 20_000; i++) {
    const valueUs = Math.round(50 * 40_000 ** random());
    values.push(valueUs);
    histogram.recordUs(valueUs);
  }
  values.sort((a, b) => a - b);
  for (const percentile of [50, 90, 99, 99.9]) {
    const exactUs = values[Math.ceil((percentile / 100) * values.length) - 1]!;
    const reportedUs = histogram.valueAtPercentileUs(percentile);
    assert.ok(reportedUs >= exactUs, `p${percentile}: ${reportedUs} < exact ${exactUs}`);
    assert.ok(
      reportedUs <= exactUs * (1 + 1 / 128),
      `p${percentile}: ${reportedUs} vs exact ${exactUs}`,
    );
  }
  assert.equal(histogram.valueAtPercentileUs(100), values.at(-1));
  const summary = histogram.summaryMs();
  assert.equal(summary.count, 20_000);
  assert.equal(summary.minMs, values[0]! / 1000);
  assert.equal(summary.maxMs, values.at(-1)! / 1000);
});

test('small exact values: p50 of 1..100 ms recorded in ms is 50 ms', () => {
  const histogram = new LatencyHistogram();
  for (let ms = 1; ms <= 100; ms++) histogram.recordMs(ms);
  const summary = histogram.summaryMs();
  // 50 ms = 50,000 µs lies in a bucket 256 µs wide, reported by its upper end.
  assert.ok(summary.p50Ms >= 50 && summary.p50Ms < 50.3, `p50 ${summary.p50Ms}`);
  assert.ok(summary.p99Ms >= 99 && summary.p99Ms < 99.8, `p99 ${summary.p99Ms}`);
  assert.equal(summary.maxMs, 100);
  assert.equal(summary.meanMs, 50.5);
});

test('an empty histogram reports zeros; merge adds counts and keeps extremes', () => {
  const empty = new LatencyHistogram();
  assert.deepEqual(empty.summaryMs(), {
    count: 0,
    minMs: 0,
    meanMs: 0,
    p50Ms: 0,
    p90Ms: 0,
    p99Ms: 0,
    p999Ms: 0,
    maxMs: 0,
  });
  const a = new LatencyHistogram();
  const b = new LatencyHistogram();
  a.recordUs(100);
  b.recordUs(5);
  b.recordUs(900);
  a.merge(b);
  assert.equal(a.count, 3);
  assert.equal(a.valueAtPercentileUs(0), 5);
  assert.equal(a.valueAtPercentileUs(50), 100);
  assert.equal(a.valueAtPercentileUs(100), 900);
  const bins = a.displayBins(4);
  assert.equal(
    bins.reduce((sum, bin) => sum + bin.count, 0),
    3,
  );
  assert.equal(bins.at(-1)!.upToMs, 0.9);
});
