import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CreateThingCommand } from '@aws-sdk/client-iot';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createEmfMetrics, EmfMetricsConfigError, withMetrics } from '../../src/adapters/emf-metrics.js';
import { createSqliteTelemetryStore } from '../../src/adapters/sqlite-telemetry-store.js';
import { PoisonBatchError, TelemetryStoreError } from '../../src/core/telemetry/errors.js';
import { createCommandHandler } from '../../src/handlers/command.js';
import { createIngestHandler } from '../../src/handlers/ingest.js';
import { silentLogger } from '../../src/logger.js';
import { CLOUD_METRICS, type CloudMetricName, METRICS_NAMESPACE } from '../../src/ports/metrics.js';
import type { ManagedTelemetryStore, TelemetryStore } from '../../src/ports/telemetry-store.js';
import { type InProcessCore, removeDir, startInProcessCore, tempDir } from '../../src/testing/in-process-core.js';
import { batchOf, readingsFrom } from '../../src/testing/telemetry-store-suite.js';
import { httpApiEvent } from './api-event.js';

/**
 * The EMF adapter over Powertools, alone and under the real handler factories: every line written
 * is parsed and checked against the EMF structure CloudWatch extracts metrics from.
 */

const T0 = 1_700_000_000_000;

type Expected = Partial<Record<CloudMetricName, number | number[]>>;

/** A `write` that keeps the lines, and the lines parsed (each must be one line of JSON). */
function capture() {
  const lines: string[] = [];
  return {
    lines,
    write: (line: string) => void lines.push(line),
    docs: () =>
      lines.map((line) => {
        expect(line).not.toContain('\n');
        return JSON.parse(line) as Record<string, unknown>;
      }),
  };
}

/**
 * Checks one EMF document exactly: the `_aws` envelope (a timestamp between `from` and `to`,
 * namespace, one dimension set), each metric's definition with the unit of CLOUD_METRICS, and no
 * top-level key but the dimensions and the metric values.
 */
function expectEmf(
  doc: Record<string, unknown>,
  expected: Expected,
  dimensions: Record<string, string>,
  window: { from: number; to: number },
): void {
  const aws = doc._aws as { Timestamp: unknown; CloudWatchMetrics: unknown };
  expect(typeof aws.Timestamp).toBe('number');
  expect(aws.Timestamp).toBeGreaterThanOrEqual(window.from);
  expect(aws.Timestamp).toBeLessThanOrEqual(window.to);
  const names = (Object.keys(expected) as CloudMetricName[]).sort((a, b) => a.localeCompare(b));
  // The order of the definitions means nothing to CloudWatch (the adapter puts counts first).
  const byName = (a: { Name: string }, b: { Name: string }) => a.Name.localeCompare(b.Name);
  const sets = aws.CloudWatchMetrics as { Metrics: { Name: string }[] }[];
  expect(sets.map((set) => ({ ...set, Metrics: [...set.Metrics].sort(byName) }))).toEqual([
    {
      Namespace: METRICS_NAMESPACE,
      Dimensions: [Object.keys(dimensions)],
      Metrics: names.map((name) => ({ Name: name, Unit: CLOUD_METRICS[name] })),
    },
  ]);
  const { _aws, ...rest } = doc;
  expect(rest).toEqual({ ...dimensions, ...expected });
}

describe('createEmfMetrics', () => {
  it('writes one EMF line per flush: counts summed, durations one value each, service as the dimension', () => {
    const out = capture();
    const metrics = createEmfMetrics({ serviceName: 'ingest', write: out.write });
    const from = Date.now();
    metrics.add('BatchesStored', 1);
    metrics.add('ReadingsStored', 5);
    metrics.add('IngestLag', 1200);
    metrics.add('BatchesStored', 1);
    metrics.add('ReadingsStored', 3);
    metrics.add('IngestLag', 800);
    metrics.flush();
    const to = Date.now();
    expect(out.lines).toHaveLength(1);
    expectEmf(
      out.docs()[0] ?? {},
      { BatchesStored: 2, ReadingsStored: 8, IngestLag: [1200, 800] },
      { service: 'ingest' },
      { from, to },
    );
  });

  it('writes nothing when nothing was added, and nothing again after a flush cleared the values', () => {
    const out = capture();
    const metrics = createEmfMetrics({ serviceName: 'command', write: out.write });
    metrics.flush();
    expect(out.lines).toEqual([]);
    metrics.add('CommandsAccepted', 1);
    metrics.flush();
    metrics.flush();
    expect(out.lines).toHaveLength(1);
  });

  it('publishes a count of zero (a level such as SilentDevices must report 0, not go missing)', () => {
    const out = capture();
    const metrics = createEmfMetrics({ serviceName: 'silent-devices', write: out.write });
    metrics.add('SilentDevices', 0);
    metrics.flush();
    expect(out.docs()[0]).toMatchObject({ SilentDevices: 0 });
  });

  it('takes every metric of the port with its unit, in one document', () => {
    const out = capture();
    const metrics = createEmfMetrics({ serviceName: 'all', write: out.write });
    const names = Object.keys(CLOUD_METRICS) as CloudMetricName[];
    for (const name of names) metrics.add(name, 2);
    metrics.flush();
    const expected = Object.fromEntries(names.map((n) => [n, 2]));
    expectEmf(out.docs()[0] ?? {}, expected, { service: 'all' }, { from: 0, to: Date.now() });
  });

  it('adds the default dimensions beside service', () => {
    const out = capture();
    const metrics = createEmfMetrics({
      serviceName: 'ingest',
      write: out.write,
      defaultDimensions: { stage: 'prod', region: 'eu-west-1' },
    });
    metrics.add('PoisonBatches', 1);
    metrics.flush();
    expectEmf(
      out.docs()[0] ?? {},
      { PoisonBatches: 1 },
      { service: 'ingest', stage: 'prod', region: 'eu-west-1' },
      { from: 0, to: Date.now() },
    );
  });

  it('splits more than 99 values of a duration over several documents, every value through write', () => {
    const out = capture();
    const metrics = createEmfMetrics({ serviceName: 'ingest', write: out.write });
    const lags = Array.from({ length: 250 }, (_, i) => i);
    for (const lag of lags) metrics.add('IngestLag', lag);
    metrics.add('BatchesStored', 250);
    metrics.flush();
    const docs = out.docs();
    // Had Powertools published a full metric by itself, those values would be missing here.
    expect(docs.map((d) => (d.IngestLag as number[]).length)).toEqual([99, 99, 52]);
    expect(docs.flatMap((d) => d.IngestLag as number[])).toEqual(lags);
    // The summed count goes once, with the first document.
    expect(docs.map((d) => d.BatchesStored)).toEqual([250, undefined, undefined]);
    for (const doc of docs.slice(1)) {
      expect((doc._aws as { CloudWatchMetrics: { Metrics: unknown }[] }).CloudWatchMetrics[0]?.Metrics).toEqual([
        { Name: 'IngestLag', Unit: 'Milliseconds' },
      ]);
    }
  });

  it('drops NaN and infinite values (CloudWatch would reject the whole document) and keeps the rest', () => {
    const out = capture();
    const metrics = createEmfMetrics({ serviceName: 'ingest', write: out.write });
    metrics.add('IngestLag', Number.NaN);
    metrics.add('ReadingsStored', Number.POSITIVE_INFINITY);
    metrics.flush();
    expect(out.lines).toEqual([]);
    metrics.add('IngestLag', Number.NaN);
    metrics.add('IngestLag', 40);
    metrics.add('ReadingsStored', 2);
    metrics.flush();
    expect(out.docs()[0]).toMatchObject({ IngestLag: 40, ReadingsStored: 2 });
  });

  it('loses the values of a flush whose write throws, instead of writing them again later', () => {
    const lines: string[] = [];
    let failing = true;
    const metrics = createEmfMetrics({
      serviceName: 'ingest',
      write: (line) => {
        if (failing) throw new Error('log pipe closed');
        lines.push(line);
      },
    });
    metrics.add('BatchesStored', 1);
    expect(() => metrics.flush()).toThrow('log pipe closed');
    failing = false;
    metrics.add('BatchesDeduplicated', 1);
    metrics.flush();
    expect(lines.map((l) => JSON.parse(l) as Record<string, unknown>)).toEqual([
      expect.objectContaining({ BatchesDeduplicated: 1 }),
    ]);
    expect(JSON.parse(lines[0] ?? '{}')).not.toHaveProperty('BatchesStored');
  });

  it.each([
    ['an empty service name', { serviceName: ' ' }, 'serviceName must not be empty'],
    ['a service dimension', { serviceName: 'x', defaultDimensions: { service: 'y' } }, 'dimension "service"'],
    ['a dimension named like a metric', { serviceName: 'x', defaultDimensions: { IngestLag: 'y' } }, "metric's name"],
    ['an empty dimension value', { serviceName: 'x', defaultDimensions: { stage: '' } }, 'empty name or value'],
    [
      'more dimensions than EMF takes',
      { serviceName: 'x', defaultDimensions: Object.fromEntries(Array.from({ length: 29 }, (_, i) => [`d${i}`, 'v'])) },
      'at most 28 default dimensions',
    ],
  ])('refuses %s with a coded error', (_what, options, problem) => {
    let caught: unknown;
    try {
      createEmfMetrics(options);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(EmfMetricsConfigError);
    expect(caught).toMatchObject({ name: 'EmfMetricsConfigError', code: 'METRICS_CONFIG' });
    expect((caught as EmfMetricsConfigError).data.problems).toEqual([expect.stringContaining(problem)]);
  });
});

describe('withMetrics', () => {
  it('flushes after every invocation and returns the result', async () => {
    const out = capture();
    const metrics = createEmfMetrics({ serviceName: 'command', write: out.write });
    const handler = withMetrics(metrics, async (n: number) => {
      metrics.add('CommandsAccepted', n);
      expect(out.lines).toHaveLength(n - 1); // not flushed before the handler returns
      return n * 10;
    });
    await expect(handler(1)).resolves.toBe(10);
    await expect(handler(2)).resolves.toBe(20);
    expect(out.docs().map((d) => d.CommandsAccepted)).toEqual([1, 2]);
  });

  it('flushes when the handler throws, and rethrows the handler error itself', async () => {
    const out = capture();
    const metrics = createEmfMetrics({ serviceName: 'ingest', write: out.write });
    const boom = new Error('boom');
    const handler = withMetrics(metrics, async () => {
      metrics.add('StoreFailures', 1);
      throw boom;
    });
    await expect(handler(undefined)).rejects.toBe(boom);
    expect(out.docs()).toEqual([expect.objectContaining({ StoreFailures: 1 })]);
  });

  it('keeps the invocation outcome when the flush fails', async () => {
    const metrics = createEmfMetrics({
      serviceName: 'ingest',
      write: () => {
        throw new Error('log pipe closed');
      },
    });
    const ok = withMetrics(metrics, async () => {
      metrics.add('BatchesStored', 1);
      return 'stored';
    });
    await expect(ok(undefined)).resolves.toBe('stored');
    const boom = new Error('boom');
    const failing = withMetrics(metrics, async () => {
      metrics.add('PoisonBatches', 1);
      throw boom;
    });
    await expect(failing(undefined)).rejects.toBe(boom);
  });
});

describe('the ingest handler with EMF metrics (real SQLite store)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pifleet-emf-ingest-'));
  let store: ManagedTelemetryStore;
  let n = 0;
  beforeEach(async () => {
    store = createSqliteTelemetryStore({ file: path.join(dir, `ingest-${++n}.db`) });
    await store.start();
  });
  afterEach(async () => {
    await store.stop();
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const NOW = T0 + 60_000 + 2_345; // batchOf seals at T0 + 60 s

  function ingest(target: TelemetryStore = store) {
    const out = capture();
    const metrics = createEmfMetrics({ serviceName: 'ingest', write: out.write });
    const handler = withMetrics(
      metrics,
      createIngestHandler({
        store: target,
        logger: silentLogger(),
        metrics,
        now: () => NOW,
        retry: { attempts: 2, delayMs: 1 },
        sleep: async () => {},
      }),
    );
    return { handler, out };
  }

  it('a stored batch, then its redelivery: one line per invocation, with the readings and the lag', async () => {
    const { handler, out } = ingest();
    const batch = batchOf('pi-01', 1, readingsFrom(T0, 5));
    const from = Date.now();
    await expect(handler(batch)).resolves.toMatchObject({ stored: 5, duplicate: false });
    await expect(handler(batch)).resolves.toMatchObject({ stored: 0, duplicate: true });
    const window = { from, to: Date.now() };
    const [stored, duplicate, ...more] = out.docs();
    expect(more).toEqual([]);
    expectEmf(
      stored ?? {},
      { BatchesStored: 1, ReadingsStored: 5, IngestLag: NOW - batch.sealedAt },
      { service: 'ingest' },
      window,
    );
    expect(NOW - batch.sealedAt).toBe(2_345);
    expectEmf(duplicate ?? {}, { BatchesDeduplicated: 1 }, { service: 'ingest' }, window);
  });

  it('a poison batch: PoisonBatches 1 is written and the PoisonBatchError rethrown', async () => {
    const { handler, out } = ingest();
    await expect(handler({ v: 1, thingName: 'pi-01' })).rejects.toBeInstanceOf(PoisonBatchError);
    expectEmf(out.docs()[0] ?? {}, { PoisonBatches: 1 }, { service: 'ingest' }, { from: 0, to: Date.now() });
    expect(out.lines).toHaveLength(1);
  });

  it('a store that keeps failing: StoreFailures 1 is written and the store error rethrown', async () => {
    const failing: TelemetryStore = {
      ...store,
      putBatch: async () => {
        throw new TelemetryStoreError('injected: throttled', { retryable: true });
      },
    };
    const { handler, out } = ingest(failing);
    await expect(handler(batchOf('pi-01', 1, readingsFrom(T0, 2)))).rejects.toBeInstanceOf(TelemetryStoreError);
    expectEmf(out.docs()[0] ?? {}, { StoreFailures: 1 }, { service: 'ingest' }, { from: 0, to: Date.now() });
    expect(await store.countReadings()).toBe(0);
  });
});

describe('the command handler with EMF metrics (in-process local IoT Core)', () => {
  let run: InProcessCore;
  let dataDir: string;
  beforeAll(async () => {
    dataDir = tempDir('emf-command');
    run = await startInProcessCore(dataDir);
    await run.iot.send(new CreateThingCommand({ thingName: 'pi-01' }));
  }, 60_000);
  afterAll(async () => {
    await run?.stop();
    removeDir(dataDir);
  });

  const event = (method: string, rawPath: string, body?: unknown) =>
    httpApiEvent(method, rawPath, {
      routeKey: `${method} /things/{thing}/desired`,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  it('counts accepted, rejected (400) and conflicting (409) writes, one line each; a read writes none', async () => {
    const out = capture();
    const metrics = createEmfMetrics({ serviceName: 'command', write: out.write });
    const handler = withMetrics(
      metrics,
      createCommandHandler({
        dataPlane: run.data,
        controlPlane: run.iot,
        store: { getConnectivity: async () => undefined },
        logger: silentLogger(),
        metrics,
      }),
    );
    const from = Date.now();
    const accepted = await handler(event('PUT', '/things/pi-01/desired', { desired: { logLevel: 'debug' } }));
    expect(accepted.statusCode).toBe(200);
    const rejected = await handler(event('PUT', '/things/pi-01/desired', { desired: { logLevel: 'loud' } }));
    expect(rejected.statusCode).toBe(400);
    const conflicting = await handler(
      event('PUT', '/things/pi-01/desired', { desired: { logLevel: 'warn' }, expectedVersion: 99 }),
    );
    expect(conflicting.statusCode).toBe(409);
    const read = await handler(event('GET', '/things/pi-01/shadow'));
    expect(read.statusCode).toBe(200);
    const window = { from, to: Date.now() };

    const docs = out.docs();
    expect(docs).toHaveLength(3);
    expectEmf(docs[0] ?? {}, { CommandsAccepted: 1 }, { service: 'command' }, window);
    expectEmf(docs[1] ?? {}, { CommandsRejected: 1 }, { service: 'command' }, window);
    expectEmf(docs[2] ?? {}, { CommandsConflicting: 1 }, { service: 'command' }, window);
  });
});
