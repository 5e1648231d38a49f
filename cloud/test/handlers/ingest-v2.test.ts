import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Reading, toTelemetryBatchV2 } from '@pifleet/protocol';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSqliteTelemetryStore } from '../../src/adapters/sqlite-telemetry-store.js';
import { compileRule } from '../../src/core/iotsql/index.js';
import { PoisonBatchError } from '../../src/core/telemetry/errors.js';
import { decodeIngestEvent } from '../../src/core/telemetry/ingest.js';
import { createIngestHandler } from '../../src/handlers/ingest.js';
import type { ManagedTelemetryStore } from '../../src/ports/telemetry-store.js';
import { RULES } from '../../src/rules/definitions.js';
import { batchOf, readingsFrom } from '../../src/testing/telemetry-store-suite.js';
import { logSink } from '../log-sink.js';

/**
 * The ingest handler with telemetry batch v2: what the ingest rule hands the Lambda for a v2
 * payload is validated, expanded into v1's readings and stored in the real SQLite store, once.
 */

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pifleet-ingest-v2-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const T0 = 1_700_000_000_000;
const ingestRule = compileRule(RULES.find((r) => r.name === 'pifleet_telemetry_ingest')?.sql ?? '');

function ruleEvent(topic: string, payload: unknown): unknown {
  const result = ingestRule.evaluate({ topic, payload: JSON.stringify(payload) });
  if (!result.matched) throw new Error(`ingest rule did not match ${topic}`);
  return result.output;
}

const v2Of = (thingName: string, seq: number, readings: Reading[]) => {
  const v1 = batchOf(thingName, seq, readings);
  return toTelemetryBatchV2({ ...v1, readings });
};

let store: ManagedTelemetryStore;
let n = 0;
beforeEach(async () => {
  store = createSqliteTelemetryStore({ file: path.join(dir, `ingest-${++n}.db`) });
  await store.start();
});
afterEach(async () => {
  await store.stop();
});

const all = async (thingName: string) =>
  (await store.query({ thingName, from: 0, to: T0 * 2, limit: 1000 })).items.map((r) => ({
    sensor: r.sensor,
    ts: r.ts,
    metrics: r.metrics,
  }));

describe('ingest handler, telemetry batch v2', () => {
  it('stores the readings of a v2 batch the telemetry rule delivers, and only once when it is resent', async () => {
    const handle = createIngestHandler({ store, logger: logSink().logger });
    const readings = readingsFrom(T0, 9);
    const event = ruleEvent('pifleet/pi-01/telemetry', v2Of('pi-01', 3, readings));
    expect(event).toMatchObject({ v: 2, topicThing: 'pi-01', seq: 3 });
    await expect(handle(event)).resolves.toMatchObject({ thingName: 'pi-01', seq: 3, readings: 9, stored: 9 });
    await expect(handle(event)).resolves.toMatchObject({ stored: 0, duplicate: true });
    expect(await store.countReadings('pi-01')).toBe(9);
    const byTime = (a: { ts: number }, b: { ts: number }) => a.ts - b.ts;
    expect((await all('pi-01')).sort(byTime)).toEqual([...readings].sort(byTime));
  });

  it('v1 and v2 batches of one thing are stored side by side; the identity is the same in both', async () => {
    const handle = createIngestHandler({ store, logger: logSink().logger });
    await handle(ruleEvent('pifleet/pi-01/telemetry', batchOf('pi-01', 1, readingsFrom(T0, 2))));
    await handle(ruleEvent('pifleet/pi-01/telemetry', v2Of('pi-01', 2, readingsFrom(T0 + 10_000, 2))));
    // The same (thing, boot, seq) in the other encoding is a resend, not a new batch.
    await expect(
      handle(ruleEvent('pifleet/pi-01/telemetry', v2Of('pi-01', 1, readingsFrom(T0, 2)))),
    ).resolves.toMatchObject({ duplicate: true, stored: 0 });
    expect(await store.countReadings('pi-01')).toBe(4);
  });

  it.each([
    [
      'a peak that is not the column highest',
      (b: ReturnType<typeof v2Of>) => ({
        ...b,
        sensors: [{ ...b.sensors[0], peak: { temperature: 99, humidity: 40 } }],
      }),
      ['sensors[0].peak.temperature'],
    ],
    [
      'columns of unequal length',
      (b: ReturnType<typeof v2Of>) => ({ ...b, sensors: [{ ...b.sensors[0], dt: [0] }] }),
      ['sensors[0].metrics.temperature', 'sensors[0].metrics.humidity'],
    ],
    ['no groups', (b: ReturnType<typeof v2Of>) => ({ ...b, sensors: [] }), ['sensors']],
    ['a v2 batch with v1 readings', (b: ReturnType<typeof v2Of>) => ({ ...b, readings: [] }), ['$']],
  ])('rejects %s as a poison batch, listing every problem, and stores nothing', async (_label, mutate, paths) => {
    const handle = createIngestHandler({ store, logger: logSink().logger });
    const batch = v2Of('pi-01', 1, [
      { sensor: 'bme280', ts: T0, metrics: { temperature: 20, humidity: 40 } },
      { sensor: 'bme280', ts: T0 + 1000, metrics: { temperature: 21, humidity: 40 } },
    ]);
    const err = await handle(ruleEvent('pifleet/pi-01/telemetry', mutate(batch))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PoisonBatchError);
    const issues = (err as PoisonBatchError).issues.map((i) => i.path);
    for (const p of paths) expect(issues).toContain(p);
    expect(await store.countReadings()).toBe(0);
  });

  it('refuses a v2 batch whose thingName is not the topic thing, and takes a v2 string or bytes event', () => {
    const batch = v2Of('pi-01', 1, readingsFrom(T0, 3));
    const wrong = decodeIngestEvent(ruleEvent('pifleet/pi-02/telemetry', batch));
    expect(wrong.ok).toBe(false);
    if (!wrong.ok) expect(wrong.issues.map((i) => i.path)).toEqual(['thingName']);
    const text = decodeIngestEvent(JSON.stringify(batch));
    expect(text.ok && text.value.readings).toHaveLength(3);
    const bytes = decodeIngestEvent(new TextEncoder().encode(JSON.stringify(batch)));
    expect(bytes.ok && bytes.value.readings).toHaveLength(3);
  });
});
