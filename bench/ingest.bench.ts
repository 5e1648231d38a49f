/**
 * Ingest throughput: telemetry batches through the ingest handler (validation + store), into the
 * SQLite store (local IoT Core default, a file on disk) and into the DynamoDB store against
 * dynalite (an in-memory DynamoDB-compatible server on 127.0.0.1, same process).
 *
 *   npx -y pnpm@10 bench ingest
 *   BENCH_BATCHES=400 BENCH_READINGS=50 npx -y pnpm@10 bench ingest
 *
 * Prints a table and writes bench/results/ingest.json. Dynalite is a functional stand-in, not a
 * performance model of DynamoDB: its figure bounds what the adapter and SDK cost on one machine,
 * not what AWS sustains (which scales with partitions and capacity).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDynamoDbTelemetryStore, createTelemetryTable } from '../cloud/src/adapters/dynamodb-telemetry-store.js';
import { createSqliteTelemetryStore } from '../cloud/src/adapters/sqlite-telemetry-store.js';
import { createIngestHandler } from '../cloud/src/handlers/ingest.js';
import { silentLogger } from '../cloud/src/logger.js';
import type { TelemetryStore } from '../cloud/src/ports/telemetry-store.js';
import { startDynalite } from '../cloud/src/testing/dynalite.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const BATCHES = positive('BENCH_BATCHES', 200);
const READINGS = positive('BENCH_READINGS', 50);
const THINGS = 20;
const T0 = 1_700_000_000_000;

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  const n = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
  return n;
}

/** Events as the telemetry rule delivers them: the batch plus the topic's thing. */
function makeEvents(bootId: string): Record<string, unknown>[] {
  return Array.from({ length: BATCHES }, (_, b) => {
    const thingName = `bench-${String(b % THINGS).padStart(3, '0')}`;
    const seq = Math.floor(b / THINGS) + 1;
    const readings = Array.from({ length: READINGS }, (_, i) => {
      const ts = T0 + b * READINGS * 100 + i * 100;
      return i % 5 === 4
        ? { sensor: 'door', ts, metrics: { open: i % 2 === 0 } }
        : {
            sensor: 'bme280',
            ts,
            metrics: { temperature: 20 + (i % 7) / 10, humidity: 40 + (i % 3), pressure: 1013.2 },
          };
    });
    return { v: 1, thingName, bootId, seq, sealedAt: T0 + b * 10_000, readings, topicThing: thingName };
  });
}

interface RunResult {
  readonly batches: number;
  readonly readingsPerBatch: number;
  readonly concurrency: number;
  readonly seconds: number;
  readonly readingsPerSecond: number;
  readonly batchesPerSecond: number;
  readonly batchLatencyMs: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly duplicateBatchesPerSecond: number;
  readonly storedReadings: number;
}

async function run(store: TelemetryStore, concurrency: number, bootId: string): Promise<RunResult> {
  const handle = createIngestHandler({ store, logger: silentLogger() });
  const events = makeEvents(bootId);
  const latencies: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next < events.length) {
      const event = events[next++];
      const t = performance.now();
      const outcome = await handle(event);
      latencies.push(performance.now() - t);
      if (outcome.stored !== READINGS) throw new Error(`stored ${outcome.stored} of ${READINGS}`);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;

  // Resend everything: every batch must be recognised as a duplicate.
  next = 0;
  const dupStarted = performance.now();
  const dupWorker = async () => {
    while (next < events.length) {
      const outcome = await handle(events[next++]);
      if (!outcome.duplicate) throw new Error('resend was stored again');
    }
  };
  await Promise.all(Array.from({ length: concurrency }, dupWorker));
  const dupSeconds = (performance.now() - dupStarted) / 1000;

  latencies.sort((a, b) => a - b);
  const pct = (p: number) => round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0);
  return {
    batches: BATCHES,
    readingsPerBatch: READINGS,
    concurrency,
    seconds: round(seconds),
    readingsPerSecond: Math.round((BATCHES * READINGS) / seconds),
    batchesPerSecond: Math.round(BATCHES / seconds),
    batchLatencyMs: { p50: pct(0.5), p99: pct(0.99), max: round(latencies.at(-1) ?? 0) },
    duplicateBatchesPerSecond: Math.round(BATCHES / dupSeconds),
    storedReadings: 0,
  };
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}

async function main(): Promise<void> {
  const results: Record<string, RunResult> = {};
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-bench-ingest-'));
  try {
    const sqlite = createSqliteTelemetryStore({ file: path.join(dir, 'telemetry.db') });
    await sqlite.start();
    const r = await run(sqlite, 1, 'boot-sqlite-0001');
    results.sqlite = { ...r, storedReadings: await sqlite.countReadings() };
    await sqlite.stop();

    const dynalite = await startDynalite();
    try {
      for (const concurrency of [1, 8]) {
        const client = dynalite.client();
        const tableName = `bench-ingest-c${concurrency}`;
        await createTelemetryTable(client, tableName);
        const store = createDynamoDbTelemetryStore({ client, tableName, writeConcurrency: 4, retentionDays: 90 });
        const res = await run(store, concurrency, `boot-dynamo-c${concurrency}`);
        results[`dynalite_c${concurrency}`] = { ...res, storedReadings: await store.countReadings() };
      }
    } finally {
      await dynalite.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  for (const [name, r] of Object.entries(results)) {
    if (r.storedReadings !== BATCHES * READINGS) {
      throw new Error(`${name}: stored ${r.storedReadings} readings, expected ${BATCHES * READINGS}`);
    }
  }

  const doc = { batches: BATCHES, readingsPerBatch: READINGS, things: THINGS, ...results };
  mkdirSync(path.join(here, 'results'), { recursive: true });
  writeFileSync(path.join(here, 'results', 'ingest.json'), `${JSON.stringify(doc, null, 2)}\n`);

  process.stdout.write(`ingest: ${BATCHES} batches × ${READINGS} readings through the ingest handler\n`);
  process.stdout.write('store              conc  readings/s  batches/s  p50 ms  p99 ms  resends/s\n');
  for (const [name, r] of Object.entries(results)) {
    process.stdout.write(
      `${name.padEnd(18)} ${String(r.concurrency).padStart(4)}  ${String(r.readingsPerSecond).padStart(10)}  ${String(r.batchesPerSecond).padStart(9)}  ${r.batchLatencyMs.p50.toFixed(2).padStart(6)}  ${r.batchLatencyMs.p99.toFixed(2).padStart(6)}  ${String(r.duplicateBatchesPerSecond).padStart(9)}\n`,
    );
  }
}

await main();
