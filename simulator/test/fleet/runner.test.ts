import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FLEET_DEFAULTS, type FleetOptions } from '../../src/fleet/options.js';
import { createFleetRunner, type FleetResult, type PhaseResult } from '../../src/fleet/runner.js';
import { writeReport } from '../../src/report/report.js';

/**
 * Small real fleets (real agents, aws-crt over mutual TLS, the in-process local IoT Core with its
 * rules engine and SQLite store), a few seconds each. Every reading is accounted for.
 */
const out = mkdtempSync(path.join(os.tmpdir(), 'fleet-runner-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

const small = (o: Partial<FleetOptions>): FleetOptions => ({
  ...FLEET_DEFAULTS,
  devices: 5,
  rampPerSecond: 50,
  durationS: 3,
  intervalMs: 200,
  batchReadings: 5,
  batchAgeMs: 1_000,
  outDir: out,
  latencyThings: 5,
  drainTimeoutS: 20,
  reconnectMaxMs: 2_000,
  ...o,
});

const run = (o: Partial<FleetOptions>) => createFleetRunner({ options: small(o) }).run();
const phase = (r: FleetResult, name: PhaseResult['name'] = 'local-core') => {
  const p = r.phases.find((x) => x.name === name);
  if (!p) throw new Error(`no phase ${name}`);
  return p;
};

describe('fleet runner against the in-process local IoT Core', () => {
  it('accounts for every reading exactly, times it, and converges commands', async () => {
    const r = await run({ devices: 4, commandRate: 4 });
    const p = phase(r);
    // The defaults: the device SDK's client, over MQTT 5.
    expect(p.deviceHosts).toMatchObject({ transport: 'crt', protocol: '5' });
    expect(p.connect.everConnected).toBe(4);
    expect(p.connect.connectFailures).toBe(0);
    // 1 sensor every 200 ms for ≥ 3 s on 4 devices.
    expect(p.telemetry.generated).toBeGreaterThanOrEqual(4 * 14);
    expect(p.telemetry.published).toBe(p.telemetry.generated);
    expect(p.telemetry.stored).toBe(p.telemetry.generated);
    expect(p.telemetry.lost).toBe(0);
    expect(p.telemetry.storedBatches).toBe(p.telemetry.publishedBatches);
    expect(p.latency.sealedToStoredMs?.count).toBe(p.telemetry.storedBatches);
    expect(p.latency.sampleToStoredMs?.count).toBe(p.telemetry.stored);
    // A reading waits at most a batch age (plus transport) before it is stored.
    expect(p.latency.sampleToStoredMs?.p50).toBeGreaterThan(0);
    expect(p.latency.sampleToStoredMs?.max).toBeLessThan(5_000);
    expect(p.commands?.sent).toBeGreaterThan(0);
    expect(p.commands?.failed).toBe(0);
    expect(p.commands?.converged).toBe(p.commands?.sent);
    expect(p.commands?.roundTripMs?.p50).toBeGreaterThan(0);
    expect(p.series.length).toBeGreaterThan(2);
    expect(r.zeroLoss).toBe(true);
    expect(r.cleanup).toEqual({ removed: 4, failed: 0, kept: false });
    expect(r.provisioning?.keyType).toBe('EC P-256');
    expect(existsSync(r.provisioning?.dataDir ?? '/nonexistent')).toBe(false);

    const files = await writeReport(r, out);
    expect(JSON.parse(readFileSync(files.json, 'utf8')).phases[0].telemetry.lost).toBe(0);
    expect(readFileSync(files.html, 'utf8')).toContain('command round trip');
  });

  it('mqtt.js devices: exact accounting, and commands converge through the topic shadow', async () => {
    const r = await run({ devices: 4, commandRate: 4, transport: 'mqtt' });
    const p = phase(r);
    expect(p.deviceHosts).toMatchObject({ transport: 'mqtt', protocol: '5' });
    expect(p.connect.everConnected).toBe(4);
    expect(p.telemetry.generated).toBeGreaterThanOrEqual(4 * 14);
    expect(p.telemetry.stored).toBe(p.telemetry.generated);
    expect(p.telemetry.lost).toBe(0);
    expect(p.commands?.sent).toBeGreaterThan(0);
    expect(p.commands?.failed).toBe(0);
    expect(p.commands?.converged).toBe(p.commands?.sent);
    expect(r.zeroLoss).toBe(true);
  });

  it.each(['crt', 'mqtt'] as const)('%s devices over MQTT 3.1.1: exact accounting', async (transport) => {
    const r = await run({ devices: 3, transport, protocol: '3.1.1' });
    const p = phase(r);
    expect(p.deviceHosts).toMatchObject({ transport, protocol: '3.1.1' });
    expect(r.options.protocol).toBe('3.1.1');
    expect(p.connect.everConnected).toBe(3);
    expect(p.connect.connectFailures).toBe(0);
    expect(p.telemetry.generated).toBeGreaterThanOrEqual(3 * 14);
    expect(p.telemetry.stored).toBe(p.telemetry.generated);
    expect(p.telemetry.lost).toBe(0);
    expect(r.zeroLoss).toBe(true);
  });

  it('mqtt.js devices: a core restart under command load loses no reading and leaves no command pending', async () => {
    const r = await run({
      devices: 4,
      transport: 'mqtt',
      commandRate: 6,
      faults: [{ kind: 'restart-core' }],
      durationS: 4,
    });
    const p = phase(r);
    expect(p.connect.reconnects).toBeGreaterThanOrEqual(4);
    expect(p.telemetry.generated).toBeGreaterThan(0);
    expect(p.telemetry.stored).toBe(p.telemetry.generated);
    expect(p.telemetry.lost).toBe(0);
    // A write that fails while the core restarts is counted and its thing gets no more commands
    // (its desired value is unknown); every accepted one converges.
    expect(p.commands?.pending).toBe(0);
    expect(p.commands?.converged).toBe(p.commands?.accepted);
  });

  it('restart of the core mid-run: devices reconnect and nothing is lost', async () => {
    const r = await run({ faults: [{ kind: 'restart-core' }], durationS: 4 });
    const p = phase(r);
    expect(p.faults).toEqual([expect.objectContaining({ kind: 'restart-core', affected: 5 })]);
    expect(p.connect.interruptions).toBeGreaterThanOrEqual(5);
    expect(p.connect.reconnects).toBeGreaterThanOrEqual(5);
    expect(p.telemetry.generated).toBeGreaterThan(0);
    expect(p.telemetry.stored).toBe(p.telemetry.generated);
    expect(p.telemetry.lost).toBe(0);
  });

  it('dropped connections: the devices reconnect and nothing is lost', async () => {
    const r = await run({ faults: [{ kind: 'drop-connections', fraction: 0.4 }] });
    const p = phase(r);
    expect(p.faults).toEqual([expect.objectContaining({ kind: 'drop-connections', affected: 2 })]);
    expect(p.connect.reconnects).toBeGreaterThanOrEqual(2);
    expect(p.connect.connectedAtEnd).toBe(5);
    expect(p.telemetry.lost).toBe(0);
    expect(p.telemetry.stored).toBe(p.telemetry.generated);
  });

  it('sensor failure: the failed devices report unhealthy sensors, the others stay healthy, nothing is lost', async () => {
    const r = await run({ faults: [{ kind: 'sensor-failure', fraction: 0.4 }], durationS: 4 });
    const p = phase(r);
    expect(p.sensorFailure).toEqual({
      failedDevices: 2,
      reportedUnhealthy: 2,
      reportedUnhealthyAmongFailed: 2,
      reportedUnhealthyAmongHealthy: 0,
    });
    expect(p.telemetry.lost).toBe(0);
    expect(p.telemetry.stored).toBe(p.telemetry.generated);
  });

  it('devices in child processes, with the bare-broker baseline in the same run', async () => {
    const r = await run({ devices: 6, workers: 2, baseline: true });
    const core = phase(r);
    const bare = phase(r, 'bare-broker');
    expect(core.deviceHosts).toEqual({ mode: 'child-processes', hosts: 2, transport: 'crt', protocol: '5' });
    expect(core.resources.cpuSplit).toMatch(/device-host processes/);
    expect(core.resources.fleetRssMaxMB).toBeGreaterThan(0);
    for (const p of [core, bare]) {
      expect(p.connect.everConnected).toBe(6);
      expect(p.telemetry.lost).toBe(0);
      expect(p.telemetry.stored).toBe(p.telemetry.generated);
    }
    expect(bare.telemetry.storedVia).toMatch(/bare broker/);
    expect(r.overhead?.coreCpuRatio).toBeGreaterThan(0);
  });
});
