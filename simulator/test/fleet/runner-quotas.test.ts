import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { summaryLines } from '../../src/fleet/command.js';
import { FLEET_DEFAULTS, type FleetOptions } from '../../src/fleet/options.js';
import { createFleetRunner, type FleetResult } from '../../src/fleet/runner.js';

/**
 * A fleet over IoT Core's publish quota for the whole measured window, small and cheap: the core's
 * publishes-per-second-per-connection quota set to 2 with a limits file, and each device sealing a
 * one-reading batch per sample of three sensors every second (`--interval-ms 1000
 * --batch-readings 1`), sent as fast as it may (`--publish-rate 20`): 3 publishes a second on one
 * connection, sustained, against a quota of 2, so the outboxes grow through the window. The report
 * counts the throttling, from the devices (PUBACK 0x97, MQTT 5) and from the core's counters, and
 * nothing is lost: the devices stop sampling when the window ends and deliver their backlog under
 * the quota before they stop. The same run with `--limits off` throttles nothing.
 */
const out = mkdtempSync(path.join(os.tmpdir(), 'fleet-quotas-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));
const limitsFile = path.join(out, 'limits.json');
writeFileSync(limitsFile, JSON.stringify({ publishesPerSecondPerConnection: 2 }));

const overQuota = (o: Partial<FleetOptions>): FleetOptions => ({
  ...FLEET_DEFAULTS,
  devices: 3,
  rampPerSecond: 30,
  durationS: 5,
  sensors: 3,
  intervalMs: 1_000,
  batchReadings: 1,
  batchAgeMs: 60_000,
  publishPerSecond: 20,
  transport: 'mqtt',
  protocol: '5',
  outDir: out,
  latencyThings: 3,
  drainTimeoutS: 30,
  reconnectMaxMs: 2_000,
  ...o,
});

const localPhase = (r: FleetResult) => {
  const p = r.phases.find((x) => x.name === 'local-core');
  if (!p) throw new Error('no local-core phase');
  return p;
};

describe('a fleet over the publish quota', () => {
  it('--limits aws with a limits file: throttled counts from the devices and the core in the result and the summary; nothing lost', async () => {
    const r = await createFleetRunner({ options: overQuota({ limits: 'aws', limitsFile }) }).run();
    const p = localPhase(r);
    expect(p.throttled.devices.publishes).toBeGreaterThan(0);
    expect(p.throttled.core).not.toBe('not available');
    if (p.throttled.core === 'not available') return;
    expect(p.throttled.core.mode).toBe('aws');
    expect(p.throttled.core.byQuota.publishesPerSecondPerConnection).toBeGreaterThanOrEqual(
      p.throttled.devices.publishes,
    );
    expect(p.throttled.core.total).toBeGreaterThan(0);
    // Sustained, not bursts that average below the quota: every device generated (one reading a
    // batch) more than the quota's 2 publishes a second over the measured window.
    expect(p.telemetry.generatedPerS / p.devices).toBeGreaterThan(2);
    // 3 devices × 3 sensors, each sampled at least 4 times in the 5 s window (the first at 1 s).
    expect(p.telemetry.generated).toBeGreaterThanOrEqual(3 * 3 * 4);
    // Every generated reading was published and stored; nothing was left in an outbox at stop.
    expect(p.telemetry.unsentAtStop).toBe(0);
    expect(p.telemetry.published).toBe(p.telemetry.generated);
    expect(p.telemetry.stored).toBe(p.telemetry.generated);
    expect(p.telemetry.lost).toBe(0);
    expect(r.zeroLoss).toBe(true);
    expect(summaryLines(r).join('\n')).toMatch(
      new RegExp(
        `local-core throttled: devices: publishes ${p.throttled.devices.publishes}, .*; core \\(limits aws\\): ${p.throttled.core.total} \\(.*publishesPerSecondPerConnection`,
      ),
    );
  }, 120_000);

  it('--limits off (no limits file: off lifts the rates and counts): the same fleet throttles nothing', async () => {
    const r = await createFleetRunner({ options: overQuota({ limits: 'off' }) }).run();
    const p = localPhase(r);
    expect(p.throttled).toEqual({
      devices: { publishes: 0, unacknowledged: 0, connects: 0, shadow: 0 },
      core: { mode: 'off', total: 0, byQuota: {} },
    });
    expect(p.telemetry.lost).toBe(0);
  }, 120_000);
});
