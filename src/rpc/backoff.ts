/**
 * Exponential backoff with jitter for reconnecting, and a small seedable random source so tests can
 * pin the delays. Jitter spreads the redials of many clients that lost the same server, so they do
 * not all come back in the same millisecond.
 */

export interface BackoffOptions {
  /** Delay before the first retry. */
  initialMs: number;
  /** Ceiling for any delay (before jitter). */
  maxMs: number;
  /** Growth factor per failed attempt. */
  multiplier: number;
  /** Relative spread: the delay is scaled by a factor drawn from [1 - jitter, 1 + jitter]. */
  jitter: number;
  /** Uniform random numbers in [0, 1); inject a seeded one for reproducible tests. */
  random: () => number;
}

export const BACKOFF_DEFAULTS: Readonly<BackoffOptions> = {
  initialMs: 100,
  maxMs: 10_000,
  multiplier: 1.6,
  jitter: 0.2,
  random: Math.random,
};

/** Delay before retry number `attempt` (1 = the first retry after one failure). */
export function backoffDelayMs(options: BackoffOptions, attempt: number): number {
  const exponent = Math.max(0, attempt - 1);
  const base = Math.min(options.maxMs, options.initialMs * options.multiplier ** exponent);
  const factor = 1 + options.jitter * (2 * options.random() - 1);
  return Math.max(0, Math.round(base * factor));
}

/** A deterministic uniform [0, 1) generator (mulberry32) for tests and simulations. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
