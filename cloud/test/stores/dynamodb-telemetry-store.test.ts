import { type DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDynamoDbTelemetryStore,
  createTelemetryTable,
  TELEMETRY_TABLE_KEYS,
} from '../../src/adapters/dynamodb-telemetry-store.js';
import { TelemetryStoreError } from '../../src/core/telemetry/errors.js';
import { type DynaliteServer, startDynalite } from '../../src/testing/dynalite.js';
import { batchOf, describeTelemetryStore, readingsFrom } from '../../src/testing/telemetry-store-suite.js';

let dynalite: DynaliteServer;
beforeAll(async () => {
  dynalite = await startDynalite();
});
afterAll(async () => {
  await dynalite?.stop();
});

interface BatchWriteArgs {
  input: { RequestItems?: Record<string, unknown[]> };
}

/**
 * Fault injection through the real SDK client's middleware stack: the store sends real
 * requests to dynalite; the middleware trims a BatchWriteItem request and reports the rest as
 * UnprocessedItems (what DynamoDB does under throttling), or fails one outright.
 */
function injectFaults(client: DynamoDBClient) {
  let plan: 'none' | 'partial' | 'failSecond' = 'none';
  let seen = 0;
  let fired = 0;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName !== 'BatchWriteItemCommand' || plan === 'none') return next(args);
      const input = (args as unknown as BatchWriteArgs).input;
      if (plan === 'failSecond') {
        if (++seen < 2) return next(args);
        plan = 'none';
        fired++;
        throw Object.assign(new Error('injected: connection reset'), { name: 'InjectedNetworkError' });
      }
      plan = 'none';
      fired++;
      const [table, requests = []] = Object.entries(input.RequestItems ?? {})[0] ?? [];
      if (table === undefined) return next(args);
      const keep = requests.slice(0, Math.ceil(requests.length / 2));
      const drop = requests.slice(keep.length);
      const result = await next({ ...args, input: { ...input, RequestItems: { [table]: keep } } } as typeof args);
      (result.output as { UnprocessedItems?: Record<string, unknown[]> }).UnprocessedItems = { [table]: drop };
      return result;
    },
    { step: 'serialize', priority: 'high', name: 'pifleetFaultInjection' },
  );
  return {
    partialWriteOnce() {
      plan = 'partial';
    },
    failSecondWriteOnce() {
      plan = 'failSecond';
      seen = 0;
    },
    fired: () => fired,
  };
}

let tables = 0;
async function freshStore(options: { writeConcurrency?: number; retentionDays?: number } = {}) {
  const client = dynalite.client();
  const tableName = `telemetry-${++tables}`;
  await createTelemetryTable(client, tableName);
  const faults = injectFaults(client);
  const store = createDynamoDbTelemetryStore({
    client,
    tableName,
    clock: { now: () => 1_700_000_100_000 },
    retry: { baseDelayMs: 1, maxDelayMs: 5 },
    writeConcurrency: 1,
    ...options,
  });
  await store.start();
  return { client, tableName, faults, store };
}

describeTelemetryStore('dynamodb (dynalite)', async () => {
  const { store, faults } = await freshStore();
  return {
    store,
    faults,
    async teardown() {
      await store.stop();
    },
  };
});

describe('DynamoDB telemetry store', () => {
  it('writes TTL attributes when a retention is set, on readings and batch markers', async () => {
    const { client, tableName, store } = await freshStore({ retentionDays: 30 });
    const ts = 1_700_000_000_000;
    await store.putBatch(batchOf('pi-01', 1, readingsFrom(ts, 2)));
    const out = await client.send(new ScanCommand({ TableName: tableName }));
    const items = out.Items ?? [];
    const first = (prefix: string) => items.find((i) => i[TELEMETRY_TABLE_KEYS.sortKey]?.S?.startsWith(prefix));
    // Scan returns one partition in sort-key order: the first reading is the one at `ts`.
    expect(first('R#')?.[TELEMETRY_TABLE_KEYS.ttlAttribute]?.N).toBe(String(ts / 1000 + 30 * 86_400));
    expect(first('B#')?.[TELEMETRY_TABLE_KEYS.ttlAttribute]?.N).toBe(String(1_700_000_100_000 / 1000 + 30 * 86_400));
    // Latest values never expire.
    expect(first('L#')?.[TELEMETRY_TABLE_KEYS.ttlAttribute]).toBeUndefined();
  });

  it('gives up with a retryable store error when items stay unprocessed, and a retry completes the batch', async () => {
    const client = dynalite.client();
    const tableName = `telemetry-${++tables}`;
    await createTelemetryTable(client, tableName);
    const faults = injectFaults(client);
    const store = createDynamoDbTelemetryStore({ client, tableName, retry: { maxAttempts: 1, baseDelayMs: 1 } });
    faults.partialWriteOnce();
    const batch = batchOf('pi-01', 1, readingsFrom(1_700_000_000_000, 10));
    const err = await store.putBatch(batch).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TelemetryStoreError);
    expect((err as TelemetryStoreError).retryable).toBe(true);
    expect((err as TelemetryStoreError).data).toMatchObject({ unprocessed: 5 });
    await expect(store.putBatch(batch)).resolves.toEqual({ stored: 10, duplicate: false });
    expect(await store.countReadings('pi-01')).toBe(10);
  });

  it('writes large batches with several requests in flight', async () => {
    const { store } = await freshStore({ writeConcurrency: 4 });
    await expect(store.putBatch(batchOf('pi-01', 1, readingsFrom(1_700_000_000_000, 1000)))).resolves.toEqual({
      stored: 1000,
      duplicate: false,
    });
    expect(await store.countReadings()).toBe(1000);
  });

  it('reports a missing table as a store error that retrying will not fix', async () => {
    const store = createDynamoDbTelemetryStore({ client: dynalite.client(), tableName: 'no-such-table' });
    const err = await store.putBatch(batchOf('pi-01', 1, readingsFrom(0, 1))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TelemetryStoreError);
    expect((err as TelemetryStoreError).retryable).toBe(false);
  });
});
