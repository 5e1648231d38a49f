import { appTopics, type Reading, toTelemetryBatchV2 } from '@pifleet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createThingCatalog } from '../../src/console/catalog.js';
import { createFleetState, type FleetState } from '../../src/console/fleet-state.js';
import { createLiveFeed, type LiveFeed } from '../../src/console/live-feed.js';
import { createLocalConsoleBackend } from '../../src/console/local-backend.js';
import { createSseHub } from '../../src/console/sse.js';
import { silentLogger } from '../../src/logger.js';
import { type RunningCore, removeDir, startCore, tempDir } from '../http/harness.js';

/**
 * The console's live feed with telemetry batch v2 on a running core's bus: a valid v2 batch
 * reaches the fleet picture as the readings it carries (the feed decodes with the protocol's
 * decodeTelemetryBatch, which expands v2), a v2 batch that fails validation does not.
 */

let dir: string;
let run: RunningCore;
let fleet: FleetState;
let feed: LiveFeed;
const clock = 1_700_000_000_000;

beforeAll(async () => {
  dir = tempDir('console-feed-v2');
  run = await startCore(dir);
  const { registry, broker, shadows } = run.core.services;
  registry.createThing({ thingName: 'pi-v2' });
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

const v2Text = (readings: Reading[], seq: number) =>
  JSON.stringify(toTelemetryBatchV2({ thingName: 'pi-v2', bootId: 'boot-feed-v2', seq, sealedAt: clock, readings }));

describe('console live feed, telemetry batch v2', () => {
  it('keeps a valid v2 batch: summary and history hold its readings', async () => {
    const readings: Reading[] = [
      { sensor: 'bme280', ts: clock - 3_000, metrics: { temperature: 21.5, humidity: 40 } },
      { sensor: 'door', ts: clock - 2_000, metrics: { open: true } },
      { sensor: 'bme280', ts: clock - 1_000, metrics: { temperature: 22, humidity: 41 } },
    ];
    await run.core.services.broker.bus.publish(appTopics.telemetry('pi-v2'), v2Text(readings, 1));
    expect(fleet.summary('pi-v2')?.lastTelemetry).toEqual({
      at: clock - 1_000,
      metrics: { 'bme280.temperature': 22, 'bme280.humidity': 41, 'door.open': true },
    });
    expect(fleet.history('pi-v2', clock)).toEqual(readings);
  });

  it.each([
    [
      'a peak that disagrees with its column',
      (b: Record<string, unknown>) => {
        const [g] = b.sensors as Record<string, unknown>[];
        return { ...b, sensors: [{ ...g, peak: { temperature: 99 } }] };
      },
    ],
    [
      'a __proto__ metric',
      (b: Record<string, unknown>) =>
        JSON.parse(JSON.stringify(b).replace('"temperature":[', '"__proto__":[')) as Record<string, unknown>,
    ],
    [
      'columns of unequal length',
      (b: Record<string, unknown>) => {
        const [g] = b.sensors as Record<string, unknown>[];
        return { ...b, sensors: [{ ...g, dt: [0, 1] }] };
      },
    ],
  ])('drops a v2 batch with %s', async (_label, mutate) => {
    const before = fleet.history('pi-v2', clock).length;
    const batch = JSON.parse(
      v2Text([{ sensor: 'bme280', ts: clock - 500, metrics: { temperature: 30 } }], 2),
    ) as Record<string, unknown>;
    await run.core.services.broker.bus.publish(appTopics.telemetry('pi-v2'), JSON.stringify(mutate(batch)));
    expect(fleet.history('pi-v2', clock)).toHaveLength(before);
  });
});
