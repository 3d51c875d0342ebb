/**
 * Seeded randomness for the SWIM core. The core never calls Math.random: whoever drives it injects
 * a `RandomSource`, so a simulator run is replayable from its seed.
 */

/** A source of uniformly distributed floats in [0, 1). */
export interface RandomSource {
  nextFloat(): number;
}

/**
 * A small, fast, seeded generator (mulberry32). Its statistical quality is ample for choosing probe
 * targets and shuffling; it is not meant for anything cryptographic.
 */
export function createSeededRandom(seed: number): RandomSource {
  let state = seed >>> 0;
  return {
    nextFloat(): number {
      state = (state + 0x6d2b79f5) >>> 0;
      let value = state;
      value = Math.imul(value ^ (value >>> 15), value | 1);
      value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
      return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
    },
  };
}

/** An integer in [0, bound). */
export function randomIndex(random: RandomSource, bound: number): number {
  return Math.floor(random.nextFloat() * bound);
}

/** Shuffles `items` in place (Fisher–Yates). */
export function shuffleInPlace<T>(random: RandomSource, items: T[]): void {
  for (let index = items.length - 1; index > 0; index--) {
    const other = randomIndex(random, index + 1);
    const held = items[index]!;
    items[index] = items[other]!;
    items[other] = held;
  }
}
