import { describe, expect, it } from 'vitest';
import {
  HEALTH_BOUNDS,
  type HealthReport,
  LIMITS,
  type ReportedState,
  validateHealthReport,
  validateReportedState,
} from '../src/index.js';

/** A Pi 4's health as its agent reports it. */
const pi4: HealthReport = {
  sampledAt: 1_764_578_000_000,
  host: {
    cpuPct: 12,
    load1: 0.31,
    load5: 0.22,
    load15: 0.18,
    memTotalMiB: 3791,
    memAvailableMiB: 3302,
    tempC: 49,
    uptimeS: 175_012,
  },
  process: { cpuPct: 0.1, rssMiB: 87 },
  connection: { reconnects: 0, connectedS: 3_600, publishLatencyMs: { last: 48, p50: 45, p99: 180, samples: 256 } },
};

const reported: ReportedState = {
  agent: { version: '0.1.0', bootId: 'b-1234567', startedAt: 1, uptimeS: 12 },
  sensors: { env: { driver: 'bme280', healthy: true, intervalMs: 1000 } },
  outputs: { relay: false },
  sampling: { env: 1000 },
  batch: { maxReadings: 100, maxBytes: 32_768, maxAgeMs: 10_000 },
  logLevel: 'info',
  outbox: { depth: 0, bytes: 0, dropped: 0, droppedReadings: 0, sent: 3 },
  health: pi4,
};

/** Levels below the object itself, as the shadow service counts them under `reported`. */
function depth(v: unknown): number {
  if (typeof v !== 'object' || v === null) return 0;
  return 1 + Math.max(0, ...Object.values(v).map(depth));
}

describe('reported.health', () => {
  it('accepts what an agent on a Pi reports, in the reported state', () => {
    expect(validateHealthReport(pi4).ok).toBe(true);
    expect(validateReportedState(reported).ok).toBe(true);
  });

  it('accepts the least a device can know: the connection alone', () => {
    expect(validateHealthReport({ sampledAt: 0, connection: { reconnects: 0 } }).ok).toBe(true);
  });

  it.each<[string, (h: HealthReport) => unknown]>([
    ['host.cpuPct', (h) => ({ ...h, host: { ...h.host, cpuPct: 101 } })],
    ['process.cpuPct', (h) => ({ ...h, process: { ...h.process, cpuPct: -0.1 } })],
    ['host.tempC', (h) => ({ ...h, host: { ...h.host, tempC: 48_686 } })],
    ['host.memAvailableMiB', (h) => ({ ...h, host: { ...h.host, memAvailableMiB: 4_000 } })],
    ['host.memTotalMiB', (h) => ({ ...h, host: { ...h.host, memTotalMiB: HEALTH_BOUNDS.mibMax + 1 } })],
    ['host.load1', (h) => ({ ...h, host: { ...h.host, load1: Number.POSITIVE_INFINITY } })],
    ['connection.reconnects', (h) => ({ ...h, connection: { ...h.connection, reconnects: 1.5 } })],
    [
      'connection.publishLatencyMs.p50',
      (h) => ({ ...h, connection: { ...h.connection, publishLatencyMs: { last: 1, p50: 300, p99: 200, samples: 3 } } }),
    ],
    [
      'connection.publishLatencyMs.samples',
      (h) => ({ ...h, connection: { ...h.connection, publishLatencyMs: { last: 1, p50: 1, p99: 1, samples: 257 } } }),
    ],
    ['host.fanRpm', (h) => ({ ...h, host: { ...h.host, fanRpm: 3000 } })],
    ['connection', (h) => ({ sampledAt: h.sampledAt })],
  ])('refuses a bad %s', (path, make) => {
    const r = validateHealthReport(make(pi4));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues.map((i) => i.path).join(' ')).toContain(path === 'host.fanRpm' ? 'host' : path);
  });

  it('refuses a __proto__ key instead of letting it reach a prototype', () => {
    const hostile = JSON.parse('{"sampledAt":1,"connection":{"reconnects":0},"host":{"__proto__":{"cpuPct":5}}}');
    expect(validateHealthReport(hostile).ok).toBe(false);
  });

  it('fits the shadow: within its nesting depth, and a few hundred bytes at the largest values', () => {
    expect(depth(reported)).toBeLessThanOrEqual(LIMITS.maxShadowDepth);
    const largest: HealthReport = {
      sampledAt: Number.MAX_SAFE_INTEGER,
      host: {
        cpuPct: 100,
        load1: 9_999.99,
        load5: 9_999.99,
        load15: 9_999.99,
        memTotalMiB: HEALTH_BOUNDS.mibMax,
        memAvailableMiB: HEALTH_BOUNDS.mibMax,
        tempC: -59,
        uptimeS: Number.MAX_SAFE_INTEGER,
      },
      process: { cpuPct: 99.9, rssMiB: HEALTH_BOUNDS.mibMax },
      connection: {
        reconnects: Number.MAX_SAFE_INTEGER,
        connectedS: Number.MAX_SAFE_INTEGER,
        publishLatencyMs: {
          last: HEALTH_BOUNDS.latencyMsMax,
          p50: HEALTH_BOUNDS.latencyMsMax,
          p99: HEALTH_BOUNDS.latencyMsMax,
          samples: HEALTH_BOUNDS.latencyWindow,
        },
      },
    };
    expect(validateHealthReport(largest).ok).toBe(true);
    const bytes = Buffer.byteLength(JSON.stringify({ health: largest }));
    expect(bytes).toBeLessThan(512);
    // The Pi's everyday report adds about 350 bytes to the reported document.
    expect(Buffer.byteLength(JSON.stringify({ health: pi4 }))).toBeLessThan(400);
  });
});
