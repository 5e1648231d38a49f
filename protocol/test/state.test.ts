import { describe, expect, it } from 'vitest';
import {
  type ReportedState,
  rejectionsToReported,
  splitDesired,
  validateDesiredState,
  validateReportedState,
} from '../src/index.js';

describe('desired state', () => {
  it('accepts a full valid desired document', () => {
    const doc = {
      sampling: { bme280: 5000, door: 1000 },
      batch: { maxReadings: 50, maxBytes: 16_384, maxAgeMs: 10_000 },
      outputs: { relay: true, led: false },
      logLevel: 'debug',
    };
    expect(validateDesiredState(doc)).toEqual({ ok: true, value: doc });
  });

  it('lists every problem with its path', () => {
    const r = validateDesiredState({
      sampling: { bme280: 5 },
      batch: { maxBytes: 10_000_000, extra: 1 },
      outputs: { relay: 'on' },
      logLevel: 'loud',
      colour: 'red',
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.issues.map((i) => i.path).sort()).toEqual(
      ['$', 'batch', 'batch.maxBytes', 'logLevel', 'outputs.relay', 'sampling.bme280'].sort(),
    );
  });

  it('splits a delta into applicable and rejected keys', () => {
    const { accepted, rejected } = splitDesired({
      sampling: { bme280: 2000, door: 'fast', 'bad id!': 1000 },
      batch: { maxReadings: 20, maxAgeMs: 1, colour: 'red' },
      outputs: { relay: true, led: 'on', gone: null },
      logLevel: 'warn',
      unknown: 1,
      cleared: null,
    });
    expect(accepted).toEqual({
      sampling: { bme280: 2000 },
      batch: { maxReadings: 20 },
      outputs: { relay: true },
      logLevel: 'warn',
    });
    expect(rejected.map((r) => r.path).sort()).toEqual(
      ['sampling.door', 'sampling["bad id!"]', 'batch.maxAgeMs', 'batch.colour', 'outputs.led', 'unknown'].sort(),
    );
    const reasons = Object.fromEntries(rejected.map((r) => [r.path, r.reason]));
    expect(reasons['batch.maxAgeMs']).toBe('maxAgeMs must be at least 100');
    expect(reasons['outputs.led']).toBe('output state must be true (on) or false (off)');
  });

  it.each([null, 42, 'x', [1, 2]])('rejects a non-object desired %j whole', (input) => {
    const { accepted, rejected } = splitDesired(input);
    expect(accepted).toEqual({});
    expect(rejected).toHaveLength(1);
    expect(rejected[0]?.path).toBe('$');
  });

  it('rejects sections of the wrong type', () => {
    const { rejected } = splitDesired({ sampling: 5, outputs: [true], batch: 'big' });
    expect(rejected.map((r) => r.path).sort()).toEqual(['batch', 'outputs', 'sampling']);
  });

  it('turns rejections into the reported map, and none into null', () => {
    expect(rejectionsToReported([])).toBeNull();
    expect(rejectionsToReported([{ path: 'logLevel', value: 'loud', reason: 'bad' }])).toEqual({
      logLevel: { value: 'loud', reason: 'bad' },
    });
  });
});

describe('reported state', () => {
  const reported: ReportedState = {
    agent: { version: '0.1.0', bootId: 'b-1234567', startedAt: 1, uptimeS: 12.5 },
    sensors: { bme280: { driver: 'bme280', healthy: true, intervalMs: 1000 } },
    outputs: { relay: false },
    sampling: { bme280: 1000 },
    batch: { maxReadings: 100, maxBytes: 32_768, maxAgeMs: 10_000 },
    logLevel: 'info',
    outbox: { depth: 0, bytes: 0, dropped: 0, droppedReadings: 0, sent: 3 },
    rejected: { logLevel: { value: 'loud', reason: 'log level must be one of ...' } },
  };

  it('accepts what an agent reports', () => {
    expect(validateReportedState(reported).ok).toBe(true);
  });

  it('locates problems in a bad report', () => {
    const r = validateReportedState({ ...reported, outbox: { ...reported.outbox, depth: -1 }, sensors: { s: {} } });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      const paths = r.issues.map((i) => i.path);
      expect(paths).toContain('outbox.depth');
      expect(paths).toContain('sensors.s.driver');
    }
  });
});
