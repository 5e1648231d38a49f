import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { summaryLines } from '../../src/fleet/command.js';
import { FLEET_DEFAULTS, type FleetOptions } from '../../src/fleet/options.js';
import { createFleetRunner, type FleetResult } from '../../src/fleet/runner.js';

/**
 * A fleet over IoT Core's publish quota, small and cheap: the core's publishes-per-second-per-
 * connection quota set to 2 with a limits file, and each device sealing three one-reading batches
 * at once every 2 s (three sensors), sent at once (`--publish-rate 20`): three publishes in a
 * second on one connection, over the quota of two. The report counts the throttling, from the
 * devices (PUBACK 0x97, MQTT 5) and from the core's counters, and nothing is lost: each throttled
 * batch stays in its outbox and is sent after a backoff (1.5 batches a second on average, under
 * the quota). The same run with `--limits off` throttles nothing.
 */
const out = mkdtempSync(path.join(os.tmpdir(), 'fleet-quotas-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));
const limitsFile = path.join(out, 'limits.json');
writeFileSync(limitsFile, JSON.stringify({ publishesPerSecondPerConnection: 2 }));

const overQuota = (o: Partial<FleetOptions>): FleetOptions => ({
  ...FLEET_DEFAULTS,
  devices: 3,
  rampPerSecond: 30,
  durationS: 6,
  sensors: 3,
  intervalMs: 2_000,
  batchReadings: 1,
  batchAgeMs: 60_000,
  publishPerSecond: 20,
  transport: 'mqtt',
  protocol: '5',
  outDir: out,
  latencyThings: 3,
  drainTimeoutS: 20,
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
    expect(p.telemetry.generated).toBeGreaterThanOrEqual(18);
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
