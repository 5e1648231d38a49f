import { IoTClient } from '@aws-sdk/client-iot';
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { describe, expect, it } from 'vitest';
import { createCommandApiClient } from '../../src/adapters/command-api-client.js';
import { createIotWebSocketConnection } from '../../src/adapters/iot-websocket.js';
import { createAwsConsoleBackend, readingsOfPage } from '../../src/console/aws-backend.js';
import type { ConsoleBackend } from '../../src/console/backend.js';
import { silentLogger } from '../../src/logger.js';
import type { InProcessCore } from '../../src/testing/in-process-core.js';
import { coreForFile } from '../http/harness.js';

/**
 * The console's AWS backend against the local IoT Core standing in for an account: the real IoT
 * control- and data-plane clients and the command/query API with SigV4, as `pifleet console`
 * builds them. (Its WebSocket feed, and the whole console in a browser, are the e2e suite's
 * `console-aws.test.ts`; here the connection is made but never started.)
 */

let run: InProcessCore;
let backend: ConsoleBackend;
coreForFile('console-aws-backend', (r) => {
  run = r;
  const { region } = r.info;
  const credentials = { ...r.core.services.credentials };
  const config = { region, credentials, endpoint: r.info.http, maxAttempts: 1 };
  backend = createAwsConsoleBackend({
    controlPlane: new IoTClient(config),
    dataPlane: new IoTDataPlaneClient(config),
    api: createCommandApiClient({ baseUrl: `${r.info.http}/api`, region, credentials }),
    live: createIotWebSocketConnection({
      url: 'wss://127.0.0.1:1/mqtt',
      region,
      credentials: async () => credentials,
      clientId: 'pifleet-console-test',
      log: silentLogger(),
    }),
    log: silentLogger(),
    now: Date.now,
    listTtlMs: 0,
  });
});

async function ingest(thingName: string, seq: number, readings: { sensor: string; ts: number; metrics: object }[]) {
  const batch = { v: 1, thingName, bootId: 'b1', seq, sealedAt: Date.now(), readings };
  await run.core.services.telemetry.putBatch(batch as Parameters<typeof run.core.services.telemetry.putBatch>[0]);
}

describe('console AWS backend', () => {
  it('lists registered things through ListThings and tells registered from unknown through DescribeThing', async () => {
    run.core.services.registry.createThing({ thingName: 'pi-b1' });
    run.core.services.registry.createThing({ thingName: 'pi-b2' });
    expect(await backend.listThings()).toEqual(expect.arrayContaining(['pi-b1', 'pi-b2']));
    expect(await backend.hasThing('pi-b1')).toBe(true);
    expect(await backend.hasThing('pi-nobody')).toBe(false);
  });

  it('reads a shadow through GetThingShadow, and null for a thing without one', async () => {
    expect(await backend.readShadow('pi-b2')).toBeNull();
    await run.core.services.shadows.updateShadow(
      'pi-b1',
      undefined,
      Buffer.from(JSON.stringify({ state: { reported: { logLevel: 'info' } } })),
    );
    expect(await backend.readShadow('pi-b1')).toMatchObject({ state: { reported: { logLevel: 'info' } }, version: 1 });
  });

  it('writes desired state through the command API: accepted, conflicting, invalid', async () => {
    const ok = await backend.writeDesired('pi-b1', { desired: { logLevel: 'debug' }, version: 1, clientToken: 't1' });
    expect(ok).toEqual({ status: 200, version: 2 });
    const stale = await backend.writeDesired('pi-b1', { desired: { logLevel: 'warn' }, version: 1, clientToken: 't2' });
    expect(stale.status).toBe(409);
    expect(stale).toMatchObject({ message: expect.stringMatching(/no longer at version 1/) });
    const bad = await backend.writeDesired('pi-b1', { desired: { logLevel: 'loud' }, clientToken: 't3' });
    expect(bad.status).toBe(400);
    const doc = await backend.readShadow('pi-b1');
    expect(doc).toMatchObject({ state: { desired: { logLevel: 'debug' } }, version: 2 });
  });

  it('reads presence and the newest reading time through the API, and leaves out things it knows nothing of', async () => {
    const t = Date.now() - 60_000;
    await run.core.services.telemetry.putConnectivity({
      thingName: 'pi-b1',
      connected: false,
      clientId: 'pi-b1',
      timestamp: t,
      eventType: 'disconnected',
      disconnectReason: 'MQTT_KEEP_ALIVE_TIMEOUT',
    });
    await ingest('pi-b1', 1, [{ sensor: 'env', ts: t - 5_000, metrics: { temperature: 21.5 } }]);
    expect(await backend.presence(['pi-b1', 'pi-b2'])).toEqual([
      { thingName: 'pi-b1', connected: false, at: t, reason: 'MQTT_KEEP_ALIVE_TIMEOUT', lastReadingAt: t - 5_000 },
    ]);
  });

  it('reads stored readings of a window through the query API, oldest first', async () => {
    const t = Date.now() - 30_000;
    await ingest('pi-b2', 1, [
      { sensor: 'env', ts: t, metrics: { temperature: 20 } },
      { sensor: 'env', ts: t + 1_000, metrics: { temperature: 20.5, humidity: 40 } },
    ]);
    const readings = await backend.history?.('pi-b2', t - 1, t + 2_000);
    expect(readings).toEqual([
      { sensor: 'env', ts: t, metrics: { temperature: 20 } },
      { sensor: 'env', ts: t + 1_000, metrics: { temperature: 20.5, humidity: 40 } },
    ]);
  });
});

describe('readingsOfPage (the query API answer, as outside input)', () => {
  it('keeps well-formed items and skips the rest; no key reaches a prototype', () => {
    const page = JSON.parse(
      '{"items":[{"sensor":"env","ts":1,"metrics":{"t":1,"__proto__":{"polluted":true},"ok":true}},' +
        '{"sensor":"env","ts":"2","metrics":{}},{"sensor":7,"ts":3,"metrics":{}},{"sensor":"env","ts":4,"metrics":[1]},' +
        '{"sensor":"env","ts":5,"metrics":{"nested":{"x":1},"s":"on","__proto__":3}},null]}',
    );
    const readings = readingsOfPage(page);
    expect(readings.map((r) => r.ts)).toEqual([1, 5]);
    // A metric named __proto__ stays an own value; it sets no prototype.
    expect(Object.entries(readings[1]?.metrics ?? {})).toEqual([
      ['s', 'on'],
      ['__proto__', 3],
    ]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(readings[0]?.metrics)).toBe(Object.prototype);
    expect(readingsOfPage({ items: 'nope' })).toEqual([]);
    expect(readingsOfPage({})).toEqual([]);
  });
});
