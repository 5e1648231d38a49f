import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSqliteTelemetryStore } from '../../src/adapters/sqlite-telemetry-store.js';
import { TelemetryStoreError } from '../../src/core/telemetry/errors.js';
import {
  createSilentDevicesHandler,
  LOGGED_SILENT_THINGS,
  type SilentDevicesHandlerDeps,
  silenceThresholdFromEnv,
} from '../../src/handlers/silent-devices.js';
import type { CloudMetricName, CloudMetrics } from '../../src/ports/metrics.js';
import type { ConnectivityRecord, ManagedTelemetryStore, TelemetryStore } from '../../src/ports/telemetry-store.js';
import { batchOf } from '../../src/testing/telemetry-store-suite.js';
import { logSink } from '../log-sink.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pifleet-silent-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const NOW = 1_700_000_000_000;
const MIN = 60_000;
const THRESHOLD = 15 * MIN;

/** The metrics port, recording what the handler adds. */
function recordingMetrics(): CloudMetrics & { added: [CloudMetricName, number][] } {
  const added: [CloudMetricName, number][] = [];
  return { added, add: (name, value) => void added.push([name, value]) };
}

const presence = (thingName: string, connected: boolean, minutesAgo: number): ConnectivityRecord => ({
  thingName,
  connected,
  clientId: thingName,
  timestamp: NOW - minutesAgo * MIN,
  eventType: connected ? 'connected' : 'disconnected',
});

/** Stores one reading of `thingName` sampled `minutesAgo`. */
async function readingAt(store: TelemetryStore, thingName: string, minutesAgo: number, seq = 1): Promise<void> {
  await store.putBatch(
    batchOf(thingName, seq, [{ sensor: 'bme280', ts: NOW - minutesAgo * MIN, metrics: { temperature: 21 } }]),
  );
}

/** The store, counting the things `latest` is asked about (a seam, not a mock). */
function counting(store: TelemetryStore) {
  const asked: string[] = [];
  const wrapper: SilentDevicesHandlerDeps['store'] = {
    listConnectivity: (listing) => store.listConnectivity(listing),
    latest: (thingName) => {
      asked.push(thingName);
      return store.latest(thingName);
    },
  };
  return { store: wrapper, asked };
}

let store: ManagedTelemetryStore;
let n = 0;
beforeEach(async () => {
  store = createSqliteTelemetryStore({ file: path.join(dir, `silent-${++n}.db`) });
  await store.start();
});
afterEach(async () => {
  await store.stop();
});

function handlerWith(overrides: Partial<SilentDevicesHandlerDeps> = {}) {
  const metrics = recordingMetrics();
  const sink = logSink();
  const handle = createSilentDevicesHandler({
    store,
    now: () => NOW,
    thresholdMs: THRESHOLD,
    metrics,
    logger: sink.logger,
    ...overrides,
  });
  return { handle, metrics, lines: sink.lines };
}

describe('silent-devices handler', () => {
  it('counts the silent things of a mixed fleet, asks for readings only where they decide, and names them at warn', async () => {
    await store.putConnectivity(presence('gone-long', false, 60));
    await store.putConnectivity(presence('gone-briefly', false, 5));
    await store.putConnectivity(presence('just-connected', true, 2));
    await store.putConnectivity(presence('healthy', true, 120));
    await readingAt(store, 'healthy', 1);
    await store.putConnectivity(presence('hung', true, 120));
    await readingAt(store, 'hung', 40);
    await store.putConnectivity(presence('mute', true, 30));
    // Readings without a presence event: not in the fleet listing, so not judged.
    await readingAt(store, 'never-connected', 500);

    const seam = counting(store);
    const { handle, metrics, lines } = handlerWith({ store: seam.store, pageSize: 2 });
    const outcome = await handle({ source: 'aws.events' });

    expect(outcome).toEqual({
      checked: 6,
      silent: 3,
      byReason: { disconnected: 1, 'no-telemetry': 2 },
      first: [
        { thingName: 'gone-long', reason: 'disconnected', silentForMs: 60 * MIN },
        { thingName: 'hung', reason: 'no-telemetry', silentForMs: 40 * MIN },
        { thingName: 'mute', reason: 'no-telemetry', silentForMs: 30 * MIN },
      ],
    });
    expect(metrics.added).toEqual([['SilentDevices', 3]]);
    // Disconnected things and things connected for less than the threshold need no query.
    expect(seam.asked.sort()).toEqual(['healthy', 'hung', 'mute']);
    const warn = lines.filter((l) => l.msg === 'silent devices');
    expect(warn).toHaveLength(1);
    expect(warn[0]).toMatchObject({
      level: 40,
      component: 'silent-devices',
      checked: 6,
      silent: 3,
      more: 0,
      thresholdMs: THRESHOLD,
      things: outcome.first,
    });
  });

  it('publishes 0 and logs at info when nothing is silent, and for an empty fleet', async () => {
    const empty = handlerWith();
    await expect(empty.handle({})).resolves.toMatchObject({ checked: 0, silent: 0 });
    expect(empty.metrics.added).toEqual([['SilentDevices', 0]]);

    await store.putConnectivity(presence('pi-01', true, 1));
    const { handle, metrics, lines } = handlerWith();
    await expect(handle({})).resolves.toMatchObject({ checked: 1, silent: 0, first: [] });
    expect(metrics.added).toEqual([['SilentDevices', 0]]);
    expect(lines.filter((l) => l.level === 40)).toEqual([]);
    expect(lines.find((l) => l.msg === 'no silent devices')).toMatchObject({ level: 30, checked: 1 });
  });

  it(`counts every silent thing across pages but names only the first ${LOGGED_SILENT_THINGS}`, async () => {
    const names = Array.from({ length: 250 }, (_, i) => `pi-${String(i).padStart(4, '0')}`);
    for (const [i, name] of names.entries()) await store.putConnectivity(presence(name, i % 5 !== 0, 60));
    // Every fifth thing is disconnected; the connected ones never stored a reading: all 250 silent.
    const { handle, metrics, lines } = handlerWith({ pageSize: 64, concurrency: 4 });
    const outcome = await handle({});
    expect(outcome.checked).toBe(250);
    expect(outcome.silent).toBe(250);
    expect(outcome.byReason).toEqual({ disconnected: 50, 'no-telemetry': 200 });
    expect(outcome.first.map((t) => t.thingName)).toEqual(names.slice(0, LOGGED_SILENT_THINGS));
    expect(metrics.added).toEqual([['SilentDevices', 250]]);
    const warn = lines.find((l) => l.msg === 'silent devices') as { things: unknown[]; more: number };
    expect(warn.things).toHaveLength(LOGGED_SILENT_THINGS);
    expect(warn.more).toBe(150);
  });

  it('judges every thing at one instant, read once per run', async () => {
    await store.putConnectivity(presence('pi-01', false, 10));
    let reads = 0;
    let clock = NOW;
    const { handle } = handlerWith({
      now: () => {
        reads++;
        return clock;
      },
    });
    await expect(handle({})).resolves.toMatchObject({ silent: 0 });
    clock = NOW + 6 * MIN;
    await expect(handle({})).resolves.toMatchObject({ silent: 1, first: [{ silentForMs: 16 * MIN }] });
    expect(reads).toBe(2);
  });

  it('fails the run without publishing when the store fails, and starts no query after the failure', async () => {
    for (let i = 0; i < 40; i++) await store.putConnectivity(presence(`pi-${String(i).padStart(2, '0')}`, true, 60));
    let asked = 0;
    const failing: SilentDevicesHandlerDeps['store'] = {
      listConnectivity: (listing) => store.listConnectivity(listing),
      async latest(thingName) {
        asked++;
        if (thingName === 'pi-03') throw new TelemetryStoreError('injected: throttled');
        return store.latest(thingName);
      },
    };
    const { handle, metrics } = handlerWith({ store: failing, concurrency: 2 });
    await expect(handle({})).rejects.toBeInstanceOf(TelemetryStoreError);
    expect(metrics.added).toEqual([]);
    expect(asked).toBeLessThan(8);
  });

  it('stops a listing that hands back the token it was given instead of looping', async () => {
    const stuck: SilentDevicesHandlerDeps['store'] = {
      listConnectivity: async () => ({ items: [presence('pi-01', false, 60)], nextToken: 'same' }),
      latest: (thingName) => store.latest(thingName),
    };
    const { handle, metrics } = handlerWith({ store: stuck });
    await expect(handle({})).rejects.toMatchObject({ code: 'LISTING_STUCK' });
    expect(metrics.added).toEqual([]);
  });

  it.each([
    ['a zero threshold', { thresholdMs: 0 }],
    ['a negative threshold', { thresholdMs: -1 }],
    ['a NaN threshold', { thresholdMs: Number.NaN }],
    ['zero concurrency', { concurrency: 0 }],
  ])('refuses %s', (_label, overrides) => {
    expect(() => handlerWith(overrides)).toThrow(expect.objectContaining({ code: 'SILENT_DEVICES_CONFIG' }));
  });
});

describe('SILENT_AFTER_MINUTES', () => {
  it.each([
    ['unset', undefined, 15 * MIN],
    ['empty', '', 15 * MIN],
    ['30', '30', 30 * MIN],
    ['a fraction', '0.5', 30_000],
    ['a week', '10080', 10_080 * MIN],
  ])('%s → its threshold in ms', (_label, value, expected) => {
    expect(silenceThresholdFromEnv({ SILENT_AFTER_MINUTES: value })).toBe(expected);
  });

  it.each([['0'], ['-5'], ['soon'], ['10081'], ['Infinity']])('refuses %s', (value) => {
    expect(() => silenceThresholdFromEnv({ SILENT_AFTER_MINUTES: value })).toThrow(
      expect.objectContaining({ name: 'HandlerConfigError', code: 'HANDLER_CONFIG' }),
    );
  });
});
