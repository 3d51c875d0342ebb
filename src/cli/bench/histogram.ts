/**
 * A small HDR-style latency histogram: values (integer microseconds) land in log-linear buckets, 128
 * linear sub-buckets per power of two, so every recorded value is known to within 1/128 (< 0.8 %)
 * while the whole range from 1 µs to over an hour fits in a few thousand counters. Recording is a
 * couple of integer operations and one array increment, cheap enough for the load generator's hot
 * path; percentiles walk the counters once.
 */

/** log2 of the number of linear sub-buckets per power of two (the precision of every bucket). */
const subBucketBits = 7;
const subBucketCount = 1 << subBucketBits;
/** Largest recordable value in microseconds (2^32 - 1, about 71 minutes); larger ones are clamped. */
export const histogramValueMaxUs = 0xffff_ffff;
const bucketCountTotal = (32 - subBucketBits + 1) * subBucketCount;

/** The counter index a value falls into. Values below 2 * subBucketCount get a counter each. */
export function bucketIndexOf(valueUs: number): number {
  if (valueUs < 2 * subBucketCount) return valueUs;
  const exponent = 31 - Math.clz32(valueUs) - subBucketBits;
  const mantissa = valueUs >>> exponent;
  return (exponent + 1) * subBucketCount + (mantissa - subBucketCount);
}

/** The smallest and largest value (inclusive, microseconds) that land in counter `index`. */
export function bucketRangeOf(index: number): { lowUs: number; highUs: number } {
  if (index < 2 * subBucketCount) return { lowUs: index, highUs: index };
  const exponent = Math.floor(index / subBucketCount) - 1;
  const mantissa = (index % subBucketCount) + subBucketCount;
  return { lowUs: mantissa * 2 ** exponent, highUs: (mantissa + 1) * 2 ** exponent - 1 };
}

export interface LatencySummaryMs {
  count: number;
  minMs: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

export class LatencyHistogram {
  private readonly counts = new Float64Array(bucketCountTotal);
  count = 0;
  private sumUs = 0;
  private minUs = Number.POSITIVE_INFINITY;
  private maxUs = 0;

  /** Records one latency given in (fractional) milliseconds. */
  recordMs(latencyMs: number): void {
    this.recordUs(Math.round(latencyMs * 1000));
  }

  recordUs(valueUs: number): void {
    const clampedUs = Math.max(0, Math.min(valueUs, histogramValueMaxUs));
    this.counts[bucketIndexOf(clampedUs)]! += 1;
    this.count += 1;
    this.sumUs += clampedUs;
    if (clampedUs < this.minUs) this.minUs = clampedUs;
    if (clampedUs > this.maxUs) this.maxUs = clampedUs;
  }

  /** Adds every count of `other` into this histogram (to combine per-worker histograms). */
  merge(other: LatencyHistogram): void {
    for (let i = 0; i < bucketCountTotal; i++) this.counts[i]! += other.counts[i]!;
    this.count += other.count;
    this.sumUs += other.sumUs;
    this.minUs = Math.min(this.minUs, other.minUs);
    this.maxUs = Math.max(this.maxUs, other.maxUs);
  }

  /**
   * The value at `percentile` (0..100) in microseconds: the upper end of the bucket holding the
   * ceil(p% * count)-th smallest value, never above the largest value recorded (as HdrHistogram
   * reports it). 0 when nothing was recorded.
   */
  valueAtPercentileUs(percentile: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(
      1,
      Math.ceil((Math.min(100, Math.max(0, percentile)) / 100) * this.count),
    );
    let seen = 0;
    for (let i = 0; i < bucketCountTotal; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(bucketRangeOf(i).highUs, this.maxUs);
    }
    return this.maxUs;
  }

  summaryMs(): LatencySummaryMs {
    const ms = (us: number) => us / 1000;
    return {
      count: this.count,
      minMs: this.count === 0 ? 0 : ms(this.minUs),
      meanMs: this.count === 0 ? 0 : ms(this.sumUs / this.count),
      p50Ms: ms(this.valueAtPercentileUs(50)),
      p90Ms: ms(this.valueAtPercentileUs(90)),
      p99Ms: ms(this.valueAtPercentileUs(99)),
      p999Ms: ms(this.valueAtPercentileUs(99.9)),
      maxMs: ms(this.maxUs),
    };
  }

  /**
   * Counts in `binCount` display bins spaced evenly on a log scale between the smallest and the
   * largest value, for the text histogram (like etcd's benchmark output). Each bin is labelled by
   * its upper bound.
   */
  displayBins(binCount: number): Array<{ upToMs: number; count: number }> {
    if (this.count === 0) return [];
    const lowUs = Math.max(1, this.minUs);
    const ratio = Math.max(this.maxUs, lowUs) / lowUs;
    const bounds: number[] = [];
    for (let b = 1; b <= binCount; b++) bounds.push(lowUs * ratio ** (b / binCount));
    const bins = bounds.map((upToUs) => ({ upToMs: upToUs / 1000, count: 0 }));
    for (let i = 0; i < bucketCountTotal; i++) {
      const count = this.counts[i]!;
      if (count === 0) continue;
      const { lowUs: bucketLowUs } = bucketRangeOf(i);
      let bin = bounds.findIndex((upToUs) => bucketLowUs <= upToUs);
      if (bin < 0) bin = binCount - 1;
      bins[bin]!.count += count;
    }
    return bins;
  }
}
