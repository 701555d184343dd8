/**
 * Seeded randomness, the one generator of the tree: the compiler's data (k-shot draws, shuffles,
 * augmentation, the generated parts set), method initialisation, dropout masks and the synthetic
 * camera all draw from here, never Math.random, so a seed reproduces them exactly. It lives in
 * devices/, the lowest layer, so that both the compiler and the cameras may import it.
 */

/** A uniform draw in [0, 1). */
export type Rng = () => number;

/** mulberry32: tiny and fast. */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * One 32-bit seed from several integers (murmur3's finaliser after each), so streams keyed by
 * (seed, epoch, batch) or (seed, class, index) are unrelated even when the keys are close.
 */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** FNV-1a of a string, to key a stream by a class name. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export const uniform = (r: Rng, lo: number, hi: number): number => lo + (hi - lo) * r();

/** An integer in [lo, hi). */
export const randInt = (r: Rng, lo: number, hi: number): number => lo + Math.floor((hi - lo) * r());

/** One standard normal draw (Box–Muller; consumes two uniforms). */
export function normal(r: Rng): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

/** A stream of standard normal draws. */
export function gaussian(r: Rng): Rng {
  return () => normal(r);
}

/** Fisher–Yates, in place. */
export function shuffleInPlace<T>(a: T[], r: Rng): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a;
}

/** 0..n-1 in a seeded order. */
export const permutation = (n: number, r: Rng): number[] => shuffleInPlace(Array.from({ length: n }, (_, i) => i), r);
