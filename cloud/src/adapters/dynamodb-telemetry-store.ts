import { setTimeout as delay } from 'node:timers/promises';
import {
  ConditionalCheckFailedException,
  CreateTableCommand,
  type DynamoDBClient,
  ResourceNotFoundException,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';
import {
  BatchWriteCommand,
  type BatchWriteCommandOutput,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
  ScanCommand,
  type ScanCommandInput,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { exponentialBackoff, type MetricValue, type TelemetryBatch } from '@pifleet/protocol';
import { TelemetryStoreError } from '../core/telemetry/errors.js';
import {
  batchMarkerKey,
  batchToStoredReadings,
  latestValuesOf,
  projectMetric,
  READING_KEY_PREFIX,
  sortLatest,
  storedReadingKey,
} from '../core/telemetry/keys.js';
import { encodeConnectivityPageToken, encodePageToken } from '../core/telemetry/page-token.js';
import { planConnectivityListing, planQuery } from '../core/telemetry/store-query.js';
import { CloudError } from '../errors.js';
import type {
  ConnectivityPage,
  ConnectivityRecord,
  LatestValue,
  ManagedTelemetryStore,
  PutBatchResult,
  PutConnectivityResult,
  StoredReading,
  TelemetryPage,
  TelemetryQuery,
} from '../ports/telemetry-store.js';

/**
 * DynamoDB telemetry store (AWS). One table, single-table design:
 *
 * | item              | pk              | sk                                                   | other attributes                                  |
 * |-------------------|-----------------|------------------------------------------------------|---------------------------------------------------|
 * | reading           | `THING#<thing>` | `R#<ts:16>#<sensor>#<bootId>#<seq:16>#<index:5>`     | sensor, ts, bootId, seq, idx, metrics (map), expiresAt |
 * | batch marker      | `THING#<thing>` | `B#<bootId>#<seq:16>`                                | sealedAt, receivedAt, readings, expiresAt         |
 * | latest value      | `THING#<thing>` | `L#<sensor>#<metric>`                                | sensor, metric, value, ts                         |
 * | connectivity      | `THING#<thing>` | `CONNECTIVITY`                                       | the presence record, ver, fleet (`ALL`)           |
 *
 * - Thing + time ordering: every item of a thing shares a partition; readings sort by the
 *   zero-padded time first, so "thing X between t1 and t2" is one Query with
 *   `sk BETWEEN R#<t1># AND R#<t2>#~`, already in time order, paged with ExclusiveStartKey. The
 *   rest of the key makes it unique and total (same keys as the SQLite store: `core/telemetry/keys.ts`).
 * - Idempotency: readings are written with deterministic keys (BatchWriteItem, 25 per request,
 *   UnprocessedItems retried with exponential backoff and jitter), then latest values, then the
 *   batch marker with `attribute_not_exists(pk)`. A resend finds the marker (consistent read) and
 *   writes nothing; a retry after a failure half way rewrites the same reading items (no
 *   duplicates) and completes the batch; two concurrent deliveries overwrite identical items and
 *   only one wins the marker.
 * - TTL: readings expire `retentionDays` after their sample time and markers after the batch
 *   was received (`expiresAt`, epoch seconds; enable TTL on that attribute). Latest values and
 *   connectivity do not expire.
 * - Latest values: one item per (sensor, metric), updated with `attribute_not_exists(ts) OR
 *   ts <= :ts`, so an old batch arriving late does not overwrite a newer value.
 * - Filters: sensor and metric are FilterExpressions on the time-range Query (they cost reads of
 *   the whole range); a sensor-heavy workload would add a GSI keyed `THING#<thing>#<sensor>`.
 * - One partition per thing: a device publishes at most 100 messages/s, far below a partition's
 *   1,000 write units/s.
 * - Fleet listing (`listConnectivity`, the silent-devices check every 5 minutes): a sparse global
 *   secondary index, `fleet` = `ALL` → `thingName`, that only connectivity items enter (no other
 *   item has `fleet`); one Query of it pages the records in thing-name order. The alternative, a
 *   Scan filtered on `sk = CONNECTIVITY`, is billed for every item it reads before filtering, so
 *   each run would cost the whole table (readings are nearly all of it: 10,000 things with a
 *   reading a minute kept 90 days are 1.3 billion items of ~250 bytes, ~40 million read units a
 *   run, and more time than a Lambda run has). The index costs what it holds: a ~300-byte
 *   record per thing (10,000 things: 3 MB, ~375 read units a run, ~110,000 a day) and one more
 *   write unit per presence event. Its one partition key takes
 *   1,000 writes/s, above IoT Core's default 500 connects/s per account; a fleet reconnecting
 *   faster would shard it (`ALL#<n>`) and merge the shards' ordered pages. Records written
 *   before the index existed lack `fleet`: a thing is listed from its next presence event on.
 */
export const TELEMETRY_TABLE_KEYS = {
  partitionKey: 'pk',
  sortKey: 'sk',
  ttlAttribute: 'expiresAt',
  /** The sparse index of connectivity items (see above); projects every attribute. */
  connectivityIndex: { indexName: 'connectivity-by-thing', partitionKey: 'fleet', sortKey: 'thingName' },
} as const;

/** The `fleet` value of every connectivity item: the index's single partition. */
const FLEET_PARTITION = 'ALL';

const CONNECTIVITY_SK = 'CONNECTIVITY';
const LATEST_PREFIX = 'L#';
const BATCH_WRITE_MAX = 25;

export interface DynamoDbTelemetryStoreOptions {
  /** A DynamoDB client; the store wraps it in a document client and never destroys it. */
  readonly client: DynamoDBClient;
  readonly tableName: string;
  /** Readings and batch markers expire this many days after sample/receive time; no TTL when absent. */
  readonly retentionDays?: number;
  readonly clock?: { now(): number };
  /** BatchWriteItem requests in flight at once for one batch (default 4). */
  readonly writeConcurrency?: number;
  /** UnprocessedItems retry: attempts per request (default 8), first delay and cap in ms (default 25 / 2,000). */
  readonly retry?: { readonly maxAttempts?: number; readonly baseDelayMs?: number; readonly maxDelayMs?: number };
  /** Jitter source in [0, 1) (default Math.random). */
  readonly random?: () => number;
}

type Item = Record<string, unknown>;

export function createDynamoDbTelemetryStore(options: DynamoDbTelemetryStoreOptions): ManagedTelemetryStore {
  const table = options.tableName;
  const clock = options.clock ?? { now: () => Date.now() };
  const random = options.random ?? Math.random;
  const concurrency = Math.max(1, options.writeConcurrency ?? 4);
  const maxAttempts = Math.max(1, options.retry?.maxAttempts ?? 8);
  const baseDelayMs = options.retry?.baseDelayMs ?? 25;
  const maxDelayMs = options.retry?.maxDelayMs ?? 2000;
  const retentionSeconds = options.retentionDays === undefined ? undefined : Math.round(options.retentionDays * 86_400);
  const doc = DynamoDBDocumentClient.from(options.client, {
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
  });

  const pk = (thingName: string) => `THING#${thingName}`;
  const expiresAt = (ms: number) =>
    retentionSeconds === undefined ? undefined : Math.floor(ms / 1000) + retentionSeconds;

  async function call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof CloudError) throw err;
      throw new TelemetryStoreError(`DynamoDB ${operation} failed`, {
        cause: err,
        retryable: !(err instanceof ResourceNotFoundException),
        data: { operation, table, error: (err as Error).name },
      });
    }
  }

  /** Writes up to 25 put requests, resending UnprocessedItems with exponential backoff and full jitter. */
  async function writeChunk(items: Item[]): Promise<void> {
    let pending: BatchWriteCommandOutput['UnprocessedItems'] = {
      [table]: items.map((Item) => ({ PutRequest: { Item } })),
    };
    for (let attempt = 1; ; attempt++) {
      const out = await call('BatchWriteItem', () => doc.send(new BatchWriteCommand({ RequestItems: pending })));
      const left = out.UnprocessedItems?.[table]?.length ?? 0;
      if (left === 0) return;
      if (attempt >= maxAttempts) {
        throw new TelemetryStoreError('DynamoDB left items unprocessed after every retry', {
          data: { table, unprocessed: left, attempts: attempt },
        });
      }
      pending = out.UnprocessedItems;
      // + 1: a draw of 0 would resend at once.
      await delay(exponentialBackoff(attempt - 1, { baseMs: baseDelayMs, capMs: maxDelayMs }, random) + 1);
    }
  }

  /** Runs `fn` over the tasks, `concurrency` at a time; after a failure starts no new task, waits for those running, then throws. */
  async function inParallel<T>(tasks: readonly T[], fn: (task: T) => Promise<void>): Promise<void> {
    let next = 0;
    let failure: { err: unknown } | undefined;
    const worker = async () => {
      while (failure === undefined && next < tasks.length) {
        const task = tasks[next++] as T;
        try {
          await fn(task);
        } catch (err) {
          failure ??= { err };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, tasks.length) }, worker));
    if (failure !== undefined) throw failure.err;
  }

  async function updateLatest(thingName: string, l: LatestValue): Promise<void> {
    try {
      await doc.send(
        new UpdateCommand({
          TableName: table,
          Key: { pk: pk(thingName), sk: `${LATEST_PREFIX}${l.sensor}#${l.metric}` },
          UpdateExpression: 'SET #sensor = :sensor, #metric = :metric, #value = :value, #ts = :ts',
          ConditionExpression: 'attribute_not_exists(#ts) OR #ts <= :ts',
          ExpressionAttributeNames: { '#sensor': 'sensor', '#metric': 'metric', '#value': 'value', '#ts': 'ts' },
          ExpressionAttributeValues: { ':sensor': l.sensor, ':metric': l.metric, ':value': l.value, ':ts': l.ts },
        }),
      );
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return; // a newer value is already there
      throw err;
    }
  }

  async function queryAll(input: QueryCommandInput): Promise<Item[]> {
    const items: Item[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await doc.send(new QueryCommand({ ...input, ExclusiveStartKey: start }));
      items.push(...(out.Items ?? []));
      start = out.LastEvaluatedKey;
    } while (start !== undefined);
    return items;
  }

  async function countAll(input: QueryCommandInput | ScanCommandInput, scan: boolean): Promise<number> {
    let n = 0;
    let start: Record<string, unknown> | undefined;
    do {
      const out = scan
        ? await doc.send(new ScanCommand({ ...input, Select: 'COUNT', ExclusiveStartKey: start }))
        : await doc.send(new QueryCommand({ ...input, Select: 'COUNT', ExclusiveStartKey: start }));
      n += out.Count ?? 0;
      start = out.LastEvaluatedKey;
    } while (start !== undefined);
    return n;
  }

  return {
    async start() {
      // Nothing to open: the client connects on first use and the table is provisioned by the CDK app.
    },

    async stop() {
      // The injected client belongs to the caller.
    },

    async putBatch(batch: TelemetryBatch): Promise<PutBatchResult> {
      const key = { pk: pk(batch.thingName), sk: batchMarkerKey(batch.bootId, batch.seq) };
      const seen = await call('GetItem', () =>
        doc.send(new GetCommand({ TableName: table, Key: key, ConsistentRead: true, ProjectionExpression: 'pk' })),
      );
      if (seen.Item !== undefined) return { stored: 0, duplicate: true };

      const readings = batchToStoredReadings(batch);
      const items: Item[] = readings.map((r) => ({
        pk: pk(r.thingName),
        sk: storedReadingKey(r),
        sensor: r.sensor,
        ts: r.ts,
        bootId: r.bootId,
        seq: r.seq,
        idx: r.index,
        metrics: r.metrics,
        expiresAt: expiresAt(r.ts),
      }));
      const chunks: Item[][] = [];
      for (let i = 0; i < items.length; i += BATCH_WRITE_MAX) chunks.push(items.slice(i, i + BATCH_WRITE_MAX));
      await inParallel(chunks, writeChunk);
      await call('UpdateItem', () => inParallel(latestValuesOf(batch), (l) => updateLatest(batch.thingName, l)));

      const now = clock.now();
      try {
        await doc.send(
          new PutCommand({
            TableName: table,
            Item: {
              ...key,
              sealedAt: batch.sealedAt,
              receivedAt: now,
              readings: readings.length,
              expiresAt: expiresAt(now),
            },
            ConditionExpression: 'attribute_not_exists(pk)',
          }),
        );
      } catch (err) {
        // Another delivery of the same batch finished first; it wrote the same items.
        if (err instanceof ConditionalCheckFailedException) return { stored: 0, duplicate: true };
        throw new TelemetryStoreError('DynamoDB PutItem failed', {
          cause: err,
          data: { operation: 'PutItem', table, error: (err as Error).name },
        });
      }
      return { stored: readings.length, duplicate: false };
    },

    async query(q: TelemetryQuery): Promise<TelemetryPage> {
      const plan = planQuery(q);
      const names: Record<string, string> = {};
      const values: Record<string, unknown> = { ':pk': pk(q.thingName), ':lower': plan.lower, ':upper': plan.upper };
      const filters: string[] = [];
      if (q.sensor !== undefined) {
        filters.push('#sensor = :sensor');
        names['#sensor'] = 'sensor';
        values[':sensor'] = q.sensor;
      }
      if (q.metric !== undefined) {
        filters.push('attribute_exists(#metrics.#metric)');
        names['#metrics'] = 'metrics';
        names['#metric'] = q.metric;
      }
      const wanted = q.limit + 1; // one more than a page tells whether another page exists
      const found: StoredReading[] = [];
      const keys: string[] = [];
      let start: Record<string, unknown> | undefined =
        plan.after === undefined ? undefined : { pk: pk(q.thingName), sk: plan.after };
      do {
        const remaining = wanted - found.length;
        const out = await call('Query', () =>
          doc.send(
            new QueryCommand({
              TableName: table,
              KeyConditionExpression: 'pk = :pk AND sk BETWEEN :lower AND :upper',
              ...(filters.length > 0 ? { FilterExpression: filters.join(' AND ') } : {}),
              ...(Object.keys(names).length > 0 ? { ExpressionAttributeNames: names } : {}),
              ExpressionAttributeValues: values,
              // Limit counts items read before filtering; with filters read ahead in bigger steps.
              Limit: filters.length > 0 ? Math.min(1000, Math.max(remaining, 100)) : remaining,
              ExclusiveStartKey: start,
            }),
          ),
        );
        for (const item of out.Items ?? []) {
          const reading = projectMetric(toReading(q.thingName, item), q.metric);
          if (reading === undefined) continue;
          found.push(reading);
          keys.push(String(item.sk));
          if (found.length === wanted) break;
        }
        start = out.LastEvaluatedKey;
      } while (found.length < wanted && start !== undefined);
      const items = found.slice(0, q.limit);
      const lastKey = keys[q.limit - 1];
      return found.length > q.limit && lastKey !== undefined
        ? { items, nextToken: encodePageToken(q.thingName, lastKey) }
        : { items };
    },

    async latest(thingName: string): Promise<readonly LatestValue[]> {
      const items = await call('Query', () =>
        queryAll({
          TableName: table,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
          ExpressionAttributeValues: { ':pk': pk(thingName), ':prefix': LATEST_PREFIX },
        }),
      );
      return sortLatest(
        items.map((i) => ({
          sensor: String(i.sensor),
          metric: String(i.metric),
          value: i.value as MetricValue,
          ts: Number(i.ts),
        })),
      );
    },

    async putConnectivity(record: ConnectivityRecord): Promise<PutConnectivityResult> {
      try {
        await doc.send(
          new PutCommand({
            TableName: table,
            Item: {
              ...record,
              pk: pk(record.thingName),
              sk: CONNECTIVITY_SK,
              ver: record.versionNumber ?? 0,
              fleet: FLEET_PARTITION,
            },
            ConditionExpression: 'attribute_not_exists(pk) OR #t < :t OR (#t = :t AND #ver <= :ver)',
            ExpressionAttributeNames: { '#t': 'timestamp', '#ver': 'ver' },
            ExpressionAttributeValues: { ':t': record.timestamp, ':ver': record.versionNumber ?? 0 },
          }),
        );
        return { applied: true };
      } catch (err) {
        if (err instanceof ConditionalCheckFailedException) return { applied: false };
        throw new TelemetryStoreError('DynamoDB PutItem failed', {
          cause: err,
          data: { operation: 'PutItem', table, error: (err as Error).name },
        });
      }
    },

    async getConnectivity(thingName: string): Promise<ConnectivityRecord | undefined> {
      const out = await call('GetItem', () =>
        doc.send(new GetCommand({ TableName: table, Key: { pk: pk(thingName), sk: CONNECTIVITY_SK } })),
      );
      return out.Item === undefined ? undefined : toConnectivity(out.Item);
    },

    async listConnectivity(listing): Promise<ConnectivityPage> {
      const { after } = planConnectivityListing(listing);
      const index = TELEMETRY_TABLE_KEYS.connectivityIndex;
      const wanted = listing.limit + 1; // one more than a page tells whether another page exists
      const found: ConnectivityRecord[] = [];
      // A GSI's start key holds the index key and the table key of the item to continue after.
      let start: Record<string, unknown> | undefined =
        after === undefined
          ? undefined
          : { fleet: FLEET_PARTITION, thingName: after, pk: pk(after), sk: CONNECTIVITY_SK };
      do {
        const out = await call('Query', () =>
          doc.send(
            new QueryCommand({
              TableName: table,
              IndexName: index.indexName,
              KeyConditionExpression: '#fleet = :fleet',
              ExpressionAttributeNames: { '#fleet': index.partitionKey },
              ExpressionAttributeValues: { ':fleet': FLEET_PARTITION },
              Limit: wanted - found.length,
              ExclusiveStartKey: start,
            }),
          ),
        );
        for (const item of out.Items ?? []) found.push(toConnectivity(item));
        start = out.LastEvaluatedKey;
      } while (found.length < wanted && start !== undefined);
      const items = found.slice(0, listing.limit);
      const last = items.at(-1);
      return found.length > listing.limit && last !== undefined
        ? { items, nextToken: encodeConnectivityPageToken(last.thingName) }
        : { items };
    },

    async countReadings(thingName?: string): Promise<number> {
      if (thingName === undefined) {
        // A full-table scan: meant for load tests reading back what arrived, not for production paths.
        return call('Scan', () =>
          countAll(
            {
              TableName: table,
              FilterExpression: 'begins_with(sk, :r)',
              ExpressionAttributeValues: { ':r': READING_KEY_PREFIX },
              ConsistentRead: true,
            },
            true,
          ),
        );
      }
      return call('Query', () =>
        countAll(
          {
            TableName: table,
            KeyConditionExpression: 'pk = :pk AND begins_with(sk, :r)',
            ExpressionAttributeValues: { ':pk': pk(thingName), ':r': READING_KEY_PREFIX },
            ConsistentRead: true,
          },
          false,
        ),
      );
    },
  };
}

/** A connectivity item without the table's own attributes: the record as `putConnectivity` took it. */
function toConnectivity(item: Item): ConnectivityRecord {
  const { pk: _pk, sk: _sk, ver: _ver, fleet: _fleet, ...record } = item;
  return record as unknown as ConnectivityRecord;
}

function toReading(thingName: string, item: Item): StoredReading {
  return {
    thingName,
    sensor: String(item.sensor),
    ts: Number(item.ts),
    metrics: item.metrics as Record<string, MetricValue>,
    bootId: String(item.bootId),
    seq: Number(item.seq),
    index: Number(item.idx),
  };
}

/**
 * The telemetry table's keys, attribute types and sparse connectivity index, as CreateTable takes
 * them: what {@link createTelemetryTable} creates, and what the CDK stack's table is checked against.
 */
export function telemetryTableSchema() {
  const { partitionKey, sortKey, connectivityIndex: index } = TELEMETRY_TABLE_KEYS;
  return {
    KeySchema: [
      { AttributeName: partitionKey, KeyType: 'HASH' as const },
      { AttributeName: sortKey, KeyType: 'RANGE' as const },
    ],
    AttributeDefinitions: [
      { AttributeName: partitionKey, AttributeType: 'S' as const },
      { AttributeName: sortKey, AttributeType: 'S' as const },
      { AttributeName: index.partitionKey, AttributeType: 'S' as const },
      { AttributeName: index.sortKey, AttributeType: 'S' as const },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: index.indexName,
        KeySchema: [
          { AttributeName: index.partitionKey, KeyType: 'HASH' as const },
          { AttributeName: index.sortKey, KeyType: 'RANGE' as const },
        ],
        Projection: { ProjectionType: 'ALL' as const },
      },
    ],
  };
}

/**
 * Creates the telemetry table (on-demand billing) and waits until it is active. For local
 * development, tests and benchmarks against a DynamoDB-compatible server; in AWS the CDK app
 * creates the table with the same keys ({@link TELEMETRY_TABLE_KEYS}) and TTL enabled.
 */
export async function createTelemetryTable(client: DynamoDBClient, tableName: string): Promise<void> {
  await client.send(
    new CreateTableCommand({ TableName: tableName, BillingMode: 'PAY_PER_REQUEST', ...telemetryTableSchema() }),
  );
  await waitUntilTableExists({ client, maxWaitTime: 30, minDelay: 1, maxDelay: 2 }, { TableName: tableName });
}
