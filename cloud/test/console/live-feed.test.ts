import { appTopics, type Reading } from '@pifleet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createThingCatalog } from '../../src/console/catalog.js';
import { createFleetState, type FleetState } from '../../src/console/fleet-state.js';
import { createLiveFeed, type LiveFeed } from '../../src/console/live-feed.js';
import { createLocalConsoleBackend } from '../../src/console/local-backend.js';
import { createSseHub } from '../../src/console/sse.js';
import { silentLogger } from '../../src/logger.js';
import { type RunningCore, removeDir, startCore, tempDir } from '../http/harness.js';

/**
 * A console live feed on the bus of a running local core: what devices publish as telemetry
 * (hostile payloads included) reaches the fleet picture only when it is a valid batch of the
 * topic's registered thing, and the picture stays bounded.
 */

let dir: string;
let run: RunningCore;
let fleet: FleetState;
let feed: LiveFeed;
let clock = 1_700_000_000_000;

beforeAll(async () => {
  dir = tempDir('console-feed');
  run = await startCore(dir);
  const { registry, broker, shadows } = run.core.services;
  for (const name of ['pi-feed', 'pi-other', 'pi-big']) registry.createThing({ thingName: name });
  fleet = createFleetState();
  const now = () => clock;
  const backend = createLocalConsoleBackend({ registry, broker, shadows });
  const catalog = createThingCatalog({ backend, fleet, now });
  feed = createLiveFeed({ bus: backend, catalog, hub: createSseHub(), now, log: silentLogger(), flushMs: 5 });
  await feed.start();
});
afterAll(async () => {
  await feed?.stop();
  await run?.stop();
  removeDir(dir);
});

/** Publishes on the core's bus; in-process subscribers have run when it resolves. */
async function publish(thingName: string, payload: string | Buffer): Promise<void> {
  await run.core.services.broker.bus.publish(appTopics.telemetry(thingName), payload);
}

function batchText(thingName: string, readings: unknown[], seq = 1): string {
  return JSON.stringify({ v: 1, thingName, bootId: 'boot-feed-01', seq, sealedAt: clock, readings });
}

/** A reading time the history and the summary would take (newer than anything sent before). */
const FRESH = 1_700_000_000_000 - 500;
const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;

describe('console live feed on a core bus', () => {
  it('keeps a valid batch: summary and history', async () => {
    const readings: Reading[] = [
      { sensor: 'bme280', ts: clock - 2_000, metrics: { temperature: 21.5, humidity: 40 } },
      { sensor: 'door', ts: clock - 1_000, metrics: { open: true } },
    ];
    await publish('pi-feed', batchText('pi-feed', readings));
    expect(fleet.summary('pi-feed')?.lastTelemetry).toEqual({
      at: clock - 1_000,
      metrics: { 'bme280.temperature': 21.5, 'bme280.humidity': 40, 'door.open': true },
    });
    expect(fleet.history('pi-feed', clock)).toEqual(readings);
  });

  it.each([
    ['not JSON', 'not json {'],
    ['empty', ''],
    ['10,000-deep JSON', deep(10_000)],
    [
      '10,000-deep JSON inside a metric',
      `{"v":1,"thingName":"pi-feed","bootId":"boot-feed-01","seq":9,"sealedAt":1,"readings":[{"sensor":"s","ts":${FRESH},"metrics":{"a":${deep(10_000)}}}]}`,
    ],
    [
      'a __proto__ metric',
      `{"v":1,"thingName":"pi-feed","bootId":"boot-feed-01","seq":9,"sealedAt":1,"readings":[{"sensor":"s","ts":${FRESH},"metrics":{"__proto__":{"polluted":true}}}]}`,
    ],
    [
      'a __proto__ sensor',
      `{"v":1,"thingName":"pi-feed","bootId":"boot-feed-01","seq":9,"sealedAt":1,"readings":[{"sensor":"__proto__","ts":${FRESH},"metrics":{"a":1}}]}`,
    ],
    [
      'a __proto__ key in the batch',
      `{"__proto__":{"polluted":true},"v":1,"thingName":"pi-feed","bootId":"boot-feed-01","seq":9,"sealedAt":1,"readings":[{"sensor":"s","ts":${FRESH},"metrics":{"a":1}}]}`,
    ],
    ['another thing named in the batch', batchText('pi-other', [{ sensor: 's', ts: FRESH, metrics: { a: 1 } }])],
    ['a metric that is a string', batchText('pi-feed', [{ sensor: 's', ts: FRESH, metrics: { a: 'hot' } }])],
    ['no readings', batchText('pi-feed', [])],
    [
      'more than IoT Core accepts (200 KB)',
      batchText(
        'pi-feed',
        Array.from({ length: 3_000 }, (_, i) => ({ sensor: 's', ts: FRESH + i, metrics: { a: i, b: i, c: i } })),
      ),
    ],
    ['bytes that are not UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d])],
  ])('ignores %s and keeps what it had', async (_name, payload) => {
    const before = JSON.stringify([fleet.summary('pi-feed'), fleet.history('pi-feed', clock)]);
    await publish('pi-feed', payload);
    expect(JSON.stringify([fleet.summary('pi-feed'), fleet.history('pi-feed', clock)])).toBe(before);
    expect(Object.keys(Object.prototype)).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('ignores telemetry of a thing that is not registered (adds nothing)', async () => {
    await publish('pi-stranger', batchText('pi-stranger', [{ sensor: 's', ts: FRESH, metrics: { a: 1 } }]));
    expect(fleet.has('pi-stranger')).toBe(false);
  });

  it('keeps a large valid batch within the history bounds, the newest readings', async () => {
    const readings = Array.from({ length: 1_000 }, (_, i) => ({
      sensor: 'bme280',
      ts: clock - 60_000 + i * 10,
      metrics: { temperature: i / 10, humidity: 40, pressure: 1013 },
    }));
    const text = batchText('pi-big', readings);
    expect(Buffer.byteLength(text)).toBeLessThan(128 * 1024);
    await publish('pi-big', text);
    const history = fleet.history('pi-big', clock);
    expect(history).toHaveLength(300);
    expect(history).toEqual(readings.slice(-300));
    expect(fleet.summary('pi-big')?.lastTelemetry?.metrics['bme280.temperature']).toBe(99.9);
  });

  it('drops history older than the window when it is asked for', async () => {
    clock += 11 * 60_000;
    expect(fleet.history('pi-big', clock)).toEqual([]);
    // The summary keeps the last values: it is not history.
    expect(fleet.summary('pi-big')?.lastTelemetry?.metrics['bme280.temperature']).toBe(99.9);
  });
});
