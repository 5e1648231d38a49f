import { describe, expect, it } from 'vitest';
import { createEnvironment } from '../../src/env/environment.js';
import { createRng, hashString, valueNoise } from '../../src/env/prng.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 3, 1);

describe('environment model', () => {
  it('is deterministic per seed and timestamp, and differs between seeds', () => {
    const a = createEnvironment({ seed: 'pi-01' });
    const b = createEnvironment({ seed: 'pi-01' });
    const c = createEnvironment({ seed: 'pi-02' });
    for (const ts of [T0, T0 + 12_345, T0 + 7 * DAY]) {
      expect(a.at(ts)).toEqual(b.at(ts));
      expect(c.at(ts)).not.toEqual(a.at(ts));
    }
    expect(a.profile).toEqual(b.profile);
    expect(c.profile).not.toEqual(a.profile);
  });

  it.each(['pi-01', 'pi-02', 'kitchen', 'shed-9', 42])(
    'seed %s stays within plausible indoor ranges over two weeks',
    (seed) => {
      const env = createEnvironment({ seed });
      for (let ts = T0; ts < T0 + 14 * DAY; ts += 17 * 60_000) {
        const s = env.at(ts);
        expect(s.temperature).toBeGreaterThan(5);
        expect(s.temperature).toBeLessThan(38);
        expect(s.humidity).toBeGreaterThanOrEqual(5);
        expect(s.humidity).toBeLessThanOrEqual(95);
        expect(s.pressure).toBeGreaterThan(920);
        expect(s.pressure).toBeLessThan(1030);
        expect(s.illuminance).toBeGreaterThanOrEqual(0);
        expect(s.illuminance).toBeLessThan(2500);
        const [soil, ldr, ref, gnd] = env.analog(ts);
        expect(soil).toBeGreaterThan(0.9);
        expect(soil).toBeLessThan(2.7);
        expect(ldr).toBeGreaterThanOrEqual(0);
        expect(ldr).toBeLessThan(3.3);
        expect(Math.abs(ref - 1.65)).toBeLessThan(0.001);
        expect(Math.abs(gnd)).toBeLessThan(0.001);
      }
    },
  );

  it('has a daily temperature cycle warmest in the afternoon and dark nights', () => {
    const env = createEnvironment({ seed: 'cycle', utcOffsetHours: 0 });
    let afternoon = 0;
    let night = 0;
    let noonLux = 0;
    let midnightLux = 0;
    for (let d = 0; d < 30; d += 1) {
      afternoon += env.at(T0 + d * DAY + 15 * HOUR).temperature;
      night += env.at(T0 + d * DAY + 4 * HOUR).temperature;
      noonLux += env.at(T0 + d * DAY + 12 * HOUR).illuminance;
      midnightLux += env.at(T0 + d * DAY).illuminance;
    }
    expect((afternoon - night) / 30).toBeGreaterThan(3); // at least 2 × the smallest amplitude
    expect(noonLux / 30).toBeGreaterThan(100 * (midnightLux / 30));
  });

  it('humidity falls when temperature rises (same air, warmer)', () => {
    const env = createEnvironment({ seed: 'rh', utcOffsetHours: 0 });
    const warm = env.at(T0 + 15 * HOUR);
    const cold = env.at(T0 + 3 * HOUR);
    expect(warm.temperature).toBeGreaterThan(cold.temperature);
    expect(warm.humidity).toBeLessThan(cold.humidity + 2);
  });

  it('moves a little between consecutive seconds (noise) but not wildly', () => {
    const env = createEnvironment({ seed: 'noise' });
    const a = env.at(T0);
    const b = env.at(T0 + 1000);
    expect(b.temperature).not.toBe(a.temperature);
    expect(Math.abs(b.temperature - a.temperature)).toBeLessThan(0.1);
    expect(Math.abs(b.pressure - a.pressure)).toBeLessThan(0.1);
  });
});

describe('seeded randomness', () => {
  it('repeats a sequence for a seed and spreads values over [0, 1)', () => {
    const r1 = createRng(hashString('x'));
    const r2 = createRng(hashString('x'));
    const xs = Array.from({ length: 1000 }, () => r1());
    expect(Array.from({ length: 1000 }, () => r2())).toEqual(xs);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.05);
  });

  it('value noise is continuous and bounded', () => {
    let prev = valueNoise(7, 0, 100);
    for (let t = 1; t < 1000; t += 1) {
      const v = valueNoise(7, t, 100);
      expect(Math.abs(v)).toBeLessThanOrEqual(1);
      expect(Math.abs(v - prev)).toBeLessThan(0.05);
      prev = v;
    }
  });
});
