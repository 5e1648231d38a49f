import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ListThingPrincipalsCommand } from '@aws-sdk/client-iot';
import { appTopics } from '@pifleet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { portsOf, type RunningCore, startCore, waitForStored } from '../src/core.js';
import { provisionDevice } from '../src/devices.js';
import { removeDir, tempDir } from '../src/index.js';
import { desire, getShadow, part, waitForShadow } from '../src/shadow.js';

/** The kit's core against itself: provisioning, shadows and the telemetry log, through the real SDK clients. */

let dir: string;
let core: RunningCore;

beforeAll(async () => {
  dir = tempDir('testkit');
  core = await startCore(path.join(dir, 'core'));
});

afterAll(async () => {
  await core?.stop();
  removeDir(dir);
});

describe('startCore', () => {
  it('listens on ephemeral ports and answers the control plane through the real SDK client', async () => {
    const { mqttPort, httpPort } = portsOf(core);
    expect(mqttPort).toBeGreaterThan(0);
    expect(httpPort).toBeGreaterThan(0);
    expect(httpPort).not.toBe(mqttPort);
  });

  it('provisionDevice registers the thing with an attached certificate and writes its files (key 0600)', async () => {
    const files = await provisionDevice(core, 'kit-pi', dir);
    expect(files.certFile).toBe(path.join(dir, 'kit-pi', 'certificate.pem.crt'));
    expect(readFileSync(files.certFile, 'utf8')).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(readFileSync(files.keyFile, 'utf8')).toMatch(/PRIVATE KEY-----/);
    expect(statSync(files.keyFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(files.caFile, 'utf8')).toBe(readFileSync(core.info.caFile, 'utf8'));
    const principals = await core.iot.send(new ListThingPrincipalsCommand({ thingName: 'kit-pi' }));
    expect(principals.principals).toHaveLength(1);
  });

  it('desire and waitForShadow go through the data plane; getShadow is undefined for a thing without one', async () => {
    expect(await getShadow(core, 'kit-none')).toBeUndefined();
    const { version } = await desire(core, 'kit-shadow', { outputs: { relay: true } });
    const doc = await waitForShadow(core, 'kit-shadow', (s) => s.state.desired?.outputs !== undefined, 5_000);
    expect(doc.version).toBe(version);
    expect(doc.state.delta).toEqual({ outputs: { relay: true } });
    expect(part(doc, 'outputs')).toEqual({});
    await expect(waitForShadow(core, 'kit-shadow', () => false, 300)).rejects.toThrow(
      /shadow of kit-shadow did not converge in 300 ms; last: \{"/,
    );
  });

  it('logs the telemetry the broker delivers, and waitForStored sees what the ingest rule stored', async () => {
    const batch = {
      v: 1,
      thingName: 'kit-telemetry',
      bootId: 'kit-boot-1',
      seq: 1,
      sealedAt: Date.now(),
      readings: [{ sensor: 'env', ts: Date.now(), metrics: { temperature: 21.5 } }],
    };
    await core.core.services.broker.bus.publish(
      appTopics.telemetry('kit-telemetry'),
      Buffer.from(JSON.stringify(batch)),
    );
    await core.telemetry.waitFor(() => core.telemetry.readings('kit-telemetry') === 1, 5_000, 'the batch');
    expect(await waitForStored(core, 'kit-telemetry', 1, 5_000)).toBe(1);
    await expect(waitForStored(core, 'kit-telemetry', 2, 200)).rejects.toThrow(
      'store holds 1 of 2 readings of kit-telemetry after 200 ms',
    );
  });
});
