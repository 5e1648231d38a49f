import { createRng, hash01, hashString, valueNoise } from './prng.js';

/** What the environment around one simulated device is doing at one instant. */
export interface EnvironmentSample {
  /** Air temperature, °C. */
  readonly temperature: number;
  /** Relative humidity, %RH. */
  readonly humidity: number;
  /** Station (absolute) pressure, hPa. */
  readonly pressure: number;
  /** Illuminance, lux. */
  readonly illuminance: number;
}

/** Per-device parameters drawn from the seed. */
export interface EnvironmentProfile {
  readonly meanTemperature: number;
  readonly dailyAmplitude: number;
  readonly meanHumidity: number;
  readonly altitudeM: number;
  readonly peakDaylightLux: number;
  /** Offset of local solar time from UTC, hours. */
  readonly utcOffsetHours: number;
}

export interface Environment {
  readonly seed: string;
  readonly profile: EnvironmentProfile;
  /** The environment at clock time `ts` (ms since the epoch). Pure: same ts, same sample. */
  at(ts: number): EnvironmentSample;
  /**
   * Voltages on four analog inputs (for an ADS1115): 0 a slowly drifting soil-moisture probe
   * (1.0–2.6 V), 1 a light-dependent divider on 3.3 V, 2 a 1.65 V reference, 3 grounded.
   */
  analog(ts: number): readonly [number, number, number, number];
}

const HOUR = 3_600_000;
const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/**
 * A seeded, deterministic indoor-ish environment: a daily temperature cycle peaking mid
 * afternoon with slow weather drift, humidity moving against temperature, station pressure
 * from a per-device altitude with multi-day weather swings, daylight through a window plus
 * evening lamps, and small measurement noise on everything. Two seeds give different devices.
 */
export function createEnvironment(options: { seed: string | number; utcOffsetHours?: number }): Environment {
  const seed = String(options.seed);
  const key = hashString(seed);
  const rng = createRng(key);
  const profile: EnvironmentProfile = {
    meanTemperature: 17 + rng() * 8,
    dailyAmplitude: 2 + rng() * 5,
    meanHumidity: 35 + rng() * 25,
    altitudeM: Math.round(rng() * 600),
    peakDaylightLux: 300 + rng() * 1700,
    utcOffsetHours: options.utcOffsetHours ?? Math.round(rng() * 4 - 2),
  };
  const k = (n: number) => (key + Math.imul(n, 0x9e3779b1)) >>> 0;

  const at = (ts: number): EnvironmentSample => {
    const hour = (((ts / HOUR + profile.utcOffsetHours) % 24) + 24) % 24;
    const white = (n: number) => hash01(k(n), ts) * 2 - 1;
    const weather = valueNoise(k(1), ts, 6 * HOUR);
    const temperature =
      profile.meanTemperature +
      profile.dailyAmplitude * Math.cos((2 * Math.PI * (hour - 15)) / 24) +
      2 * weather +
      0.1 * valueNoise(k(2), ts, 60_000) +
      0.02 * white(3);
    const humidity = clamp(
      profile.meanHumidity -
        2.5 * (temperature - profile.meanTemperature) +
        8 * valueNoise(k(4), ts, 8 * HOUR) +
        0.3 * valueNoise(k(5), ts, 60_000) +
        0.05 * white(6),
      5,
      95,
    );
    const seaLevel = 1013.25 + 12 * valueNoise(k(7), ts, 36 * HOUR);
    const pressure = seaLevel * (1 - 2.25577e-5 * profile.altitudeM) ** 5.25588 + 0.03 * white(8);
    const sun = hour > 6 && hour < 18 ? Math.sin((Math.PI * (hour - 6)) / 12) ** 1.5 : 0;
    const clouds = 0.7 + 0.3 * valueNoise(k(9), ts, 3 * HOUR);
    const lamp = hour >= 18 && hour < 23 && valueNoise(k(10), ts, HOUR) > -0.2 ? 180 : 0;
    const illuminance = Math.max(0, profile.peakDaylightLux * sun * clouds + lamp + 0.5 + 0.5 * white(11));
    return { temperature, humidity, pressure, illuminance };
  };

  return {
    seed,
    profile,
    at,
    analog(ts) {
      const { illuminance } = at(ts);
      const soil = 1.8 + 0.8 * valueNoise(k(12), ts, 12 * HOUR) + 0.002 * (hash01(k(13), ts) * 2 - 1);
      const ldr = (3.3 * illuminance) / (illuminance + 200);
      const ref = 1.65 + 0.0005 * (hash01(k(14), ts) * 2 - 1);
      const gnd = 0.0005 * (hash01(k(15), ts) * 2 - 1);
      return [soil, ldr, ref, gnd];
    },
  };
}
