import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkOptions, FLEET_DEFAULTS, type FleetOptions } from '../../src/fleet/options.js';
import { createFleetRunner } from '../../src/fleet/runner.js';
import { type LocalTarget, startLocalTarget } from '../../src/fleet/target.js';

/**
 * `--target aws` end to end, against the local IoT Core standing in for an AWS account: the AWS
 * SDK reaches its control plane through `AWS_ENDPOINT_URL_IOT` (the SDK's own endpoint override),
 * the command and query API are the core's, and devices trust its CA (`--ca-file`) at its MQTT
 * port (`--mqtt-endpoint`). Everything else is the code path a run against AWS takes:
 * `pifleet fleet create` with AWS's rate limits, bundles, SigV4 `execute-api` calls, readback
 * through the query API, `pifleet fleet delete`.
 */
const dir = mkdtempSync(path.join(os.tmpdir(), 'fleet-aws-'));
let core: LocalTarget;
const saved: Record<string, string | undefined> = {};
const setEnv = (k: string, v: string) => {
  saved[k] = process.env[k];
  process.env[k] = v;
};

beforeAll(async () => {
  core = await startLocalTarget({ dataDir: path.join(dir, 'core') });
  const creds = core.services.credentials;
  setEnv('AWS_ENDPOINT_URL_IOT', core.info.http);
  setEnv('AWS_ACCESS_KEY_ID', creds.accessKeyId);
  setEnv('AWS_SECRET_ACCESS_KEY', creds.secretAccessKey);
});

afterAll(async () => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await core?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const options = (o: Partial<FleetOptions>): FleetOptions => ({
  ...FLEET_DEFAULTS,
  target: 'aws',
  region: core.info.region,
  apiUrl: `${core.info.http}/api`,
  mqttEndpoint: `${core.info.mqtt.host}:${core.info.mqtt.port}`,
  caFile: core.info.caFile,
  devices: 3,
  rampPerSecond: 50,
  durationS: 3,
  intervalMs: 200,
  batchReadings: 5,
  batchAgeMs: 1_000,
  outDir: dir,
  drainTimeoutS: 20,
  commandRate: 3,
  ...o,
});

describe('fleet runner, --target aws', () => {
  it('needs a region and the API URL', () => {
    expect(checkOptions({ ...FLEET_DEFAULTS, target: 'aws' })).toEqual([
      '--target aws needs --region',
      '--target aws needs --api-url (the command and query API stage URL)',
    ]);
  });

  it('provisions with the CLI, runs, converges commands, reads back through the query API and deletes the things', async () => {
    const r = await createFleetRunner({ options: options({}) }).run();
    const p = r.phases[0];
    expect(p?.name).toBe('aws');
    expect(p?.connect.everConnected).toBe(3);
    expect(p?.telemetry.generated).toBeGreaterThan(0);
    expect(p?.telemetry.stored).toBe(p?.telemetry.generated);
    expect(p?.telemetry.storedBatches).toBe(p?.telemetry.publishedBatches);
    expect(p?.telemetry.storedVia).toMatch(/query API/);
    expect(p?.telemetry.lost).toBe(0);
    expect(p?.commands?.converged).toBe(p?.commands?.accepted);
    expect(p?.commands?.accepted).toBeGreaterThan(0);
    expect(r.provisioning?.keyType).toMatch(/CreateKeysAndCertificate/);
    expect(r.cleanup).toEqual({ removed: 3, failed: 0, kept: false });
    const left = await core.services.registry.listThings({});
    expect(left.items.filter((t) => t.thingName.startsWith('fleet-'))).toEqual([]);
  });
});
