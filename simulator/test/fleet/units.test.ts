import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { summaryLines } from '../../src/fleet/command.js';
import { fleetAgentConfigTemplate } from '../../src/fleet/host.js';
import { createMemoryOutbox } from '../../src/fleet/memory-outbox.js';
import { logHistogram, quantiles } from '../../src/fleet/metrics.js';
import { checkOptions, FLEET_DEFAULTS, parseFault } from '../../src/fleet/options.js';
import type { FleetResult } from '../../src/fleet/runner.js';
import { createSharedClock } from '../../src/fleet/shared-clock.js';
import { renderHtml, writeReport } from '../../src/report/report.js';

const batch = (seq: number, readings: number, bytes: number) => ({
  bootId: 'b',
  seq,
  sealedAt: seq,
  readings,
  json: `{"seq":${seq}}`,
  bytes,
});

describe('createMemoryOutbox', () => {
  it('hands out the oldest batches first, skips those in flight, and counts acks', () => {
    const acked: number[] = [];
    const ob = createMemoryOutbox({ maxBytes: 10_000, now: () => 5, counters: { onAck: (r) => acked.push(r) } });
    const a = ob.put(batch(1, 3, 100));
    const b = ob.put(batch(2, 4, 100));
    expect(ob.next(1).map((e) => e.seq)).toEqual([1]);
    expect(ob.next(5, new Set([a.id])).map((e) => e.seq)).toEqual([2]);
    expect(ob.ack(b.id)).toBe(true);
    expect(ob.ack(b.id)).toBe(false);
    expect(acked).toEqual([4]);
    expect(ob.stats()).toEqual({ depth: 1, bytes: 100, dropped: 0, droppedReadings: 0, sent: 1 });
  });

  it('drops the oldest batches past the byte bound and counts what it dropped', () => {
    const dropped: number[] = [];
    const ob = createMemoryOutbox({ maxBytes: 250, now: () => 0, counters: { onDrop: (r) => dropped.push(r) } });
    ob.put(batch(1, 2, 100));
    ob.put(batch(2, 3, 100));
    const r = ob.put(batch(3, 5, 100));
    expect(r).toMatchObject({ droppedBatches: 1, droppedReadings: 2 });
    expect(ob.next(10).map((e) => e.seq)).toEqual([2, 3]);
    expect(ob.stats()).toMatchObject({ depth: 2, dropped: 1, droppedReadings: 2 });
    expect(dropped).toEqual([2]);
  });
});

describe('createSharedClock', () => {
  it('fires timers in order, never early, and not after clearTimeout', async () => {
    const clock = createSharedClock({ resolutionMs: 5 });
    const fired: [string, number][] = [];
    const t0 = Date.now();
    const done = new Promise<void>((resolve) => {
      clock.setTimeout(() => fired.push(['b', Date.now() - t0]), 30);
      clock.setTimeout(() => fired.push(['a', Date.now() - t0]), 10);
      const c = clock.setTimeout(() => fired.push(['c', Date.now() - t0]), 20);
      clock.clearTimeout(c);
      clock.setTimeout(resolve, 40);
    });
    await done;
    expect(fired.map(([k]) => k)).toEqual(['a', 'b']);
    expect(fired[0]?.[1]).toBeGreaterThanOrEqual(10);
    expect(fired[1]?.[1]).toBeGreaterThanOrEqual(30);
    expect(clock.pending).toBe(0);
    clock.close();
  });

  it('keeps periodic timers in their phase after the event loop stalls', async () => {
    const clock = createSharedClock({ resolutionMs: 5 });
    const periodMs = 100;
    const seen: Record<'a' | 'b', number[]> = { a: [], b: [] };
    let stop = false;
    // The agent's fixed-rate pattern: the next run is due one period after this one started,
    // computed in a continuation (after the slot has fired).
    const every = (k: 'a' | 'b', delayMs: number) => {
      clock.setTimeout(() => {
        const startedAt = clock.now();
        seen[k].push(startedAt);
        void Promise.resolve().then(() => {
          if (!stop) every(k, Math.max(0, startedAt + periodMs - clock.now()));
        });
      }, delayMs);
    };
    every('a', periodMs);
    every('b', periodMs / 2);
    await new Promise<void>((resolve) => {
      clock.setTimeout(() => {
        // A 70 ms stall (shorter than the period): b comes due during it and fires late.
        const until = Date.now() + 70;
        while (Date.now() < until) {
          /* busy */
        }
        clock.setTimeout(resolve, 4 * periodMs);
      }, 120);
    });
    stop = true;
    clock.close();
    const a = seen.a.at(-1) as number;
    const b = seen.b.at(-1) as number;
    expect(seen.a.length).toBeGreaterThanOrEqual(4);
    const phase = (((a - b) % periodMs) + periodMs) % periodMs;
    expect(Math.abs(phase - periodMs / 2)).toBeLessThanOrEqual(10);
  });

  it('shows continuations the real time, and moves a zero-delay timer set in a slot to the next slot', async () => {
    const clock = createSharedClock({ resolutionMs: 20 });
    const out = await new Promise<{ inSlot: number; after: number; zeroAt: number }>((resolve) => {
      clock.setTimeout(() => {
        const inSlot = clock.now();
        clock.setTimeout(() => resolve({ inSlot, after, zeroAt: clock.now() }), 0);
        let after = 0;
        void Promise.resolve().then(() => {
          after = clock.now();
        });
        const until = Date.now() + 30;
        while (Date.now() < until) {
          /* busy */
        }
      }, 1);
    });
    clock.close();
    expect(out.inSlot % 20).toBe(0);
    expect(out.after).toBeGreaterThanOrEqual(out.inSlot + 30);
    expect(out.zeroAt).toBeGreaterThanOrEqual(out.inSlot + 20);
  });

  it('keeps firing the rest of a slot when one callback throws', async () => {
    const clock = createSharedClock({ resolutionMs: 50 });
    const errors: unknown[] = [];
    const onError = (e: unknown) => errors.push(e);
    process.on('uncaughtException', onError);
    try {
      await new Promise<void>((resolve) => {
        clock.setTimeout(() => {
          throw new Error('boom');
        }, 1);
        clock.setTimeout(resolve, 2);
      });
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('uncaughtException', onError);
      clock.close();
    }
    expect(errors).toHaveLength(1);
  });
});

describe('options', () => {
  it.each([
    ['restart-core', { kind: 'restart-core' }],
    ['drop-connections:0.1', { kind: 'drop-connections', fraction: 0.1 }],
    ['sensor-failure:0.05', { kind: 'sensor-failure', fraction: 0.05 }],
  ])('parses %s', (text, fault) => {
    expect(parseFault(text)).toEqual(fault);
  });

  it.each(['explode', 'drop-connections:0', 'sensor-failure:1.5', 'restart-core:1', 'drop-connections:x'])(
    'refuses %s as usage (the code pifleet-sim fleet exits 64 on)',
    (text) => {
      expect(() => parseFault(text)).toThrow(/fault|fraction|argument/);
      expect(() => parseFault(text)).toThrow(expect.objectContaining({ name: 'SimulatorError', code: 'FLEET_USAGE' }));
    },
  );

  it('reports every bad flag at once', () => {
    const issues = checkOptions({
      ...FLEET_DEFAULTS,
      devices: 0,
      sensors: 4,
      target: 'external',
      faults: [{ kind: 'restart-core' }],
      prefix: 'bad name',
    });
    expect(issues).toEqual(
      expect.arrayContaining([
        expect.stringContaining('--devices'),
        expect.stringContaining('--sensors'),
        expect.stringContaining('--data-dir'),
        expect.stringContaining('restart-core'),
        expect.stringContaining('--prefix'),
      ]),
    );
    expect(checkOptions(FLEET_DEFAULTS)).toEqual([]);
  });

  it('enforces the aws limits by default; --limits off or a limits file only with the core in process; --publish-rate within the agent’s 1-50', () => {
    expect(FLEET_DEFAULTS.limits).toBe('aws');
    expect(checkOptions({ ...FLEET_DEFAULTS, limits: 'off', limitsFile: '/l.json', publishPerSecond: 50 })).toEqual([]);
    expect(checkOptions({ ...FLEET_DEFAULTS, limits: 'none' })).toEqual(['--limits must be aws or off']);
    expect(checkOptions({ ...FLEET_DEFAULTS, target: 'external', dataDir: '/d', limitsFile: '/l.json' })).toEqual([
      '--limits and --limits-file need --target local (the core runs in this process)',
    ]);
    expect(checkOptions({ ...FLEET_DEFAULTS, publishPerSecond: 51 })).toEqual([
      '--publish-rate must be an integer in [1, 50]',
    ]);
  });

  it('speaks MQTT 5 by default; 3.1.1 on request; any other version is a usage problem', () => {
    expect(FLEET_DEFAULTS.protocol).toBe('5');
    expect(checkOptions({ ...FLEET_DEFAULTS, protocol: '3.1.1' })).toEqual([]);
    for (const protocol of ['4', '3.1', '5.0', '']) {
      expect(checkOptions({ ...FLEET_DEFAULTS, protocol })).toEqual(['--protocol must be 5 or 3.1.1']);
    }
  });

  it.each(['5', '3.1.1'] as const)('gives every device of a fleet the agent config for MQTT %s', (protocol) => {
    const profile = { sensors: 1, intervalMs: 1_000, batchReadings: 10, batchAgeMs: 10_000, shadow: true } as const;
    const config = fleetAgentConfigTemplate({
      endpoint: '127.0.0.1',
      port: 8883,
      caFile: '/ca.pem',
      profile: { ...profile, reconnectMaxMs: 8_000, protocol },
    });
    expect(config.mqtt.protocol).toBe(protocol);
    // Without a protocol, the agent's default.
    expect(
      fleetAgentConfigTemplate({
        endpoint: '127.0.0.1',
        port: 8883,
        caFile: '/ca.pem',
        profile: { ...profile, reconnectMaxMs: 8_000 },
      }).mqtt.protocol,
    ).toBe('5');
  });
});

describe('metrics', () => {
  it('computes nearest-rank quantiles', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(quantiles(values)).toEqual({ count: 100, p50: 50, p95: 95, p99: 99, max: 100, mean: 50.5 });
    expect(quantiles([])).toBeUndefined();
  });

  it('puts every value in a log bucket whose bound covers it', () => {
    const h = logHistogram([0.5, 1, 3, 120, 9000]);
    expect(h.counts.reduce((a, b) => a + b, 0)).toBe(5);
    expect(h.bounds[h.bounds.length - 1]).toBeGreaterThanOrEqual(9000);
    expect(h.counts[0]).toBe(2); // 0.5 and 1 are ≤ 1
  });
});

describe('report', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fleet-report-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the JSON result and a self-contained HTML page with SVG plots', async () => {
    const result = syntheticResult();
    const files = await writeReport(result, dir);
    expect(JSON.parse(readFileSync(files.json, 'utf8'))).toEqual(JSON.parse(JSON.stringify(result)));
    const html = readFileSync(files.html, 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain('connected devices');
    expect(html).toContain('latency sealed → stored');
    expect(html).toContain('aws-iot-device-sdk-v2 (aws-crt), MQTT 5');
    expect(html).toContain('throttled, core counters (GET /quotas)');
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3)/);
  });

  it('names the MQTT version and client in the summary lines', () => {
    const r = syntheticResult();
    expect(summaryLines(r)[0]).toMatch(/^local-core \(MQTT 5, aws-crt\): 3\/3 connected/);
    const [p] = r.phases;
    if (!p) throw new Error('no phase');
    const mqtt311 = {
      ...r,
      phases: [{ ...p, deviceHosts: { ...p.deviceHosts, transport: 'mqtt', protocol: '3.1.1' } }],
    } as const;
    expect(summaryLines(mqtt311)[0]).toMatch(/^local-core \(MQTT 3\.1\.1, mqtt\.js\): /);
    expect(renderHtml(mqtt311)).toContain('mqtt.js, MQTT 3.1.1');
  });

  it('prints the throttled counts of the devices and of the core, or that the core’s are not available', () => {
    const r = syntheticResult();
    const [p] = r.phases;
    if (!p) throw new Error('no phase');
    expect(summaryLines(r)).toContain(
      'local-core throttled: devices: publishes 0, unacknowledged 0, connects 0, shadow 0; core (limits aws): 0',
    );
    const throttled = {
      ...r,
      phases: [
        {
          ...p,
          throttled: {
            devices: { publishes: 7, unacknowledged: 0, connects: 1, shadow: 2 },
            core: {
              mode: 'aws',
              total: 9,
              byQuota: { publishesPerSecondPerConnection: 8, connectsPerSecondPerClientId: 1 },
            },
          },
        },
      ],
    };
    expect(summaryLines(throttled)).toContain(
      'local-core throttled: devices: publishes 7, unacknowledged 0, connects 1, shadow 2; core (limits aws): 9 (publishesPerSecondPerConnection 8, connectsPerSecondPerClientId 1)',
    );
    expect(renderHtml(throttled)).toContain(
      '9 (limits aws); publishesPerSecondPerConnection 8; connectsPerSecondPerClientId 1',
    );
    const aws = {
      ...r,
      phases: [{ ...p, name: 'aws' as const, throttled: { ...p.throttled, core: 'not available' as const } }],
    };
    expect(summaryLines(aws)).toContain(
      'aws throttled: devices: publishes 0, unacknowledged 0, connects 0, shadow 0; core (limits n/a): not available',
    );
  });

  it('escapes what it prints and says when readings were lost', () => {
    const r = syntheticResult();
    const lossy = { ...r, runId: '<x>', zeroLoss: false };
    const html = renderHtml(lossy);
    expect(html).toContain('&lt;x&gt;');
    expect(html).toContain('Readings were lost');
  });
});

function syntheticResult(): FleetResult {
  const series = Array.from({ length: 5 }, (_, t) => ({
    t,
    connected: 3,
    generatedPerS: 10,
    publishedPerS: 10,
    storedPerS: 10,
    coreCpuPct: 5,
    fleetCpuPct: 3,
    rssMB: 100,
    fleetRssMB: 80,
  }));
  const q = { count: 3, p50: 1, p95: 2, p99: 3, max: 4, mean: 2 };
  return {
    version: 5,
    runId: 'abc123',
    startedAt: '2026-01-01T00:00:00.000Z',
    options: FLEET_DEFAULTS,
    machine: { cpus: 2, cpuModel: 'test', memoryGiB: 1, node: 'v20', platform: 'linux x64' },
    provisioning: { seconds: 1, perDeviceMs: 1, keyType: 'EC P-256', dataDir: '/tmp/x' },
    phases: [
      {
        name: 'local-core',
        deviceHosts: { mode: 'inline', hosts: 1, transport: 'crt', protocol: '5' },
        devices: 3,
        connect: {
          everConnected: 3,
          connectedAtEnd: 3,
          maxConnected: 3,
          seconds: 1,
          perSecond: 3,
          firstConnectMeanMs: 10,
          firstConnectMaxMs: 20,
          connectFailures: 0,
          reconnects: 0,
          interruptions: 0,
        },
        telemetry: {
          generated: 30,
          published: 30,
          publishedBatches: 6,
          stored: 30,
          storedBatches: 6,
          storedVia: 'test',
          lost: 0,
          droppedByOutbox: 0,
          unsentAtStop: 0,
          generatedPerS: 10,
          publishedPerS: 10,
          publishedBytes: 1000,
        },
        latency: {
          sampleToStoredMs: q,
          sealedToStoredMs: q,
          sealedToStoredMeasuredMs: q,
          sampleToStoredHistogram: logHistogram([1, 2, 3]),
          sealedToStoredHistogram: logHistogram([1, 2, 3]),
          sampledThings: 3,
          endpoint: 'test',
        },
        commands: undefined,
        commandRoundTripHistogram: undefined,
        resources: {
          coreCpuPct: 5,
          fleetCpuPct: 3,
          cpuSplit: 'test',
          coreRssMaxMB: 100,
          coreRssEndMB: 100,
          fleetRssMaxMB: 0,
          fleetRssEndMB: 0,
          coreEventLoop: { p50Ms: 0, p99Ms: 1, maxMs: 2 },
          hostEventLoop: [{ p50Ms: 0, p99Ms: 1, maxMs: 2, utilization: 0.1 }],
          hostHeapUsedMB: [10],
        },
        faults: [],
        throttled: {
          devices: { publishes: 0, unacknowledged: 0, connects: 0, shadow: 0 },
          core: { mode: 'aws', total: 0, byQuota: {} },
        },
        windows: { rampS: 1, measuredS: 5, drainS: 0 },
        series,
      },
    ],
    cleanup: { removed: 3, failed: 0, kept: false },
    zeroLoss: true,
  };
}
