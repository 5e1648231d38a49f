import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSqliteTelemetryStore } from '../../src/adapters/sqlite-telemetry-store.js';
import { compileRule } from '../../src/core/iotsql/index.js';
import { PoisonBatchError, TelemetryStoreError } from '../../src/core/telemetry/errors.js';
import { createIngestHandler } from '../../src/handlers/ingest.js';
import type { ManagedTelemetryStore, TelemetryStore } from '../../src/ports/telemetry-store.js';
import { RULES } from '../../src/rules/definitions.js';
import { batchOf, readingsFrom } from '../../src/testing/telemetry-store-suite.js';
import { logSink } from '../log-sink.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pifleet-ingest-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const T0 = 1_700_000_000_000;
const ingestRule = compileRule(RULES.find((r) => r.name === 'pifleet_telemetry_ingest')?.sql ?? '');

/** What the telemetry rule's Lambda action delivers for a payload published on a topic. */
function ruleEvent(topic: string, payload: unknown): unknown {
  const result = ingestRule.evaluate({ topic, payload: JSON.stringify(payload) });
  if (!result.matched) throw new Error(`ingest rule did not match ${topic}`);
  return result.output;
}

/** A store that fails `putBatch` the first `failures` times, then delegates (a seam, not a mock). */
function flaky(store: TelemetryStore, failures: number, retryable = true): TelemetryStore & { calls: number } {
  const wrapper = {
    calls: 0,
    ...store,
    async putBatch(batch: Parameters<TelemetryStore['putBatch']>[0]) {
      wrapper.calls++;
      if (wrapper.calls <= failures) throw new TelemetryStoreError('injected: throttled', { retryable });
      return store.putBatch(batch);
    },
  };
  return wrapper;
}

let store: ManagedTelemetryStore;
let n = 0;
beforeEach(async () => {
  store = createSqliteTelemetryStore({ file: path.join(dir, `ingest-${++n}.db`) });
  await store.start();
});
afterEach(async () => {
  await store.stop();
});

describe('ingest handler', () => {
  it('stores the batch the telemetry rule delivers, and only once when it is resent', async () => {
    const { logger } = logSink();
    const handle = createIngestHandler({ store, logger });
    const batch = batchOf('pi-01', 3, readingsFrom(T0, 5));
    const event = ruleEvent('pifleet/pi-01/telemetry', batch);
    expect(event).toMatchObject({ topicThing: 'pi-01', seq: 3 });

    await expect(handle(event)).resolves.toEqual({
      thingName: 'pi-01',
      bootId: batch.bootId,
      seq: 3,
      sealedAt: batch.sealedAt,
      readings: 5,
      stored: 5,
      duplicate: false,
    });
    await expect(handle(event)).resolves.toMatchObject({ stored: 0, duplicate: true });
    expect(await store.countReadings('pi-01')).toBe(5);
  });

  it.each([
    ['a JSON string', (b: unknown) => JSON.stringify(b)],
    ['UTF-8 bytes', (b: unknown) => new TextEncoder().encode(JSON.stringify(b))],
    ['a batch without the topic field', (b: unknown) => b],
  ])('accepts %s as the event', async (_label, wrap) => {
    const handle = createIngestHandler({ store, logger: logSink().logger });
    await expect(handle(wrap(batchOf('pi-01', 1, readingsFrom(T0, 2))))).resolves.toMatchObject({ stored: 2 });
  });

  it.each([
    ['a number', 42, ['$']],
    ['null', null, ['$']],
    ['an array', [1, 2], ['$']],
    ['text that is not JSON', 'hello', ['$']],
    ['a batch with no readings and a bad seq', { ...batchOf('pi-01', 1, []), seq: 0 }, ['seq', 'readings']],
    [
      'a batch whose thingName is not the topic thing',
      ruleEvent('pifleet/pi-02/telemetry', batchOf('pi-01', 1, readingsFrom(T0, 1))),
      ['thingName'],
    ],
    ['a non-string topic thing', { ...batchOf('pi-01', 1, readingsFrom(T0, 1)), topicThing: 7 }, ['topicThing']],
    ['an unknown field', { ...batchOf('pi-01', 1, readingsFrom(T0, 1)), extra: true }, ['$']],
  ])('rejects %s as a poison batch, listing every problem, and stores nothing', async (_label, event, paths) => {
    const { logger, lines } = logSink();
    const handle = createIngestHandler({ store, logger });
    const err = await handle(event).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PoisonBatchError);
    const issues = (err as PoisonBatchError).issues;
    for (const p of paths) expect(issues.map((i) => i.path)).toContain(p);
    expect((err as PoisonBatchError).code).toBe('POISON_BATCH');
    expect(await store.countReadings()).toBe(0);
    expect(lines.filter((l) => l.msg === 'batch rejected' && l.level === 40)).toHaveLength(1);
  });

  it('keeps going after a poison batch: the next valid batch is stored', async () => {
    const handle = createIngestHandler({ store, logger: logSink().logger });
    await expect(handle({ v: 2 })).rejects.toBeInstanceOf(PoisonBatchError);
    await expect(
      handle(ruleEvent('pifleet/pi-01/telemetry', batchOf('pi-01', 1, readingsFrom(T0, 3)))),
    ).resolves.toMatchObject({
      stored: 3,
    });
  });

  it('retries a failing store with growing delays and stores the batch once it recovers', async () => {
    const delays: number[] = [];
    const target = flaky(store, 2);
    const handle = createIngestHandler({
      store: target,
      logger: logSink().logger,
      retry: { attempts: 3, delayMs: 10 },
      sleep: async (ms) => {
        delays.push(ms);
      },
    });
    await expect(handle(batchOf('pi-01', 1, readingsFrom(T0, 4)))).resolves.toMatchObject({ stored: 4 });
    expect(target.calls).toBe(3);
    expect(delays).toEqual([10, 20]);
  });

  it('gives up after the last attempt and throws the store error, logging it', async () => {
    const { logger, lines } = logSink();
    const target = flaky(store, 5);
    const handle = createIngestHandler({
      store: target,
      logger,
      retry: { attempts: 3, delayMs: 1 },
      sleep: async () => {},
    });
    await expect(handle(batchOf('pi-01', 1, readingsFrom(T0, 1)))).rejects.toBeInstanceOf(TelemetryStoreError);
    expect(target.calls).toBe(3);
    expect(lines.some((l) => l.msg === 'batch not stored' && l.level === 50)).toBe(true);
  });

  it('does not retry a store error that says retrying cannot help', async () => {
    const target = flaky(store, 1, false);
    const handle = createIngestHandler({ store: target, logger: logSink().logger, sleep: async () => {} });
    await expect(handle(batchOf('pi-01', 1, readingsFrom(T0, 1)))).rejects.toBeInstanceOf(TelemetryStoreError);
    expect(target.calls).toBe(1);
  });

  it('logs stored batches at debug only, never at info', async () => {
    const { logger, lines } = logSink();
    const handle = createIngestHandler({ store, logger });
    await handle(batchOf('pi-01', 1, readingsFrom(T0, 2)));
    await handle(batchOf('pi-01', 1, readingsFrom(T0, 2)));
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      [20, 'batch stored'],
      [20, 'duplicate batch dropped'],
    ]);
  });
});
