import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createSystemClock, type ShadowDelta, ShadowError } from '@pifleet/device-agent';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki, startTlsBroker } from '../../../device-agent/test/transport/tls-broker.js';
import { createMqttJsTransport } from '../../src/fleet/mqttjs-transport.js';
import { type FleetIdentity, provisionLocalFleet } from '../../src/fleet/provision.js';
import { type LocalTarget, startLocalTarget } from '../../src/fleet/target.js';
import { createTopicShadowService } from '../../src/fleet/topic-shadow.js';

/** The topic shadow client against the local IoT Core's shadow service, over mqtt.js and mutual TLS. */
const dir = mkdtempSync(path.join(os.tmpdir(), 'topic-shadow-'));
let target: LocalTarget;
let identities: readonly FleetIdentity[];

beforeAll(async () => {
  target = await startLocalTarget({ dataDir: path.join(dir, 'core') });
  const s = target.services;
  ({ identities } = await provisionLocalFleet({
    registry: s.registry,
    ca: s.ca,
    region: s.account.region,
    accountId: s.account.accountId,
    dir: path.join(dir, 'certs'),
    thingNames: ['ts-1', 'ts-2'],
  }));
});

afterAll(async () => {
  await target?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function device(i: number, requestTimeoutMs = 5_000) {
  const id = identities[i] as FleetIdentity;
  const clock = createSystemClock();
  const transport = createMqttJsTransport({
    endpoint: target.info.mqtt.host,
    port: target.info.mqtt.port,
    clientId: id.thingName,
    certFile: id.certFile,
    keyFile: id.keyFile,
    caFile: target.info.caFile,
    reconnectMinMs: 100,
    reconnectMaxMs: 1_000,
  });
  const shadow = createTopicShadowService({ transport, thingName: id.thingName, requestTimeoutMs, clock });
  const up = new Promise<void>((resolve) => transport.on('connected', () => resolve()));
  transport.start();
  await up;
  return { transport, shadow, thingName: id.thingName };
}

describe('topic shadow client on the local IoT Core', () => {
  it('gets nothing before the first report, then reports, reads back and follows deltas', async () => {
    const { transport, shadow, thingName } = await device(0);
    const deltas: ShadowDelta[] = [];
    shadow.onDelta((d) => deltas.push(d));
    expect(await shadow.get()).toBeUndefined();
    const first = await shadow.updateReported({ outputs: { relay: false } });
    expect(first.version).toBe(1);
    expect(await shadow.get()).toEqual({ version: 1, desired: undefined, reported: { outputs: { relay: false } } });

    const desired = await target.services.shadows.updateShadow(
      thingName,
      undefined,
      Buffer.from(JSON.stringify({ state: { desired: { outputs: { relay: true } } } })),
    );
    expect(desired.status).toBe(200);
    const deadline = Date.now() + 5_000;
    while (deltas.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(deltas).toEqual([{ version: 2, state: { outputs: { relay: true } } }]);
    shadow.close();
    await transport.stop();
  });

  it('turns a rejected update into a ShadowError with the service code, and keeps working', async () => {
    const { transport, shadow } = await device(1);
    // Deeper than the shadow service's 6 levels of nesting in `state`.
    const deep = { a: { b: { c: { d: { e: { f: { g: { h: 1 } } } } } } } };
    const err = await shadow.updateReported(deep).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ShadowError);
    expect(err).toMatchObject({ code: 'SHADOW_REJECTED', data: { code: 400 } });
    expect((await shadow.updateReported({ ok: true })).version).toBeGreaterThan(0);
    shadow.close();
    await expect(shadow.get()).rejects.toMatchObject({ code: 'SHADOW_REQUEST_FAILED' });
    await transport.stop();
  });

  it('times out a request nobody answers (a broker without a shadow service)', async () => {
    const pki = await makePki('pi-timeout');
    const broker = await startTlsBroker(pki);
    const transport = createMqttJsTransport({
      endpoint: 'localhost',
      port: broker.port,
      clientId: 'pi-timeout',
      certFile: pki.certFile,
      keyFile: pki.keyFile,
      caFile: pki.caFile,
    });
    const up = new Promise<void>((resolve) => transport.on('connected', () => resolve()));
    transport.start();
    await up;
    const shadow = createTopicShadowService({
      transport,
      thingName: 'pi-timeout',
      requestTimeoutMs: 300,
      clock: createSystemClock(),
    });
    await expect(shadow.get()).rejects.toMatchObject({ code: 'SHADOW_TIMEOUT' });
    shadow.close();
    await transport.stop();
    await broker.close();
    pki.cleanup();
  });
});
