import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { IoTClient } from '@aws-sdk/client-iot';
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import type { JsonObject } from '@pifleet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CommandApiDeps,
  type DesiredUpdate,
  handleCommandRequest,
  parseDesiredRequest,
} from '../../src/core/command/api.js';
import { ShadowVersionConflictError } from '../../src/core/command/errors.js';
import { createCommandHandler, dataPlaneFromEnv } from '../../src/handlers/command.js';
import { silentLogger } from '../../src/logger.js';
import type { ConnectivityRecord } from '../../src/ports/telemetry-store.js';
import { httpApiEvent } from './api-event.js';

/** In-memory ports (the seams of the core function): a registry, versioned shadows, connectivity. */
function memoryDeps(things: string[] = ['pi-01']) {
  const shadows = new Map<string, { version: number; desired: JsonObject }>();
  const updates: { thingName: string; update: DesiredUpdate }[] = [];
  const connectivity = new Map<string, ConnectivityRecord>();
  const deps: CommandApiDeps = {
    things: { thingExists: async (t) => things.includes(t) },
    shadows: {
      async get(t) {
        const s = shadows.get(t);
        return s === undefined ? undefined : { state: { desired: s.desired }, version: s.version };
      },
      async update(t, update) {
        const s = shadows.get(t) ?? { version: 0, desired: {} };
        if (update.version !== undefined && update.version !== s.version) {
          throw new ShadowVersionConflictError(t, update.version);
        }
        updates.push({ thingName: t, update });
        const next = { version: s.version + 1, desired: { ...s.desired, ...update.state.desired } };
        shadows.set(t, next);
        return { state: { desired: update.state.desired }, version: next.version };
      },
    },
    connectivity: { getConnectivity: async (t) => connectivity.get(t) },
  };
  return { deps, shadows, updates, connectivity };
}

const put = (path: string, body: unknown) => ({
  method: 'PUT',
  path,
  body: typeof body === 'string' ? body : JSON.stringify(body),
});
const json = (r: { body: string }) => JSON.parse(r.body) as Record<string, unknown>;

describe('parseDesiredRequest', () => {
  it.each([
    ['no body', undefined, [['body', 'must be a JSON object']]],
    ['not JSON', '{desired', [['body', 'must be JSON']]],
    ['an array', '[]', [['body', 'must be a JSON object']]],
    ['no desired', '{}', [['body.desired', 'is required']]],
    ['desired not an object', '{"desired":[1]}', [['body.desired', 'must be an object']]],
    ['an empty desired', '{"desired":{}}', [['body.desired', 'must set or clear at least one key']]],
    [
      'bad values and fields',
      JSON.stringify({
        desired: { sampling: { bme280: 99 }, outputs: { relay: 'on' }, logLevel: 'loud', extra: 1 },
        expectedVersion: 1.5,
        clientToken: 'x'.repeat(65),
        other: 1,
      }),
      [
        ['body.other', 'unknown field'],
        ['body.desired', 'extra'],
        ['body.desired.sampling.bme280', 'at least 100'],
        ['body.desired.outputs.relay', 'true (on) or false (off)'],
        ['body.desired.logLevel', 'one of'],
        ['body.expectedVersion', 'positive integer'],
        ['body.clientToken', 'at most 64 bytes'],
      ],
    ],
  ])('lists every problem of %s', (_what, body, expected) => {
    const r = parseDesiredRequest(body);
    expect(r.ok).toBe(false);
    const issues = r.ok ? [] : r.issues;
    expect(issues).toHaveLength(expected.length);
    for (const [path, message] of expected as [string, string][]) {
      expect(
        issues.some((i) => i.path === path && i.message.includes(message)),
        `${path}: ${message}`,
      ).toBe(true);
    }
  });

  it('accepts null leaves (they clear desired keys) and carries version and clientToken', () => {
    const r = parseDesiredRequest(
      JSON.stringify({
        desired: { outputs: { relay: null }, logLevel: null, batch: { maxReadings: 10 } },
        expectedVersion: 4,
        clientToken: 'op-1',
      }),
    );
    expect(r).toEqual({
      ok: true,
      value: {
        state: { desired: { outputs: { relay: null }, logLevel: null, batch: { maxReadings: 10 } } },
        version: 4,
        clientToken: 'op-1',
      },
    });
  });
});

describe('handleCommandRequest', () => {
  it('writes desired state and answers with the accepted document', async () => {
    const { deps, updates } = memoryDeps();
    const res = await handleCommandRequest(put('/things/pi-01/desired', { desired: { logLevel: 'debug' } }), deps);
    expect(res.statusCode).toBe(200);
    expect(json(res)).toEqual({ thingName: 'pi-01', state: { desired: { logLevel: 'debug' } }, version: 1 });
    expect(updates).toEqual([{ thingName: 'pi-01', update: { state: { desired: { logLevel: 'debug' } } } }]);
  });

  it('answers 409 with the current version on a conflict', async () => {
    const { deps } = memoryDeps();
    await handleCommandRequest(put('/things/pi-01/desired', { desired: { logLevel: 'debug' } }), deps);
    await handleCommandRequest(put('/things/pi-01/desired', { desired: { logLevel: 'info' } }), deps);
    const res = await handleCommandRequest(
      put('/things/pi-01/desired', { desired: { logLevel: 'warn' }, expectedVersion: 1 }),
      deps,
    );
    expect(res.statusCode).toBe(409);
    expect(json(res)).toMatchObject({ expectedVersion: 1, currentVersion: 2 });
  });

  it('checks the request before the registry, and the registry before the shadow', async () => {
    const { deps, updates } = memoryDeps();
    const bad = await handleCommandRequest(put('/things/bad%20name/desired', { desired: {} }), deps);
    expect(bad.statusCode).toBe(400);
    expect((json(bad).issues as { path: string }[]).map((i) => i.path)).toEqual(['path.thing', 'body.desired']);
    const unknown = await handleCommandRequest(put('/things/pi-02/desired', { desired: { logLevel: 'info' } }), deps);
    expect(unknown.statusCode).toBe(404);
    expect(updates).toEqual([]);
  });

  it.each([
    ['GET', '/things/pi-01/desired', 405, 'PUT'],
    ['PUT', '/things/pi-01/shadow', 405, 'GET'],
    ['DELETE', '/things/pi-01/connectivity', 405, 'GET'],
    ['GET', '/things/pi-01', 404, undefined],
    ['GET', '/things/pi-01/shadow/extra', 404, undefined],
  ])('answers %s %s with %i', async (method, path, status, allow) => {
    const res = await handleCommandRequest({ method, path, body: undefined }, memoryDeps().deps);
    expect(res.statusCode).toBe(status);
    expect(res.headers.allow).toBe(allow);
  });

  it('reads the shadow (404 before the first write) and the connectivity record', async () => {
    const { deps, connectivity } = memoryDeps();
    const none = await handleCommandRequest({ method: 'GET', path: '/things/pi-01/shadow', body: undefined }, deps);
    expect(none.statusCode).toBe(404);
    await handleCommandRequest(put('/things/pi-01/desired', { desired: { logLevel: 'info' } }), deps);
    const shadow = await handleCommandRequest({ method: 'GET', path: '/things/pi-01/shadow', body: undefined }, deps);
    expect(json(shadow)).toEqual({ thingName: 'pi-01', state: { desired: { logLevel: 'info' } }, version: 1 });

    const record: ConnectivityRecord = {
      thingName: 'pi-01',
      connected: true,
      clientId: 'pi-01',
      timestamp: 1_700_000_000_000,
      eventType: 'connected',
    };
    connectivity.set('pi-01', record);
    const res = await handleCommandRequest(
      { method: 'GET', path: '/things/pi-01/connectivity', body: undefined },
      deps,
    );
    expect(json(res)).toEqual({ thingName: 'pi-01', connected: true, lastEvent: record });
  });
});

/**
 * The Lambda shell with the real SDK clients against a scripted HTTP server speaking the IoT
 * error protocol (x-amzn-ErrorType), to check how each service error maps to a status.
 */
describe('createCommandHandler with the AWS SDK clients', () => {
  let server: Server;
  let endpoint: string;
  /** Answers by method + path; default 404 ResourceNotFoundException. */
  const script = new Map<string, { status: number; errorType?: string; body: unknown }>();
  const seen: { method: string; path: string; body: string }[] = [];

  beforeAll(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const path = (req.url ?? '').split('?')[0] ?? '';
        seen.push({ method: req.method ?? '', path, body: Buffer.concat(chunks).toString() });
        const answer = script.get(`${req.method} ${path}`) ?? {
          status: 404,
          errorType: 'ResourceNotFoundException',
          body: { message: 'not found' },
        };
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (answer.errorType) headers['x-amzn-ErrorType'] = answer.errorType;
        res.writeHead(answer.status, headers);
        res.end(JSON.stringify(answer.body));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
  });

  const config = () => ({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    maxAttempts: 1,
  });
  const handler = () =>
    createCommandHandler({
      dataPlane: new IoTDataPlaneClient(config()),
      controlPlane: new IoTClient(config()),
      store: { getConnectivity: async () => undefined },
      logger: silentLogger(),
    });

  const event = (method: string, rawPath: string, body?: string, stage = '$default') =>
    httpApiEvent(method, rawPath, { stage, ...(body === undefined ? {} : { body }) });

  const describeThing = { status: 200, body: { thingName: 'pi-01', thingArn: 'arn', version: 1 } };

  it.each([
    ['ConflictException', 409, 409],
    ['InvalidRequestException', 400, 400],
    ['RequestEntityTooLargeException', 413, 413],
    ['ThrottlingException', 429, 503],
    ['InternalFailureException', 500, 503],
  ])('maps UpdateThingShadow %s to %i', async (errorType, status, expected) => {
    script.clear();
    script.set('GET /things/pi-01', describeThing);
    script.set('POST /things/pi-01/shadow', { status, errorType, body: { message: errorType } });
    script.set('GET /things/pi-01/shadow', { status: 200, body: { state: {}, version: 9 } });
    const res = await handler()(
      event('PUT', '/things/pi-01/desired', JSON.stringify({ desired: { logLevel: 'info' }, expectedVersion: 3 })),
    );
    expect(res.statusCode).toBe(expected);
    if (expected === 409) expect(JSON.parse(res.body ?? '{}')).toMatchObject({ expectedVersion: 3, currentVersion: 9 });
  });

  it('sends the update document with the expected version, under a named stage and a base64 body', async () => {
    script.clear();
    seen.length = 0;
    script.set('GET /things/pi-01', describeThing);
    script.set('POST /things/pi-01/shadow', {
      status: 200,
      body: { state: { desired: { logLevel: 'info' } }, version: 4 },
    });
    const body = Buffer.from(
      JSON.stringify({ desired: { logLevel: 'info' }, expectedVersion: 3, clientToken: 'c1' }),
    ).toString('base64');
    const res = await handler()({ ...event('PUT', '/prod/things/pi-01/desired', body, 'prod'), isBase64Encoded: true });
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body ?? '{}')).toEqual({
      thingName: 'pi-01',
      state: { desired: { logLevel: 'info' } },
      version: 4,
    });
    const update = seen.find((s) => s.method === 'POST');
    expect(JSON.parse(update?.body ?? '{}')).toEqual({
      state: { desired: { logLevel: 'info' } },
      version: 3,
      clientToken: 'c1',
    });
  });

  it('answers 404 when DescribeThing does not know the thing, without touching the shadow', async () => {
    script.clear();
    seen.length = 0;
    const res = await handler()(event('GET', '/things/pi-09/shadow'));
    expect(res.statusCode).toBe(404);
    expect(seen.map((s) => `${s.method} ${s.path}`)).toEqual(['GET /things/pi-09']);
  });

  it('answers 503 when IoT cannot be reached, and 500 without details for anything unexpected', async () => {
    const closed = createCommandHandler({
      dataPlane: new IoTDataPlaneClient({ ...config(), endpoint: 'http://127.0.0.1:1' }),
      controlPlane: new IoTClient({ ...config(), endpoint: 'http://127.0.0.1:1' }),
      store: { getConnectivity: async () => undefined },
      logger: silentLogger(),
    });
    expect((await closed(event('GET', '/things/pi-01/shadow'))).statusCode).toBe(503);

    script.clear();
    script.set('GET /things/pi-01', describeThing);
    const broken = createCommandHandler({
      dataPlane: new IoTDataPlaneClient(config()),
      controlPlane: new IoTClient(config()),
      store: {
        getConnectivity: async () => {
          throw new Error('disk on fire');
        },
      },
      logger: silentLogger(),
    });
    const res = await broken(event('GET', '/things/pi-01/connectivity'));
    expect(res.statusCode).toBe(500);
    expect(res.body).not.toContain('disk on fire');
    expect(JSON.parse(res.body ?? '{}')).toEqual({ message: 'internal error', requestId: 'req-1' });
  });

  it.each([
    ['not https', 'http://iot.example.com'],
    ['with a path', 'https://iot.example.com/x'],
  ])('refuses an IOT_DATA_ENDPOINT %s', async (_what, value) => {
    await expect(dataPlaneFromEnv({ IOT_DATA_ENDPOINT: value }, new IoTClient(config()))()).rejects.toThrow(
      /IOT_DATA_ENDPOINT/,
    );
  });

  it('discovers the data endpoint with DescribeEndpoint when IOT_DATA_ENDPOINT is unset', async () => {
    script.clear();
    seen.length = 0;
    script.set('GET /endpoint', { status: 200, body: { endpointAddress: 'abc-ats.iot.us-east-1.amazonaws.com' } });
    const client = await dataPlaneFromEnv({}, new IoTClient(config()))();
    const ep = await client.config.endpoint?.();
    expect(ep?.hostname).toBe('abc-ats.iot.us-east-1.amazonaws.com');
    expect(seen.map((s) => `${s.method} ${s.path}`)).toEqual(['GET /endpoint']);
    client.destroy();
  });
});
