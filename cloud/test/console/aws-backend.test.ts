import { IoTClient } from '@aws-sdk/client-iot';
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { describe, expect, it } from 'vitest';
import { type CommandApiClient, createCommandApiClient } from '../../src/adapters/command-api-client.js';
import { createIotWebSocketConnection } from '../../src/adapters/iot-websocket.js';
import { createAwsConsoleBackend, presenceOfPage, readingsOfPage } from '../../src/console/aws-backend.js';
import type { ConsoleBackend } from '../../src/console/backend.js';
import { type Logger, silentLogger } from '../../src/logger.js';
import type { InProcessCore } from '../../src/testing/in-process-core.js';
import { coreForFile } from '../http/harness.js';
import { logSink } from '../log-sink.js';

/**
 * The console's AWS backend against the local IoT Core standing in for an account: the real IoT
 * control- and data-plane clients and the command/query API with SigV4, as `pifleet console`
 * builds them. (Its WebSocket feed, and the whole console in a browser, are the e2e suite's
 * `console-aws.test.ts`; here the connection is made but never started.)
 */

let run: InProcessCore;
let backend: ConsoleBackend;
/** Every request the backend made of the command/query API, as `METHOD path`. */
const apiCalls: string[] = [];
/** Paths the API answers 404 for, as API Gateway does for a route the stack does not have. */
const missingRoutes = new Set<string>();
let api: CommandApiClient;

/** The real SigV4 client of the core's API, counting requests and answering 404 for {@link missingRoutes}. */
function countingApi(r: InProcessCore): CommandApiClient {
  const real = createCommandApiClient({
    baseUrl: `${r.info.http}/api`,
    region: r.info.region,
    credentials: { ...r.core.services.credentials },
  });
  return {
    request(method, path, options) {
      apiCalls.push(`${method} ${path}`);
      if (missingRoutes.has(path)) return Promise.resolve({ status: 404, text: '{"message":"Not Found"}' });
      return real.request(method, path, options);
    },
  };
}

/** The backend as `pifleet console` builds it, on the core standing in for the account. */
function makeBackend(client: CommandApiClient, log: Logger): ConsoleBackend {
  const { region } = run.info;
  const credentials = { ...run.core.services.credentials };
  const config = { region, credentials, endpoint: run.info.http, maxAttempts: 1 };
  return createAwsConsoleBackend({
    controlPlane: new IoTClient(config),
    dataPlane: new IoTDataPlaneClient(config),
    api: client,
    live: createIotWebSocketConnection({
      url: 'wss://127.0.0.1:1/mqtt',
      region,
      credentials: async () => credentials,
      clientId: 'pifleet-console-test',
      log: silentLogger(),
    }),
    log,
    now: Date.now,
    listTtlMs: 0,
  });
}

coreForFile('console-aws-backend', (r) => {
  run = r;
  api = countingApi(r);
  backend = makeBackend(api, silentLogger());
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
    // A thing with a record that the console did not ask for is left out too.
    await run.core.services.telemetry.putConnectivity({
      thingName: 'pi-other',
      connected: true,
      clientId: 'pi-other',
      timestamp: t,
      eventType: 'connected',
    });
    apiCalls.length = 0;
    expect(await backend.presence(['pi-b1', 'pi-b2'])).toEqual([
      { thingName: 'pi-b1', connected: false, at: t, reason: 'MQTT_KEEP_ALIVE_TIMEOUT', lastReadingAt: t - 5_000 },
    ]);
    // One listing call for the fleet, not a connectivity and a latest call per thing.
    expect(apiCalls).toEqual(['GET /presence']);
  });

  it('pages the listing 250 things a call', async () => {
    const t = Date.now() - 10_000;
    const names = Array.from({ length: 260 }, (_, i) => `pi-many-${String(i).padStart(3, '0')}`);
    for (const thingName of names) {
      await run.core.services.telemetry.putConnectivity({
        thingName,
        connected: true,
        clientId: thingName,
        timestamp: t,
        eventType: 'connected',
      });
    }
    apiCalls.length = 0;
    const found = await backend.presence(names);
    expect(found.map((p) => p.thingName)).toEqual(names);
    expect(apiCalls).toEqual(['GET /presence', 'GET /presence']);
  });

  it('against a stack without GET /presence, reads presence thing by thing and says so once', async () => {
    const { logger, lines } = logSink();
    const old = makeBackend(api, logger);
    missingRoutes.add('/presence');
    try {
      apiCalls.length = 0;
      const first = await old.presence(['pi-b1', 'pi-b2']);
      expect(first).toEqual([expect.objectContaining({ thingName: 'pi-b1', reason: 'MQTT_KEEP_ALIVE_TIMEOUT' })]);
      expect(apiCalls.sort()).toEqual([
        'GET /presence',
        'GET /things/pi-b1/connectivity',
        'GET /things/pi-b1/latest',
        'GET /things/pi-b2/connectivity',
        'GET /things/pi-b2/latest',
      ]);
      expect(await old.presence(['pi-b1'])).toEqual(first);
    } finally {
      missingRoutes.delete('/presence');
    }
    const said = lines.filter((l) => String(l.msg).includes('predates GET /presence'));
    expect(said).toHaveLength(1);
    expect(said[0]).toMatchObject({ level: 30, status: 404 });
  });

  it('leaves presence out, and says why, when the listing fails', async () => {
    const { logger, lines } = logSink();
    const failing = makeBackend(
      { request: () => Promise.resolve({ status: 500, text: '{"message":"internal error"}' }) },
      logger,
    );
    expect(await failing.presence(['pi-b1'])).toEqual([]);
    expect(lines.find((l) => l.msg === 'presence listing not read for the console')).toMatchObject({
      level: 40,
      err: expect.objectContaining({ code: 'PRESENCE_LISTING_FAILED' }),
    });
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

describe('presenceOfPage (the presence listing, as outside input)', () => {
  it('keeps well-formed items of the wanted things only; no key reaches a prototype', () => {
    const page = JSON.parse(
      '{"items":[{"thingName":"__proto__","connected":true,"at":1,"lastReadingAt":2},' +
        '{"thingName":"pi-1","connected":"yes","at":1},{"thingName":7,"connected":true},null,' +
        '{"thingName":"pi-2","connected":false,"at":"3","reason":5,"lastReadingAt":4,"__proto__":{"polluted":true}},' +
        '{"thingName":"pi-3","connected":true,"at":5}]}',
    );
    const found = presenceOfPage(page, new Set(['__proto__', 'pi-1', 'pi-2']));
    expect(found).toEqual([
      { thingName: '__proto__', connected: true, at: 1, lastReadingAt: 2 },
      { thingName: 'pi-2', connected: false, lastReadingAt: 4 },
    ]);
    expect(Object.getPrototypeOf(found[0])).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(presenceOfPage({ items: {} }, new Set(['pi-1']))).toEqual([]);
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
