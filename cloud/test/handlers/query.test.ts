import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSqliteTelemetryStore } from '../../src/adapters/sqlite-telemetry-store.js';
import { InvalidPageTokenError } from '../../src/core/telemetry/errors.js';
import { encodeConnectivityPageToken, encodePageToken } from '../../src/core/telemetry/page-token.js';
import { MAX_PRESENCE_LIMIT } from '../../src/core/telemetry/query-api.js';
import { HandlerConfigError, telemetryStoreFromEnv } from '../../src/handlers/aws-env.js';
import { createQueryHandler, type QueryHandler } from '../../src/handlers/query.js';
import { createLogger, silentLogger } from '../../src/logger.js';
import type { ConnectivityRecord, ManagedTelemetryStore, TelemetryStore } from '../../src/ports/telemetry-store.js';
import { batchOf, readingsFrom } from '../../src/testing/telemetry-store-suite.js';

const T0 = 1_700_000_000_000;
const NOW = T0 + 3_600_000;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pifleet-query-'));
let store: ManagedTelemetryStore;
let handle: QueryHandler;

beforeAll(async () => {
  store = createSqliteTelemetryStore({ file: path.join(dir, 'telemetry.db') });
  await store.start();
  await store.putBatch(batchOf('pi-01', 1, readingsFrom(T0, 10)));
  await store.putBatch(batchOf('pi-01', 2, readingsFrom(T0 - 2 * 86_400_000, 2))); // two days earlier
  await store.putBatch(batchOf('pi-02', 1, readingsFrom(T0, 3)));
  handle = createQueryHandler({ store, logger: silentLogger(), clock: { now: () => NOW } });
});
afterAll(async () => {
  await store.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** An API Gateway HTTP API (payload format 2.0) event, as API Gateway builds it. */
function apiEvent(
  method: string,
  rawPath: string,
  query: Record<string, string> = {},
  stage = '$default',
): APIGatewayProxyEventV2 {
  const rawQueryString = new URLSearchParams(query).toString();
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString,
    headers: { accept: 'application/json', host: 'abc123.execute-api.eu-west-1.amazonaws.com' },
    ...(Object.keys(query).length > 0 ? { queryStringParameters: query } : {}),
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123',
      domainName: 'abc123.execute-api.eu-west-1.amazonaws.com',
      domainPrefix: 'abc123',
      http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'vitest' },
      requestId: 'req-1',
      routeKey: '$default',
      stage,
      time: '14/Nov/2023:22:13:20 +0000',
      timeEpoch: NOW,
    },
    isBase64Encoded: false,
  };
}

function body(res: APIGatewayProxyStructuredResultV2): Record<string, unknown> {
  expect(res.headers?.['content-type']).toMatch(/^application\/json/);
  return JSON.parse(String(res.body)) as Record<string, unknown>;
}

function issuePaths(res: APIGatewayProxyStructuredResultV2): string[] {
  return ((body(res).issues as { path: string }[]) ?? []).map((i) => i.path);
}

describe('query handler: GET /things/{thing}/telemetry', () => {
  it('returns readings in the time range in time order, echoing the resolved range', async () => {
    const res = await handle(apiEvent('GET', '/things/pi-01/telemetry', { from: String(T0), to: String(T0 + 3000) }));
    expect(res.statusCode).toBe(200);
    const b = body(res);
    expect(b).toMatchObject({ thingName: 'pi-01', from: T0, to: T0 + 3000 });
    expect(b.nextToken).toBeUndefined();
    expect(b.items).toEqual([
      {
        sensor: 'bme280',
        ts: T0,
        metrics: { temperature: 20, humidity: 40 },
        bootId: expect.any(String),
        seq: 1,
        index: 0,
      },
      { sensor: 'door', ts: T0 + 1000, metrics: { open: true }, bootId: expect.any(String), seq: 1, index: 1 },
      {
        sensor: 'bme280',
        ts: T0 + 2000,
        metrics: { temperature: 20.2, humidity: 40 },
        bootId: expect.any(String),
        seq: 1,
        index: 2,
      },
      { sensor: 'door', ts: T0 + 3000, metrics: { open: false }, bootId: expect.any(String), seq: 1, index: 3 },
    ]);
  });

  it('defaults to the last 24 hours before now', async () => {
    const b = body(await handle(apiEvent('GET', '/things/pi-01/telemetry')));
    expect(b).toMatchObject({ from: NOW - 86_400_000, to: NOW });
    expect(b.items).toHaveLength(10); // not the two readings from two days earlier
  });

  it('accepts ISO-8601 times', async () => {
    const from = new Date(T0 + 1000).toISOString();
    const to = new Date(T0 + 2000).toISOString();
    const b = body(await handle(apiEvent('GET', '/things/pi-01/telemetry', { from, to })));
    expect(b).toMatchObject({ from: T0 + 1000, to: T0 + 2000 });
    expect(b.items).toHaveLength(2);
  });

  it('filters by sensor and metric', async () => {
    const b = body(
      await handle(
        apiEvent('GET', '/things/pi-01/telemetry', {
          from: String(T0),
          to: String(NOW),
          sensor: 'bme280',
          metric: 'temperature',
        }),
      ),
    );
    expect(b).toMatchObject({ sensor: 'bme280', metric: 'temperature' });
    expect((b.items as { metrics: unknown }[]).map((i) => i.metrics)).toEqual([
      { temperature: 20 },
      { temperature: 20.2 },
      { temperature: 20.4 },
      { temperature: 20.6 },
      { temperature: 20.8 },
    ]);
  });

  it('pages with nextToken until every reading has been returned once', async () => {
    const range = { from: String(T0), to: String(NOW), limit: '3' };
    const seen: number[] = [];
    let token: string | undefined;
    const sizes: number[] = [];
    do {
      const res = await handle(
        apiEvent('GET', '/things/pi-01/telemetry', token ? { ...range, nextToken: token } : range),
      );
      expect(res.statusCode).toBe(200);
      const b = body(res);
      const items = b.items as { ts: number }[];
      sizes.push(items.length);
      seen.push(...items.map((i) => i.ts));
      token = b.nextToken as string | undefined;
    } while (token !== undefined);
    expect(sizes).toEqual([3, 3, 3, 1]);
    expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => T0 + i * 1000));
  });

  it('answers 400 listing every problem with the parameters at once', async () => {
    const res = await handle(
      apiEvent('GET', '/things/pi-01/telemetry', {
        from: 'yesterday',
        to: '12:00',
        limit: '0',
        sensor: 'has space',
        metric: '9lives',
        colour: 'red',
      }),
    );
    expect(res.statusCode).toBe(400);
    expect(issuePaths(res).sort()).toEqual(
      ['query.colour', 'query.from', 'query.limit', 'query.metric', 'query.sensor', 'query.to'].sort(),
    );
    expect(body(res).message).toBe('invalid request');
  });

  it.each([
    ['from after to', { from: String(T0 + 10), to: String(T0) }, 'query.from'],
    ['a limit over 1000', { limit: '1001' }, 'query.limit'],
    ['a fractional limit', { limit: '2.5' }, 'query.limit'],
    ['a negative time', { from: '-5' }, 'query.from'],
    ['a garbage page token', { nextToken: 'garbage!' }, 'query.nextToken'],
    [
      "another thing's page token",
      { from: String(T0), to: String(NOW), nextToken: encodePageToken('pi-02', `R#${String(T0).padStart(16, '0')}#x`) },
      'query.nextToken',
    ],
  ])('answers 400 for %s', async (_label, query, issuePath) => {
    const res = await handle(apiEvent('GET', '/things/pi-01/telemetry', query));
    expect(res.statusCode).toBe(400);
    expect(issuePaths(res)).toEqual([issuePath]);
  });

  it('answers 400 for a thing name that cannot exist', async () => {
    const res = await handle(apiEvent('GET', '/things/bad%20name/telemetry'));
    expect(res.statusCode).toBe(400);
    expect(issuePaths(res)).toEqual(['path.thing']);
  });

  it('answers an empty page for a thing with no telemetry', async () => {
    const b = body(await handle(apiEvent('GET', '/things/pi-77/telemetry')));
    expect(b.items).toEqual([]);
  });

  it('strips a named stage from the path', async () => {
    const res = await handle(apiEvent('GET', '/prod/things/pi-02/telemetry', { from: String(T0) }, 'prod'));
    expect(res.statusCode).toBe(200);
    expect(body(res).items).toHaveLength(3);
  });
});

describe('query handler: GET /things/{thing}/latest', () => {
  it('returns the latest value of every metric of every sensor', async () => {
    const res = await handle(apiEvent('GET', '/things/pi-01/latest'));
    expect(res.statusCode).toBe(200);
    expect(body(res)).toEqual({
      thingName: 'pi-01',
      values: [
        { sensor: 'bme280', metric: 'humidity', value: 40, ts: T0 + 8000 },
        { sensor: 'bme280', metric: 'temperature', value: 20.8, ts: T0 + 8000 },
        { sensor: 'door', metric: 'open', value: true, ts: T0 + 9000 },
      ],
    });
  });

  it('answers 400 for parameters it does not take', async () => {
    const res = await handle(apiEvent('GET', '/things/pi-01/latest', { sensor: 'door' }));
    expect(res.statusCode).toBe(400);
    expect(issuePaths(res)).toEqual(['query.sensor']);
  });
});

const online = (thingName: string, timestamp: number): ConnectivityRecord => ({
  thingName,
  connected: true,
  clientId: thingName,
  timestamp,
  eventType: 'connected',
});

describe('query handler: GET /presence', () => {
  beforeAll(async () => {
    await store.putConnectivity(online('pi-01', T0 - 60_000));
    await store.putConnectivity({
      thingName: 'pi-02',
      connected: false,
      clientId: 'pi-02',
      timestamp: T0 + 5_000,
      eventType: 'disconnected',
      disconnectReason: 'MQTT_KEEP_ALIVE_TIMEOUT',
    });
    await store.putConnectivity(online('pi-03', T0 - 1_000)); // connected, never sent a reading
    // A thing name that is also an object's prototype key: an item like any other.
    await store.putConnectivity(online('__proto__', T0 - 2_000));
    await store.putBatch(batchOf('__proto__', 1, readingsFrom(T0 + 20_000, 1)));
  });

  const expected = [
    { thingName: '__proto__', connected: true, at: T0 - 2_000, lastReadingAt: T0 + 20_000 },
    { thingName: 'pi-01', connected: true, at: T0 - 60_000, lastReadingAt: T0 + 9_000 },
    {
      thingName: 'pi-02',
      connected: false,
      at: T0 + 5_000,
      reason: 'MQTT_KEEP_ALIVE_TIMEOUT',
      lastReadingAt: T0 + 2_000,
    },
    { thingName: 'pi-03', connected: true, at: T0 - 1_000 },
  ];

  it('lists every thing with a connectivity record, its presence and its newest reading time', async () => {
    const res = await handle(apiEvent('GET', '/presence'));
    expect(res.statusCode).toBe(200);
    const b = body(res);
    expect(b).toEqual({ items: expected });
    // The thing named __proto__ is an own value of its item; no prototype was set.
    const first = (b.items as object[])[0] as object;
    expect(Object.getPrototypeOf(first)).toBe(Object.prototype);
  });

  it('pages with nextToken, each thing once, in thing-name order', async () => {
    const sizes: number[] = [];
    const seen: unknown[] = [];
    let token: string | undefined;
    do {
      const res = await handle(apiEvent('GET', '/presence', token ? { limit: '3', nextToken: token } : { limit: '3' }));
      expect(res.statusCode).toBe(200);
      const b = body(res);
      sizes.push((b.items as unknown[]).length);
      seen.push(...(b.items as unknown[]));
      token = b.nextToken as string | undefined;
    } while (token !== undefined);
    expect(sizes).toEqual([3, 1]);
    expect(seen).toEqual(expected);
  });

  it('defaults to 100 a page and takes at most 250', async () => {
    const big = createSqliteTelemetryStore({ file: ':memory:' });
    await big.start();
    try {
      for (let i = 0; i < MAX_PRESENCE_LIMIT + 1; i++) {
        await big.putConnectivity(online(`pi-${String(i).padStart(3, '0')}`, T0 + i));
      }
      const h = createQueryHandler({ store: big, logger: silentLogger(), clock: { now: () => NOW } });
      const byDefault = body(await h(apiEvent('GET', '/presence')));
      expect(byDefault.items).toHaveLength(100);
      expect(typeof byDefault.nextToken).toBe('string');
      const most = body(await h(apiEvent('GET', '/presence', { limit: String(MAX_PRESENCE_LIMIT) })));
      expect(most.items).toHaveLength(MAX_PRESENCE_LIMIT);
      const rest = body(
        await h(apiEvent('GET', '/presence', { limit: String(MAX_PRESENCE_LIMIT), nextToken: String(most.nextToken) })),
      );
      expect(rest).toEqual({ items: [{ thingName: 'pi-250', connected: true, at: T0 + 250 }] });
    } finally {
      await big.stop();
    }
  });

  it.each([
    ['a limit of 0', { limit: '0' }, ['query.limit']],
    ['a limit over 250', { limit: '251' }, ['query.limit']],
    ['a fractional limit', { limit: '2.5' }, ['query.limit']],
    ['a limit that is not a number', { limit: 'all' }, ['query.limit']],
    ['a parameter it does not take', { colour: 'red', from: '0' }, ['query.colour', 'query.from']],
    ['__proto__ as a parameter', JSON.parse('{"__proto__":"x"}') as Record<string, string>, ['query.__proto__']],
    ['a garbage page token', { nextToken: 'garbage!' }, ['query.nextToken']],
    ['a telemetry page token', { nextToken: encodePageToken('pi-01', 'R#1#x') }, ['query.nextToken']],
    [
      'every problem at once',
      { limit: '1001', nextToken: 'x', sensor: 'door' },
      ['query.limit', 'query.nextToken', 'query.sensor'],
    ],
  ])('answers 400 for %s', async (_label, query, paths) => {
    const res = await handle(apiEvent('GET', '/presence', query));
    expect(res.statusCode).toBe(400);
    expect(body(res).message).toBe('invalid request');
    expect(issuePaths(res).sort()).toEqual(paths);
  });

  it('answers 400, not 500, when the store refuses a token that looked right', async () => {
    const refusing: TelemetryStore = {
      ...store,
      listConnectivity: async () => {
        throw new InvalidPageTokenError('issued by another table');
      },
    };
    const h = createQueryHandler({ store: refusing, logger: silentLogger() });
    const res = await h(apiEvent('GET', '/presence', { nextToken: encodeConnectivityPageToken('pi-01') }));
    expect(res.statusCode).toBe(400);
    expect(issuePaths(res)).toEqual(['query.nextToken']);
  });

  it('answers 500 when a newest-reading query fails', async () => {
    const broken: TelemetryStore = {
      ...store,
      latest: async (thingName) => {
        if (thingName === 'pi-02') throw new Error('throttled');
        return store.latest(thingName);
      },
    };
    const res = await createQueryHandler({ store: broken, logger: silentLogger() })(apiEvent('GET', '/presence'));
    expect(res.statusCode).toBe(500);
    expect(String(res.body)).not.toContain('throttled');
  });

  it('strips a named stage from the path', async () => {
    const res = await handle(apiEvent('GET', '/prod/presence', { limit: '1' }, 'prod'));
    expect(res.statusCode).toBe(200);
    expect(body(res).items).toEqual([expected[0]]);
  });
});

describe('query handler: routing and failures', () => {
  it.each([
    ['GET', '/things/pi-01', 404],
    ['GET', '/things/pi-01/shadow', 404],
    ['GET', '/', 404],
    ['POST', '/things/pi-01/telemetry', 405],
    ['DELETE', '/things/pi-01/latest', 405],
    ['POST', '/presence', 405],
    ['GET', '/presence/pi-01', 404],
    ['GET', '/things/presence', 404],
  ])('%s %s answers %i', async (method, p, status) => {
    const res = await handle(apiEvent(method, p));
    expect(res.statusCode).toBe(status);
    expect(typeof body(res).message).toBe('string');
  });

  it('answers 500 with the request id when the store fails, and logs the cause', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger({
      destination: { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) },
    });
    const broken: TelemetryStore = {
      ...store,
      query: async () => {
        throw new Error('disk on fire');
      },
    };
    const res = await createQueryHandler({ store: broken, logger })(apiEvent('GET', '/things/pi-01/telemetry'));
    expect(res.statusCode).toBe(500);
    expect(body(res)).toEqual({ message: 'internal error', requestId: 'req-1' });
    expect(String(res.body)).not.toContain('disk on fire');
    expect(lines.find((l) => l.msg === 'query failed')).toMatchObject({ level: 50, requestId: 'req-1' });
  });
});

describe('handler environment (AWS)', () => {
  it.each([
    ['no TABLE_NAME', {}, 'TABLE_NAME'],
    ['an empty TABLE_NAME', { TABLE_NAME: '' }, 'TABLE_NAME'],
    [
      'a RETENTION_DAYS that is not a positive number',
      { TABLE_NAME: 't', RETENTION_DAYS: 'forever' },
      'RETENTION_DAYS',
    ],
  ])('refuses %s', (_label, env, variable) => {
    expect(() => telemetryStoreFromEnv(env)).toThrow(HandlerConfigError);
    expect(() => telemetryStoreFromEnv(env)).toThrow(variable);
  });

  it('builds a DynamoDB store without any I/O', () => {
    const s = telemetryStoreFromEnv({ TABLE_NAME: 'pifleet-telemetry', RETENTION_DAYS: '90' });
    expect(typeof s.putBatch).toBe('function');
  });
});
