// Randomness as an injected edge (house style: cores never call Math.random).
//
// Production code passes Math.random; simulations and tests pass a seeded generator, so a
// failing run replays bit for bit from the seed it printed.

/** Uniform floats in [0, 1). */
export type Rng = () => number;

/**
 * mulberry32: a small, fast seeded generator. The seed is taken modulo 2^32. The sequence for a
 * seed must never change: tests and simulations print seeds to replay.
 */
export function seededRng(seed: number): Rng {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
