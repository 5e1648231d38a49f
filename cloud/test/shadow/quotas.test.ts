import {
  GetThingShadowCommand,
  ListNamedShadowsForThingCommand,
  RequestEntityTooLargeException,
  ThrottlingException,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import { type JsonObject, shadowTopics } from '@pifleet/protocol';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { QUOTA_NAMES, type QuotaName, resolveLimits } from '../../src/limits/index.js';
import type { ShadowQuotas } from '../../src/shadow/service.js';
import type { InProcessCore } from '../../src/testing/in-process-core.js';
import { provisionThing } from '../../src/testing/provision.js';
import { thingMqttOptions } from '../../src/testing/thing-mqtt.js';
import { coresWithLimits } from '../http/harness.js';
import { createHarness, createHeldStore } from './harness.js';

/**
 * The Device Shadow quotas: requests per second per thing (20), requests in flight per thing (10),
 * document size (8 KB) and depth (6), from the core's limits. Below, at and over each, through the
 * service with a virtual clock, then with the real data-plane client and mqtt.js on the local core.
 */

const enc = new TextEncoder();
const body = (doc: JsonObject) => enc.encode(JSON.stringify(doc));

function counters() {
  const hits: Array<{ quota: QuotaName; subject: string | undefined }> = [];
  return {
    hits,
    throttles: { hit: (quota: QuotaName, subject?: string) => void hits.push({ quota, subject }) },
    count: (quota: QuotaName) => hits.filter((h) => h.quota === quota).length,
  };
}

function service(quotas: Partial<ShadowQuotas>) {
  const c = counters();
  const h = createHarness({ quotas, throttles: c.throttles });
  return { h, c };
}

describe('requests per second per thing (service, virtual clock)', () => {
  it('serves the rate at once, answers the next 429 "Too Many Requests" with its clientToken, and serves again a token later', async () => {
    const { h, c } = service({ requestsPerSecondPerThing: 3 });
    const topics = shadowTopics('lamp');
    for (let i = 0; i < 3; i++) {
      await h.service.handleMqtt(topics.update, body({ state: { reported: { n: i } }, clientToken: `u${i}` }), {
        clientId: 'lamp',
      });
    }
    const from = h.published.length;
    await h.service.handleMqtt(topics.update, body({ state: { reported: { n: 3 } }, clientToken: 'u3' }), {
      clientId: 'lamp',
    });
    expect(h.since(from)).toEqual([
      {
        topic: topics.updateRejected,
        payload: { code: 429, message: 'Too Many Requests', timestamp: expect.any(Number), clientToken: 'u3' },
      },
    ]);
    expect(c.hits).toEqual([{ quota: 'shadowRequestsPerSecondPerThing', subject: 'lamp' }]);
    // The throttled update changed nothing.
    expect((await h.service.getShadow('lamp')).status).toBe(429);
    h.clock.advance(334);
    const got = await h.service.getShadow('lamp');
    expect(got).toMatchObject({ status: 200, body: { version: 3, state: { reported: { n: 2 } } } });
  });

  it('counts every shadow request of the thing together: get, update, delete, named shadows, MQTT and HTTP, ListNamedShadowsForThing', async () => {
    const { h, c } = service({ requestsPerSecondPerThing: 5 });
    const named = shadowTopics('pump', 'cfg');
    await h.service.handleMqtt(named.update, body({ state: { desired: { on: true } } }), { clientId: 'pump' });
    await h.service.handleMqtt(shadowTopics('pump').get, new Uint8Array(0), { clientId: 'pump' });
    expect((await h.service.updateShadow('pump', undefined, body({ state: { reported: { a: 1 } } }))).status).toBe(200);
    expect((await h.service.listNamedShadows('pump')).status).toBe(200);
    expect((await h.service.deleteShadow('pump', 'cfg')).status).toBe(200);
    const sixth = await h.service.getShadow('pump');
    expect(sixth).toEqual({
      status: 429,
      body: { code: 429, message: 'Too Many Requests' },
      errorType: 'ThrottlingException',
    });
    expect((await h.service.listNamedShadows('pump')).status).toBe(429);
    expect(c.count('shadowRequestsPerSecondPerThing')).toBe(2);
    // Another thing has its own budget.
    expect((await h.service.getShadow('other')).status).toBe(404);
  });

  it('is not enforced when the quota is null (the --limits off case)', async () => {
    const { h, c } = service({ requestsPerSecondPerThing: null });
    for (let i = 0; i < 50; i++) {
      expect((await h.service.updateShadow('t', undefined, body({ state: { reported: { i } } }))).status).toBe(200);
    }
    expect(c.hits).toEqual([]);
  });
});

describe('requests in flight per thing (service)', () => {
  it('takes its bound from the quotas and counts each request refused past it', async () => {
    const held = createHeldStore();
    const c = counters();
    const h = createHarness({ store: held.store, quotas: { inFlightPerThing: 2 }, throttles: c.throttles });
    const first = h.service.updateShadow('busy', undefined, body({ state: { reported: { a: 1 } } }));
    const second = h.service.updateShadow('busy', undefined, body({ state: { reported: { a: 2 } } }));
    await held.whenWaiting(1);
    const third = await h.service.updateShadow('busy', undefined, body({ state: { reported: { a: 3 } } }));
    expect(third).toMatchObject({ status: 429, errorType: 'ThrottlingException' });
    expect(c.hits).toEqual([{ quota: 'shadowInFlightPerThing', subject: 'busy' }]);
    held.release();
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
    expect(await h.service.getShadow('busy')).toMatchObject({ body: { version: 2, state: { reported: { a: 2 } } } });
  });
});

describe('document size and depth (service)', () => {
  /** `levels` objects below the section: {"top": {"l2": {… {"leaf": 1}}}} (service.test.ts's convention). */
  const nested = (levels: number): JsonObject => {
    let doc: JsonObject = { leaf: 1 };
    for (let i = 1; i < levels; i++) doc = { [`l${i}`]: doc };
    return { top: doc };
  };

  it.each([
    ['below', 2, 200],
    ['at', 3, 200],
    ['over', 4, 400],
  ] as const)('%s a depth of 3 levels: %d levels answer %d', async (_, levels, status) => {
    const { h, c } = service({ depth: 3 });
    const res = await h.service.updateShadow('d', undefined, body({ state: { desired: nested(levels) } }));
    expect(res.status).toBe(status);
    if (status === 400) {
      expect(res.body).toEqual({ code: 400, message: 'JSON contains too many levels of nesting; maximum is 3' });
      expect(c.hits).toEqual([{ quota: 'shadowDepth', subject: 'd' }]);
    } else expect(c.hits).toEqual([]);
  });

  it("keeps AWS's message at the default depth of 6", async () => {
    const { h } = service({});
    const res = await h.service.updateShadow('d', undefined, body({ state: { desired: nested(7) } }));
    expect(res.body).toEqual({ code: 400, message: 'JSON contains too many levels of nesting; maximum is 6' });
  });

  it('holds the stored state to documentBytes: at the size accepted, one byte over 413 and unchanged', async () => {
    // {"reported":{"v":"…"}} is 21 bytes plus the value: 41 with 20 x's.
    const { h, c } = service({ documentBytes: 41 });
    const at = await h.service.updateShadow('s', undefined, body({ state: { reported: { v: 'x'.repeat(20) } } }));
    expect(at.status).toBe(200);
    const over = await h.service.updateShadow('s', undefined, body({ state: { reported: { w: 'y' } } }));
    expect(over).toMatchObject({
      status: 413,
      body: { code: 413, message: 'The payload exceeds the maximum size allowed' },
      errorType: 'RequestEntityTooLargeException',
    });
    expect(c.hits).toEqual([{ quota: 'shadowDocumentBytes', subject: 's' }]);
    expect(await h.service.getShadow('s')).toMatchObject({
      body: { version: 1, state: { reported: { v: 'x'.repeat(20) } } },
    });
  });
});

// --- The local core, real clients -------------------------------------------------------------

const start = coresWithLimits('shadow-quotas');

const update = (thingName: string, doc: JsonObject, shadowName?: string) =>
  new UpdateThingShadowCommand({ thingName, payload: body(doc), ...(shadowName ? { shadowName } : {}) });

describe('the local core: the data plane (@aws-sdk/client-iot-data-plane)', () => {
  it('answers ThrottlingException (429) past the per-thing rate, counts it, and loses no accepted update', async () => {
    const core = await start('http', 'aws', { shadowRequestsPerSecondPerThing: 3 });
    const results = await Promise.allSettled([
      core.data.send(update('valve', { state: { reported: { a: 1 } } })),
      core.data.send(update('valve', { state: { reported: { b: 2 } } }, 'cfg')),
      core.data.send(new ListNamedShadowsForThingCommand({ thingName: 'valve' })),
      core.data.send(update('valve', { state: { reported: { c: 3 } } })),
    ]);
    const rejected = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
    // Which of the four arrives last is the network's choice; exactly one is over the rate.
    expect(rejected).toHaveLength(1);
    expect(rejected[0]).toBeInstanceOf(ThrottlingException);
    expect((rejected[0] as ThrottlingException).$metadata.httpStatusCode).toBe(429);
    expect(core.core.services.throttles.snapshot().shadowRequestsPerSecondPerThing).toBe(1);
    // Every classic update answered 200 is in the shadow; a refused one is not.
    const classic: JsonObject = {};
    if (results[0]?.status === 'fulfilled') classic.a = 1;
    if (results[3]?.status === 'fulfilled') classic.c = 3;
    // The GET is a request too: polled until the rate lets it through.
    await expect
      .poll(async () => {
        const out = await core.data.send(new GetThingShadowCommand({ thingName: 'valve' })).then(
          (r) => JSON.parse(new TextDecoder().decode(r.payload)) as JsonObject,
          () => undefined,
        );
        return out?.state;
      })
      .toEqual({ reported: classic });
  });

  it("holds updates to the limits file's document size (413 RequestEntityTooLargeException)", async () => {
    const core = await start('size', 'aws', { shadowDocumentBytes: 64 });
    await expect(core.data.send(update('big', { state: { reported: { v: 'x'.repeat(80) } } }))).rejects.toBeInstanceOf(
      RequestEntityTooLargeException,
    );
    expect(core.core.services.throttles.snapshot().shadowDocumentBytes).toBe(1);
    await expect(core.data.send(update('big', { state: { reported: { v: 'x'.repeat(20) } } }))).resolves.toBeDefined();
  });

  it('throttles 30 concurrent updates of one thing under the aws defaults, and none with --limits off', async () => {
    const aws = await start('defaults', 'aws');
    const off = await start('off', 'off');
    const burst = (core: InProcessCore) =>
      Promise.allSettled(
        Array.from({ length: 30 }, (_, i) => core.data.send(update('hot', { state: { reported: { [`k${i}`]: i } } }))),
      );
    const throttled = (await burst(aws)).filter((r) => r.status === 'rejected');
    expect(throttled.length).toBeGreaterThan(0);
    expect(throttled.every((r) => r.status === 'rejected' && r.reason instanceof ThrottlingException)).toBe(true);
    const snapshot = aws.core.services.throttles.snapshot();
    expect(snapshot.shadowRequestsPerSecondPerThing + snapshot.shadowInFlightPerThing).toBe(throttled.length);

    const offResults = await burst(off);
    expect(offResults.filter((r) => r.status === 'rejected')).toEqual([]);
    const stored = await off.data.send(new GetThingShadowCommand({ thingName: 'hot' }));
    const doc = JSON.parse(new TextDecoder().decode(stored.payload)) as {
      version: number;
      state: { reported: JsonObject };
    };
    expect(doc.version).toBe(30);
    expect(Object.keys(doc.state.reported)).toHaveLength(30);
    expect(off.core.services.throttles.total()).toBe(0);
  });
});

describe('the local core: MQTT (mqtt.js over mutual TLS)', () => {
  it('answers /get/rejected 429 "Too Many Requests" with the clientToken past the per-thing rate', async () => {
    const core = await start('mqtt', 'aws', { shadowRequestsPerSecondPerThing: 2 });
    const thing = await provisionThing(core, 'sensor-1');
    const client = await mqtt.connectAsync(thingMqttOptions(core.info, thing));
    try {
      const topics = shadowTopics('sensor-1');
      const answers: Array<{ topic: string; payload: JsonObject }> = [];
      const three = new Promise<void>((resolve) => {
        client.on('message', (topic, payload) => {
          answers.push({ topic, payload: JSON.parse(payload.toString()) as JsonObject });
          if (answers.length === 3) resolve();
        });
      });
      await client.subscribeAsync([topics.getAccepted, topics.getRejected], { qos: 1 });
      for (const token of ['g0', 'g1', 'g2']) {
        await client.publishAsync(topics.get, JSON.stringify({ clientToken: token }), { qos: 1 });
      }
      await three;
      const byToken = new Map(answers.map((a) => [a.payload.clientToken, a]));
      // No shadow yet: the two within the rate answer 404, the third 429.
      expect(byToken.get('g0')?.payload.code).toBe(404);
      expect(byToken.get('g1')?.payload.code).toBe(404);
      expect(byToken.get('g2')).toEqual({
        topic: topics.getRejected,
        payload: { code: 429, message: 'Too Many Requests', timestamp: expect.any(Number), clientToken: 'g2' },
      });
      expect(core.core.services.throttles.snapshot().shadowRequestsPerSecondPerThing).toBe(1);
    } finally {
      await client.endAsync();
    }
  });
});

describe('the quota table', () => {
  it("holds the Device Shadow quotas at AWS's values", () => {
    const aws = resolveLimits('aws');
    expect(aws.values.shadowRequestsPerSecondPerThing).toBe(20);
    expect(aws.values.shadowInFlightPerThing).toBe(10);
    expect(aws.values.shadowDocumentBytes).toBe(8192);
    expect(aws.values.shadowDepth).toBe(6);
    const off = resolveLimits('off');
    expect(off.values.shadowRequestsPerSecondPerThing).toBeNull();
    expect(off.values.shadowInFlightPerThing).toBeNull();
    // Sizes are the wire contract: off keeps them.
    expect(off.values.shadowDocumentBytes).toBe(8192);
    expect(QUOTA_NAMES).toContain('shadowDepth');
  });
});
