import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ConflictException,
  DeleteThingShadowCommand,
  GetThingShadowCommand,
  InvalidRequestException,
  IoTDataPlaneClient,
  ListNamedShadowsForThingCommand,
  PublishCommand,
  RequestEntityTooLargeException,
  ResourceNotFoundException,
  ThrottlingException,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import type { JsonObject } from '@pifleet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_PROPERTIES } from '../../src/broker/properties.js';
import { createShadowHttpRoutes, type DataPlanePublish } from '../../src/shadow/http-routes.js';
import { createHarness, createHeldStore, type Harness } from './harness.js';
import { bindThing, runSequence, SEQUENCES, type StepObservation } from './sequences.js';

/**
 * The data-plane routes behind a bare node:http server (no SigV4 check here; the real HTTP
 * server adds it), driven by the real `@aws-sdk/client-iot-data-plane`.
 */
function serve(h: Harness, published: DataPlanePublish[]) {
  const routes = createShadowHttpRoutes({ shadows: h.service, publish: (m) => void published.push(m) });
  return http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      void routes
        .handle({
          method: req.method ?? 'GET',
          path: url.pathname,
          query: url.searchParams,
          headers: req.headers,
          body: Buffer.concat(chunks),
        })
        .then((answer) => {
          const out = answer ?? { status: 404, headers: {}, body: '' };
          res.writeHead(out.status, out.headers);
          res.end(out.body);
        });
    });
  });
}

const dec = new TextDecoder();
const enc = new TextEncoder();
const parse = (payload: Uint8Array | undefined) => JSON.parse(dec.decode(payload)) as JsonObject;

describe('IoT data-plane routes with @aws-sdk/client-iot-data-plane', () => {
  let h: Harness;
  let server: http.Server;
  let client: IoTDataPlaneClient;
  const published: DataPlanePublish[] = [];

  beforeAll(async () => {
    h = createHarness({ startMs: 1_600_000_000_000 });
    server = serve(h, published);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    client = new IoTDataPlaneClient({
      endpoint: `http://127.0.0.1:${port}`,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
      maxAttempts: 1,
    });
  });

  afterAll(async () => {
    client.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('updates, gets, lists and deletes classic and named shadows', async () => {
    const up = await client.send(
      new UpdateThingShadowCommand({
        thingName: 'sdk-1',
        payload: enc.encode('{"state":{"desired":{"led":true}},"clientToken":"sdk-token"}'),
      }),
    );
    expect(parse(up.payload)).toMatchObject({
      state: { desired: { led: true } },
      version: 1,
      clientToken: 'sdk-token',
    });
    await client.send(
      new UpdateThingShadowCommand({
        thingName: 'sdk-1',
        shadowName: 'cfg',
        payload: enc.encode('{"state":{"reported":{"a":1}}}'),
      }),
    );
    const got = await client.send(new GetThingShadowCommand({ thingName: 'sdk-1' }));
    expect(parse(got.payload)).toMatchObject({ state: { desired: { led: true }, delta: { led: true } }, version: 1 });
    const named = await client.send(new GetThingShadowCommand({ thingName: 'sdk-1', shadowName: 'cfg' }));
    expect(parse(named.payload).state).toEqual({ reported: { a: 1 } });
    const list = await client.send(new ListNamedShadowsForThingCommand({ thingName: 'sdk-1', pageSize: 10 }));
    expect(list.results).toEqual(['cfg']);
    expect(list.timestamp).toBe(1_600_000_000);
    const del = await client.send(new DeleteThingShadowCommand({ thingName: 'sdk-1', shadowName: 'cfg' }));
    expect(parse(del.payload)).toEqual({ version: 1, timestamp: 1_600_000_000 });
    await expect(
      client.send(new GetThingShadowCommand({ thingName: 'sdk-1', shadowName: 'cfg' })),
    ).rejects.toBeInstanceOf(ResourceNotFoundException);
  });

  it('maps each shadow error to the SDK exception with IoT message', async () => {
    const update = (payload: string) =>
      client.send(new UpdateThingShadowCommand({ thingName: 'sdk-2', payload: enc.encode(payload) }));
    await expect(update('{nope')).rejects.toMatchObject({ name: 'InvalidRequestException', message: 'Invalid JSON' });
    await expect(update('{"state":{"delta":{}}}')).rejects.toBeInstanceOf(InvalidRequestException);
    await update('{"state":{"reported":{"a":1}}}');
    await expect(update('{"state":{"reported":{"a":2}},"version":7}')).rejects.toMatchObject({
      name: 'ConflictException',
      message: 'Version conflict',
      $metadata: { httpStatusCode: 409 },
    });
    await expect(update('{"state":{"reported":{"a":2}},"version":7}')).rejects.toBeInstanceOf(ConflictException);
    await expect(update(JSON.stringify({ state: { reported: { big: 'x'.repeat(9000) } } }))).rejects.toBeInstanceOf(
      RequestEntityTooLargeException,
    );
    await expect(client.send(new DeleteThingShadowCommand({ thingName: 'sdk-nobody' }))).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
      message: "No shadow exists with name: 'sdk-nobody'",
    });
  });

  it('publishes with the topic decoded, the raw payload, qos and retain', async () => {
    await client.send(
      new PublishCommand({ topic: 'pifleet/pi-1/commands', qos: 1, payload: enc.encode('{"cmd":"reboot"}') }),
    );
    await client.send(new PublishCommand({ topic: '$aws/things/pi-1/shadow/get', retain: false }));
    expect(published.map((p) => ({ ...p, payload: dec.decode(p.payload) }))).toEqual([
      { topic: 'pifleet/pi-1/commands', qos: 1, retain: false, payload: '{"cmd":"reboot"}', properties: {} },
      { topic: '$aws/things/pi-1/shadow/get', qos: 0, retain: false, payload: '', properties: {} },
    ]);
    expect(published.every((p) => p.properties === NO_PROPERTIES)).toBe(true);
    await expect(client.send(new PublishCommand({ topic: 'a/+/b' }))).rejects.toBeInstanceOf(InvalidRequestException);
  });

  it('hands the MQTT 5 properties of a Publish to the publisher, and refuses a bad one', async () => {
    published.length = 0;
    await client.send(
      new PublishCommand({
        topic: 'pifleet/pi-1/commands',
        userProperties: '[{"a":"1"},{"a":"2","b":"3"}]',
        payloadFormatIndicator: 'UTF8_DATA',
        contentType: 'text/plain',
        responseTopic: 'pifleet/pi-1/replies',
        correlationData: 'AAE=',
        messageExpiry: 0,
      }),
    );
    const [sent] = published;
    expect({ ...sent?.properties, userProperties: { ...sent?.properties.userProperties } }).toEqual({
      userProperties: { a: ['1', '2'], b: '3' },
      payloadFormatIndicator: true,
      contentType: 'text/plain',
      responseTopic: 'pifleet/pi-1/replies',
      correlationData: Buffer.from([0, 1]),
      messageExpiryInterval: 0,
    });
    await expect(
      client.send(new PublishCommand({ topic: 'pifleet/pi-1/commands', correlationData: 'AAE' })),
    ).resolves.toBeDefined();
    await expect(
      client.send(new PublishCommand({ topic: 'pifleet/pi-1/commands', messageExpiry: 1.5 })),
    ).rejects.toBeInstanceOf(InvalidRequestException);
    expect(published).toHaveLength(2);
  });

  it.each(SEQUENCES.map((s, i) => ({ name: s.name, sequence: s, thing: `sdk-seq-${i}` })))(
    'runs the documentation sequence over the SDK: $name',
    async ({ sequence, thing }) => {
      await runSequence(bindThing(sequence, thing), thing, async (t, step): Promise<StepObservation> => {
        const from = h.published.length;
        try {
          const out =
            step.op === 'update'
              ? await client.send(
                  new UpdateThingShadowCommand({
                    thingName: t,
                    ...(step.shadowName === undefined ? {} : { shadowName: step.shadowName }),
                    payload: enc.encode(JSON.stringify(step.request)),
                  }),
                )
              : step.op === 'get'
                ? await client.send(
                    new GetThingShadowCommand({
                      thingName: t,
                      ...(step.shadowName ? { shadowName: step.shadowName } : {}),
                    }),
                  )
                : await client.send(
                    new DeleteThingShadowCommand({
                      thingName: t,
                      ...(step.shadowName ? { shadowName: step.shadowName } : {}),
                    }),
                  );
          const messages = h.since(from);
          const delta = messages.find((m) => m.topic.endsWith('/update/delta'));
          return {
            ok: true,
            body: parse(out.payload),
            ...(step.op === 'update' ? { delta: delta?.payload ?? null } : {}),
          };
        } catch (err) {
          const e = err as { $metadata?: { httpStatusCode?: number }; message: string };
          return { ok: false, body: { code: e.$metadata?.httpStatusCode ?? 0, message: e.message } };
        }
      });
    },
  );
});

describe('throttling over HTTP', () => {
  it('answers ThrottlingException while 10 requests for the thing are in flight', async () => {
    const held = createHeldStore();
    const h = createHarness({ store: held.store });
    const server = serve(h, []);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const client = new IoTDataPlaneClient({
      endpoint: `http://127.0.0.1:${port}`,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
      maxAttempts: 1,
    });
    try {
      const pending = Array.from({ length: 10 }, () =>
        client.send(
          new UpdateThingShadowCommand({ thingName: 'busy', payload: enc.encode('{"state":{"reported":{"a":1}}}') }),
        ),
      );
      await held.whenWaiting(1);
      await expect.poll(() => h.service.inFlight('busy'), { timeout: 5_000 }).toBe(10);
      await expect(client.send(new GetThingShadowCommand({ thingName: 'busy' }))).rejects.toBeInstanceOf(
        ThrottlingException,
      );
      held.release();
      const done = await Promise.all(pending);
      expect(done.map((d) => parse(d.payload).version as number).sort((a, b) => a - b)).toEqual([
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
      ]);
    } finally {
      client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
