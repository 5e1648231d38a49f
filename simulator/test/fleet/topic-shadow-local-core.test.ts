import {
  createMqttJsTransport,
  createSystemClock,
  createTopicShadowService,
  type ShadowDelta,
  ShadowRejectedError,
} from '@pifleet/device-agent';
import { describe, expect, it } from 'vitest';
import type { FleetIdentity } from '../../src/fleet/provision.js';
import type { LocalTarget } from '../../src/fleet/target.js';
import { localFleetForFile } from '../local-fleet.js';

/**
 * The topic shadow client (device-agent's, which the fleet's mqtt.js devices use) against the local
 * IoT Core's real shadow service, over mqtt.js and mutual TLS. Its contract against a scripted
 * responder is in device-agent's tests.
 */
let target: LocalTarget;
let identities: readonly FleetIdentity[];
localFleetForFile('topic-shadow-', ['ts-1', 'ts-2'], (fleet) => {
  ({ target, identities } = fleet);
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
    const delta = new Promise<void>((resolve) =>
      shadow.onDelta((d) => {
        deltas.push(d);
        resolve();
      }),
    );
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
    await delta;
    expect(deltas).toEqual([{ version: 2, state: { outputs: { relay: true } } }]);
    shadow.close();
    await transport.stop();
  });

  it('turns a rejected update into a ShadowRejectedError with the service code, and keeps working', async () => {
    const { transport, shadow } = await device(1);
    // Deeper than the shadow service's 6 levels of nesting in `state`.
    const deep = { a: { b: { c: { d: { e: { f: { g: { h: 1 } } } } } } } };
    const err = await shadow.updateReported(deep).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ShadowRejectedError);
    expect(err).toMatchObject({ code: 'SHADOW_REJECTED', serviceCode: 400, data: { code: 400 } });
    expect((await shadow.updateReported({ ok: true })).version).toBeGreaterThan(0);
    shadow.close();
    await expect(shadow.get()).rejects.toMatchObject({ code: 'SHADOW_CLOSED' });
    await transport.stop();
  });
});
