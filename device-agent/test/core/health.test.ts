import { type HealthReport, validateHealthReport } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { buildHealth, HEALTH_THRESHOLDS, significantChange } from '../../src/core/health.js';
import type { HostSample } from '../../src/ports/host-stats.js';

const MIB = 1024 * 1024;

const sample = (over: Partial<HostSample> = {}): HostSample => ({
  cpu: { busy: 1_000, total: 10_000 },
  processCpuTicks: 100,
  processRssBytes: 87.4 * MIB,
  memTotalBytes: 3_790.6 * MIB,
  memAvailableBytes: 3_301.7 * MIB,
  socTempMilliC: 48_686,
  load: { one: 0.314, five: 0.2, fifteen: 0.18 },
  uptimeS: 175_012.9,
  ...over,
});

describe('buildHealth', () => {
  it('rounds: CPU to whole % (the agent to 0.1 %), MiB, whole °C, load to 0.01, seconds down', () => {
    const h = buildHealth({
      now: 1_700_000_060_000.7,
      previous: sample(),
      // 24,000 ticks later, 2,837 busy (11.82 %); the agent 18 (0.075 %).
      current: sample({ cpu: { busy: 3_837, total: 34_000 }, processCpuTicks: 118 }),
      link: {
        reconnects: 2,
        connectedSince: 1_700_000_000_000,
        latency: { last: 41.6, p50: 38.2, p99: 120.5, samples: 37 },
      },
    });
    expect(h).toEqual({
      sampledAt: 1_700_000_060_000,
      host: {
        cpuPct: 12,
        load1: 0.31,
        load5: 0.2,
        load15: 0.18,
        memTotalMiB: 3791,
        memAvailableMiB: 3302,
        tempC: 49,
        uptimeS: 175_012,
      },
      process: { cpuPct: 0.1, rssMiB: 87 },
      connection: { reconnects: 2, connectedS: 60, publishLatencyMs: { last: 42, p50: 38, p99: 121, samples: 37 } },
    } satisfies HealthReport);
    expect(validateHealthReport(h).ok).toBe(true);
  });

  it('leaves out what it cannot know: CPU shares from one sample, host and process without a sample, connectedS while disconnected', () => {
    expect(buildHealth({ now: 5, current: sample(), link: { reconnects: 0 } }).host).not.toHaveProperty('cpuPct');
    const bare = buildHealth({ now: 5, link: { reconnects: 0 } });
    expect(bare).toEqual({ sampledAt: 5, connection: { reconnects: 0 } });
    expect(validateHealthReport(bare).ok).toBe(true);
  });

  it('omits values no Pi produces instead of reporting them (a bad sensor, counters that went back)', () => {
    const h = buildHealth({
      now: 5,
      previous: sample({ cpu: { busy: 9_000, total: 90_000 } }),
      // The counters restarted (a new boot between samples): no CPU share, not a negative one.
      current: sample({ cpu: { busy: 10, total: 100 }, socTempMilliC: 1_000_000_000, memAvailableBytes: 9_000 * MIB }),
      link: { reconnects: 0 },
    });
    expect(h.host).not.toHaveProperty('cpuPct');
    expect(h.process).not.toHaveProperty('cpuPct');
    expect(h.host).not.toHaveProperty('tempC');
    // More available than total cannot be: the available figure is the one dropped.
    expect(h.host).not.toHaveProperty('memAvailableMiB');
    expect(h.host?.memTotalMiB).toBe(3791);
    expect(validateHealthReport(h).ok).toBe(true);
  });

  it('clamps a CPU share pushed past 100 % by rounding or a counter race', () => {
    const h = buildHealth({
      now: 5,
      previous: sample(),
      current: sample({ cpu: { busy: 11_000, total: 19_990 } }),
      link: { reconnects: 0 },
    });
    expect(h.host?.cpuPct).toBe(100);
  });
});

describe('significantChange', () => {
  const base = buildHealth({
    now: 0,
    previous: sample(),
    current: sample({ cpu: { busy: 2_000, total: 20_000 }, processCpuTicks: 110 }),
    link: { reconnects: 0, connectedSince: 0, latency: { last: 80, p50: 80, p99: 150, samples: 10 } },
  });
  const change = (edit: (h: HealthReport) => void): HealthReport => {
    const h = structuredClone(base);
    edit(h);
    return h;
  };

  it('reports the first sample', () => {
    expect(significantChange(undefined, base)).toBe('first sample');
  });

  it('lets times and the single latest latency change without a report', () => {
    const later = change((h) => {
      h.sampledAt += 3_600_000;
      if (h.host) h.host.uptimeS = (h.host.uptimeS ?? 0) + 3_600;
      h.connection.connectedS = (h.connection.connectedS ?? 0) + 3_600;
      if (h.connection.publishLatencyMs) {
        h.connection.publishLatencyMs.last = 900;
        h.connection.publishLatencyMs.samples = 256;
      }
      if (h.host) h.host.load5 = 3;
    });
    expect(significantChange(base, later)).toBeUndefined();
  });

  // Each row: a change just under its threshold is noise; at it, it is news.
  it.each<[string, (h: HealthReport, k: number) => void, number, number]>([
    [
      'host.cpuPct',
      (h, k) => {
        if (h.host) h.host.cpuPct = (h.host.cpuPct ?? 0) + k;
      },
      HEALTH_THRESHOLDS.hostCpuPct - 1,
      HEALTH_THRESHOLDS.hostCpuPct,
    ],
    [
      'process.cpuPct',
      (h, k) => {
        if (h.process) h.process.cpuPct = (h.process.cpuPct ?? 0) + k;
      },
      HEALTH_THRESHOLDS.processCpuPct - 0.1,
      HEALTH_THRESHOLDS.processCpuPct,
    ],
    [
      'host.memAvailableMiB',
      (h, k) => {
        if (h.host) h.host.memAvailableMiB = (h.host.memAvailableMiB ?? 0) - k;
      },
      378, // 10 % of 3,791 MiB is 379.1
      380,
    ],
    [
      'process.rssMiB',
      (h, k) => {
        if (h.process) h.process.rssMiB = (h.process.rssMiB ?? 0) + k;
      },
      17, // a fifth of 87 MiB is 17.4
      18,
    ],
    [
      'host.tempC',
      (h, k) => {
        if (h.host) h.host.tempC = (h.host.tempC ?? 0) + k;
      },
      HEALTH_THRESHOLDS.tempC - 1,
      HEALTH_THRESHOLDS.tempC,
    ],
    [
      'host.load1',
      (h, k) => {
        if (h.host) h.host.load1 = (h.host.load1 ?? 0) + k;
      },
      0.99,
      1,
    ],
    [
      'connection.publishLatencyMs.p50',
      (h, k) => {
        if (h.connection.publishLatencyMs) h.connection.publishLatencyMs.p50 += k;
      },
      39, // half of 80 ms
      40,
    ],
    [
      'connection.publishLatencyMs.p99',
      (h, k) => {
        if (h.connection.publishLatencyMs) h.connection.publishLatencyMs.p99 += k;
      },
      74, // half of 150 ms
      75,
    ],
  ])('%s: %s is noise, %s is reported', (path, edit, under, at) => {
    expect(
      significantChange(
        base,
        change((h) => edit(h, under)),
      ),
    ).toBeUndefined();
    expect(
      significantChange(
        base,
        change((h) => edit(h, at)),
      ),
    ).toBe(path);
  });

  it('a small latency moving by half still waits for 20 ms', () => {
    const fast = change((h) => {
      if (h.connection.publishLatencyMs) Object.assign(h.connection.publishLatencyMs, { p50: 8, p99: 12 });
    });
    const faster = structuredClone(fast);
    if (faster.connection.publishLatencyMs) Object.assign(faster.connection.publishLatencyMs, { p50: 16, p99: 30 });
    expect(significantChange(fast, faster)).toBeUndefined();
  });

  it('reports any reconnect at once', () => {
    const reconnected = change((h) => {
      h.connection.reconnects = 1;
    });
    expect(significantChange(base, reconnected)).toBe('connection.reconnects');
  });

  it('reports a value that appears or goes away (the first PUBACK, a thermal zone lost)', () => {
    const noLatency = change((h) => {
      delete h.connection.publishLatencyMs;
    });
    expect(significantChange(noLatency, base)).toBe('connection.publishLatencyMs.p50');
    const noTemp = change((h) => {
      delete h.host?.tempC;
    });
    expect(significantChange(base, noTemp)).toBe('host.tempC');
  });

  it('a slow drift never reports by itself: each sample is compared with what the shadow last accepted', () => {
    // What the caller does: the reference moves only when a report is accepted.
    let accepted = base;
    let reports = 0;
    let current = base;
    for (let minute = 1; minute <= 30; minute++) {
      current = change((h) => {
        if (h.host) h.host.tempC = (base.host?.tempC ?? 0) + minute * 0.5;
      });
      if (significantChange(accepted, current) !== undefined) {
        reports += 1;
        accepted = current;
      }
    }
    // +15 °C over 30 minutes in 0.5 °C steps: one report per 5 °C, not one per minute.
    expect(reports).toBe(3);
  });
});
