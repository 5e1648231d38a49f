/**
 * Small deterministic randomness for simulated devices: a string hash for seeds, a seeded
 * PRNG for per-device parameters, and hash-based value noise that is a pure function of
 * (key, time), so a reading depends only on the device seed and the timestamp, never on how
 * many readings came before.
 */

/** 32-bit FNV-1a hash of a string. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i += 1) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Mixes integers into a well-distributed 32-bit hash (murmur3 finaliser). */
export function mix(a: number, b: number): number {
  let h = (Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b | 0, 0xc2b2ae35)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Uniform [0, 1) from a key and an integer. */
export function hash01(key: number, n: number): number {
  // Split n so values beyond 2^32 (millisecond timestamps) still hash well.
  const hi = Math.floor(n / 4294967296);
  return mix(mix(key, n >>> 0), hi) / 4294967296;
}

/** mulberry32, shared with tests of other packages (`@pifleet/protocol`). */
export { createRng } from '@pifleet/protocol';

/**
 * Smooth value noise in [-1, 1]: random values at integer multiples of `period`, joined with
 * smoothstep interpolation. Deterministic in (key, t).
 */
export function valueNoise(key: number, t: number, period: number): number {
  const x = t / period;
  const i = Math.floor(x);
  const f = x - i;
  const s = f * f * (3 - 2 * f);
  const a = hash01(key, i) * 2 - 1;
  const b = hash01(key, i + 1) * 2 - 1;
  return a + (b - a) * s;
}
