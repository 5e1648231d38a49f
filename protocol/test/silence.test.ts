import { describe, expect, it } from 'vitest';
import { DEFAULT_SILENT_AFTER_MS, SILENT_AFTER_MINUTES, silentAfterMs } from '../src/silence.js';

describe('silentAfterMs', () => {
  it.each([
    [15, 900_000],
    [0.05, 3_000],
    [SILENT_AFTER_MINUTES.max, SILENT_AFTER_MINUTES.max * 60_000],
  ])('%d minutes is %d ms', (minutes, ms) => {
    expect(silentAfterMs(minutes)).toBe(ms);
  });

  it.each([0, -1, SILENT_AFTER_MINUTES.max + 1, Number.NaN, Number.POSITIVE_INFINITY])('refuses %d', (minutes) => {
    expect(silentAfterMs(minutes)).toBeUndefined();
  });
});

describe('DEFAULT_SILENT_AFTER_MS', () => {
  it('is the default number of minutes, as silentAfterMs reads it', () => {
    expect(DEFAULT_SILENT_AFTER_MS).toBe(silentAfterMs(SILENT_AFTER_MINUTES.default));
    expect(DEFAULT_SILENT_AFTER_MS).toBe(15 * 60_000);
  });
});
