import { type JsonObject, shadowTopics } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { createMemoryShadowStore, type ShadowStore } from '../../src/shadow/store.js';
import { createHarness, createHeldStore, type Harness } from './harness.js';

const enc = new TextEncoder();
const thing = 'lamp-1';
const topics = shadowTopics(thing);

async function mqtt(h: Harness, topic: string, payload: string | Uint8Array) {
  const from = h.published.length;
  await h.service.handleMqtt(topic, typeof payload === 'string' ? enc.encode(payload) : payload, { clientId: 'c1' });
  return h.since(from);
}

function only(messages: { topic: string; payload: JsonObject }[], topic: string): JsonObject {
  const found = messages.filter((m) => m.topic === topic);
  expect(found, `messages on ${topic}: ${JSON.stringify(messages)}`).toHaveLength(1);
  return (found[0] as { payload: JsonObject }).payload;
}

describe('exact documents from the AWS guide ("Simulating Device Shadow service communications")', () => {
  it('reproduces the accepted, delta, documents and get payloads of the smart lamp walkthrough', async () => {
    const h = createHarness();
    const named = shadowTopics('mySimulatedThing', 'simShadow1');
    h.clock.set(1591140517_000);
    const report = {
      state: { reported: { ID: 'SmartLamp21', ColorRGB: [128, 128, 128] } },
      clientToken: '426bfd96-e720-46d3-95cd-014e3ef12bb6',
    };
    // Three reports bring the document to version 3, as in the guide.
    for (let i = 0; i < 3; i++) await mqtt(h, named.update, JSON.stringify(report));
    const got = only(await mqtt(h, named.get, JSON.stringify({ clientToken: report.clientToken })), named.getAccepted);
    expect(got).toEqual({
      state: { reported: { ID: 'SmartLamp21', ColorRGB: [128, 128, 128] } },
      metadata: {
        reported: {
          ID: { timestamp: 1591140517 },
          ColorRGB: [{ timestamp: 1591140517 }, { timestamp: 1591140517 }, { timestamp: 1591140517 }],
        },
      },
      version: 3,
      timestamp: 1591140517,
      clientToken: '426bfd96-e720-46d3-95cd-014e3ef12bb6',
    });

    h.clock.set(1591141596_000);
    const res = await h.service.updateShadow(
      'mySimulatedThing',
      'simShadow1',
      enc.encode('{"state":{"desired":{"ColorRGB":[255,255,0]}},"clientToken":"21b21b21-bfd2-4279-8c65-e2f697ff4fab"}'),
    );
    const t1 = { timestamp: 1591141596 };
    expect(res).toEqual({
      status: 200,
      body: {
        state: { desired: { ColorRGB: [255, 255, 0] } },
        metadata: { desired: { ColorRGB: [t1, t1, t1] } },
        version: 4,
        timestamp: 1591141596,
        clientToken: '21b21b21-bfd2-4279-8c65-e2f697ff4fab',
      },
    });
    expect(h.published.find((m) => m.topic === named.updateDelta)?.payload).toEqual({
      version: 4,
      timestamp: 1591141596,
      state: { ColorRGB: [255, 255, 0] },
      metadata: { ColorRGB: [t1, t1, t1] },
      clientToken: '21b21b21-bfd2-4279-8c65-e2f697ff4fab',
    });

    h.clock.set(1591142747_000);
    const msgs = await mqtt(
      h,
      named.update,
      '{"state":{"reported":{"ColorRGB":[255,255,0]}},"clientToken":"a4dc2227-9213-4c6a-a6a5-053304f60258"}',
    );
    const t0 = { timestamp: 1591140517 };
    const t2 = { timestamp: 1591142747 };
    expect(only(msgs, named.updateAccepted)).toEqual({
      state: { reported: { ColorRGB: [255, 255, 0] } },
      metadata: { reported: { ColorRGB: [t2, t2, t2] } },
      version: 5,
      timestamp: 1591142747,
      clientToken: 'a4dc2227-9213-4c6a-a6a5-053304f60258',
    });
    expect(msgs.some((m) => m.topic === named.updateDelta)).toBe(false);
    expect(only(msgs, named.updateDocuments)).toEqual({
      previous: {
        state: {
          desired: { ColorRGB: [255, 255, 0] },
          reported: { ID: 'SmartLamp21', ColorRGB: [128, 128, 128] },
        },
        metadata: { desired: { ColorRGB: [t1, t1, t1] }, reported: { ID: t0, ColorRGB: [t0, t0, t0] } },
        version: 4,
      },
      current: {
        state: { desired: { ColorRGB: [255, 255, 0] }, reported: { ID: 'SmartLamp21', ColorRGB: [255, 255, 0] } },
        metadata: { desired: { ColorRGB: [t1, t1, t1] }, reported: { ID: t0, ColorRGB: [t2, t2, t2] } },
        version: 5,
      },
      timestamp: 1591142747,
      clientToken: 'a4dc2227-9213-4c6a-a6a5-053304f60258',
    });

    h.clock.set(1591143269_000);
    expect(await h.service.getShadow('mySimulatedThing', 'simShadow1')).toEqual({
      status: 200,
      body: {
        state: { desired: { ColorRGB: [255, 255, 0] }, reported: { ID: 'SmartLamp21', ColorRGB: [255, 255, 0] } },
        metadata: { desired: { ColorRGB: [t1, t1, t1] }, reported: { ID: t0, ColorRGB: [t2, t2, t2] } },
        version: 5,
        timestamp: 1591143269,
      },
    });
  });
});

describe('metadata and versions', () => {
  it('stamps each leaf when it is written and keeps the stamps of untouched leaves', async () => {
    const h = createHarness({ startMs: 1_000_000_500 });
    await mqtt(h, topics.update, '{"state":{"reported":{"a":1,"nested":{"x":1,"y":2}}}}');
    h.clock.advance(5_000);
    await mqtt(h, topics.update, '{"state":{"reported":{"nested":{"y":3}}}}');
    const doc = only(await mqtt(h, topics.get, ''), topics.getAccepted);
    expect(doc.metadata).toEqual({
      reported: { a: { timestamp: 1_000_000 }, nested: { x: { timestamp: 1_000_000 }, y: { timestamp: 1_000_005 } } },
    });
    expect(doc.timestamp).toBe(1_000_005);
  });

  it('answers accepted with metadata for deleted keys and removed sections too', async () => {
    const h = createHarness({ startMs: 2_000_000_000 });
    await mqtt(h, topics.update, '{"state":{"desired":{"a":1,"b":2}}}');
    const accepted = only(
      await mqtt(h, topics.update, '{"state":{"desired":{"a":null},"reported":null}}'),
      topics.updateAccepted,
    );
    expect(accepted).toEqual({
      state: { desired: { a: null }, reported: null },
      metadata: { desired: { a: { timestamp: 2_000_000 } }, reported: { timestamp: 2_000_000 } },
      version: 2,
      timestamp: 2_000_000,
    });
  });

  it('replaces a primitive with an object and an object with a primitive', async () => {
    const h = createHarness();
    await mqtt(h, topics.update, '{"state":{"reported":{"v":1,"o":{"k":1}}}}');
    await mqtt(h, topics.update, '{"state":{"reported":{"v":{"k":2},"o":5}}}');
    const doc = only(await mqtt(h, topics.get, ''), topics.getAccepted);
    expect(doc.state).toEqual({ reported: { v: { k: 2 }, o: 5 } });
  });

  it('keeps versions per shadow and increments on every accepted update, even with no change', async () => {
    const h = createHarness();
    for (let i = 1; i <= 3; i++) {
      const a = only(await mqtt(h, topics.update, '{"state":{"reported":{"same":true}}}'), topics.updateAccepted);
      expect(a.version).toBe(i);
    }
  });

  it('a version on the very first update must be 0', async () => {
    const h = createHarness();
    const rejected = only(await mqtt(h, topics.update, '{"state":{"reported":{}},"version":1}'), topics.updateRejected);
    expect(rejected.code).toBe(409);
    const accepted = only(
      await mqtt(h, topics.update, '{"state":{"reported":{"a":1}},"version":0}'),
      topics.updateAccepted,
    );
    expect(accepted.version).toBe(1);
  });
});

/** A section with `levels` nested objects below it, counted as AWS does ("one" … "five" is 5 levels). */
const deep = (levels: number): JsonObject => {
  let v: JsonObject = { leaf: 1 };
  for (let i = 1; i < levels; i++) v = { [`l${i}`]: v };
  return { top: v };
};

describe('update validation: every 400, 413 and 415 with IoT messages', () => {
  const token = { clientToken: 'tok-1' };
  const big = 'x'.repeat(8192);
  const cases: { name: string; payload: string | Uint8Array; code: number; message: string; echo: boolean }[] = [
    { name: 'not JSON', payload: '{"state":', code: 400, message: 'Invalid JSON', echo: false },
    { name: 'JSON that is not an object', payload: '[1,2]', code: 400, message: 'Invalid JSON', echo: false },
    {
      name: 'bytes that are not UTF-8',
      payload: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]),
      code: 415,
      message: 'Unsupported documented encoding; supported encoding is UTF-8',
      echo: false,
    },
    {
      name: 'missing state',
      payload: JSON.stringify({ ...token, desired: { a: 1 } }),
      code: 400,
      message: 'Missing required node: state',
      echo: true,
    },
    {
      name: 'state a string',
      payload: JSON.stringify({ ...token, state: 'on' }),
      code: 400,
      message: 'State node must be an object',
      echo: true,
    },
    {
      name: 'state an array',
      payload: JSON.stringify({ ...token, state: [] }),
      code: 400,
      message: 'State node must be an object',
      echo: true,
    },
    {
      name: 'desired an array',
      payload: JSON.stringify({ ...token, state: { desired: [1] } }),
      code: 400,
      message: 'Desired node must be an object',
      echo: true,
    },
    {
      name: 'reported a number',
      payload: JSON.stringify({ ...token, state: { reported: 3 } }),
      code: 400,
      message: 'Reported node must be an object',
      echo: true,
    },
    {
      name: 'a delta node in state',
      payload: JSON.stringify({ ...token, state: { delta: { a: 1 } } }),
      code: 400,
      message: "State contains an invalid node: 'delta'",
      echo: true,
    },
    {
      name: 'version a string',
      payload: JSON.stringify({ ...token, state: {}, version: '1' }),
      code: 400,
      message: 'Invalid version',
      echo: true,
    },
    {
      name: 'version negative',
      payload: JSON.stringify({ ...token, state: {}, version: -1 }),
      code: 400,
      message: 'Invalid version',
      echo: true,
    },
    {
      name: 'version fractional',
      payload: JSON.stringify({ ...token, state: {}, version: 1.5 }),
      code: 400,
      message: 'Invalid version',
      echo: true,
    },
    {
      name: 'clientToken of 65 bytes',
      payload: JSON.stringify({ clientToken: 'a'.repeat(65), state: {} }),
      code: 400,
      message: 'Invalid clientToken',
      echo: false,
    },
    {
      name: 'clientToken of 33 two-byte characters (66 bytes)',
      payload: JSON.stringify({ clientToken: 'é'.repeat(33), state: {} }),
      code: 400,
      message: 'Invalid clientToken',
      echo: false,
    },
    {
      name: 'clientToken a number',
      payload: JSON.stringify({ clientToken: 7, state: {} }),
      code: 400,
      message: 'Invalid clientToken',
      echo: false,
    },
    {
      name: 'seven levels below desired',
      payload: JSON.stringify({ ...token, state: { desired: deep(7) } }),
      code: 400,
      message: 'JSON contains too many levels of nesting; maximum is 6',
      echo: true,
    },
    {
      name: 'null inside an array',
      payload: JSON.stringify({ ...token, state: { desired: { colors: [null, 'RED'] } } }),
      code: 400,
      message: 'Invalid JSON',
      echo: true,
    },
    {
      name: 'a state over 8 KB',
      payload: JSON.stringify({ ...token, state: { reported: { big } } }),
      code: 413,
      message: 'The payload exceeds the maximum size allowed',
      echo: true,
    },
  ];

  it.each(cases)('rejects $name over MQTT on /update/rejected', async ({ payload, code, message, echo }) => {
    const h = createHarness({ startMs: 1_234_000 });
    const msgs = await mqtt(h, topics.update, payload);
    expect(msgs.map((m) => m.topic)).toEqual([topics.updateRejected]);
    expect(only(msgs, topics.updateRejected)).toEqual({
      code,
      message,
      timestamp: 1_234,
      ...(echo ? { clientToken: 'tok-1' } : {}),
    });
    expect((await h.service.getShadow(thing)).status).toBe(404);
  });

  it.each(cases)('rejects $name over HTTP with no MQTT message', async ({ payload, code, message }) => {
    const h = createHarness();
    const body = typeof payload === 'string' ? enc.encode(payload) : payload;
    const res = await h.service.updateShadow(thing, undefined, body);
    expect(res.status).toBe(code);
    expect(res.body).toEqual({ code, message });
    expect(res.errorType).toBe(
      code === 413
        ? 'RequestEntityTooLargeException'
        : code === 415
          ? 'UnsupportedDocumentEncodingException'
          : 'InvalidRequestException',
    );
    expect(h.published).toEqual([]);
  });

  it('accepts six levels below desired and ignores unknown top-level nodes', async () => {
    const h = createHarness();
    const msgs = await mqtt(
      h,
      topics.update,
      JSON.stringify({ state: { desired: deep(6) }, extra: { ignored: true } }),
    );
    expect(only(msgs, topics.updateAccepted).version).toBe(1);
  });

  it('accepts a clientToken of exactly 64 bytes and echoes it', async () => {
    const h = createHarness();
    const clientToken = 'b'.repeat(64);
    const msgs = await mqtt(h, topics.update, JSON.stringify({ state: { reported: { a: 1 } }, clientToken }));
    expect(only(msgs, topics.updateAccepted).clientToken).toBe(clientToken);
    expect(only(msgs, topics.updateDocuments).clientToken).toBe(clientToken);
  });

  it('counts the merged state against 8 KB, not the request alone', async () => {
    const h = createHarness();
    const half = 'y'.repeat(4100);
    expect(
      only(await mqtt(h, topics.update, JSON.stringify({ state: { reported: { a: half } } })), topics.updateAccepted),
    ).toBeDefined();
    const second = await mqtt(h, topics.update, JSON.stringify({ state: { desired: { b: half } }, clientToken: 'c' }));
    expect(only(second, topics.updateRejected)).toMatchObject({ code: 413, clientToken: 'c' });
    // Deleting the first key makes room again.
    const third = await mqtt(
      h,
      topics.update,
      JSON.stringify({ state: { desired: { b: half }, reported: { a: null } } }),
    );
    expect(only(third, topics.updateAccepted).version).toBe(2);
  });
});

describe('get and delete', () => {
  it('404 uses the thing name for the classic shadow and the shadow name for a named one, echoing clientToken', async () => {
    const h = createHarness();
    const named = shadowTopics(thing, 'cfg');
    expect(only(await mqtt(h, topics.get, '{"clientToken":"g1"}'), topics.getRejected)).toMatchObject({
      code: 404,
      message: "No shadow exists with name: 'lamp-1'",
      clientToken: 'g1',
    });
    expect(only(await mqtt(h, named.delete, '{"clientToken":"d1"}'), named.deleteRejected)).toMatchObject({
      code: 404,
      message: "No shadow exists with name: 'cfg'",
      clientToken: 'd1',
    });
    expect(await h.service.getShadow(thing, 'cfg')).toEqual({
      status: 404,
      body: { code: 404, message: "No shadow exists with name: 'cfg'" },
      errorType: 'ResourceNotFoundException',
    });
  });

  it('echoes clientToken on get/accepted and delete/accepted, and ignores a payload that is not JSON', async () => {
    const h = createHarness({ startMs: 9_000_000 });
    await mqtt(h, topics.update, '{"state":{"reported":{"a":1}}}');
    expect(only(await mqtt(h, topics.get, '{"clientToken":"g2"}'), topics.getAccepted).clientToken).toBe('g2');
    expect(only(await mqtt(h, topics.get, 'not json'), topics.getAccepted).clientToken).toBeUndefined();
    expect(only(await mqtt(h, topics.delete, '{"clientToken":"d2"}'), topics.deleteAccepted)).toEqual({
      version: 1,
      timestamp: 9_000,
      clientToken: 'd2',
    });
  });

  it('rejects a get whose clientToken is too long', async () => {
    const h = createHarness();
    const msg = only(await mqtt(h, topics.get, JSON.stringify({ clientToken: 'z'.repeat(65) })), topics.getRejected);
    expect(msg).toMatchObject({ code: 400, message: 'Invalid clientToken' });
  });

  it('HTTP delete publishes delete/accepted to MQTT subscribers; HTTP get publishes nothing', async () => {
    const h = createHarness();
    await h.service.updateShadow(thing, undefined, enc.encode('{"state":{"reported":{"a":1}}}'));
    const from = h.published.length;
    expect((await h.service.getShadow(thing)).status).toBe(200);
    expect(h.since(from)).toEqual([]);
    const res = await h.service.deleteShadow(thing);
    expect(res.status).toBe(200);
    expect(h.since(from).map((m) => m.topic)).toEqual([topics.deleteAccepted]);
  });

  it('HTTP update publishes update/accepted, delta and documents like an MQTT update', async () => {
    const h = createHarness();
    await h.service.updateShadow(thing, undefined, enc.encode('{"state":{"desired":{"a":1}}}'));
    expect(h.published.map((m) => m.topic)).toEqual([
      topics.updateAccepted,
      topics.updateDelta,
      topics.updateDocuments,
    ]);
  });

  it('rejects invalid names on the HTTP side', async () => {
    const h = createHarness();
    expect((await h.service.getShadow('bad/name')).status).toBe(400);
    expect((await h.service.getShadow(thing, 'bad name')).status).toBe(400);
  });
});

describe('MQTT routing', () => {
  it('ignores response topics and topics outside the shadow namespace', async () => {
    const h = createHarness();
    await mqtt(h, topics.updateAccepted, '{"state":{"reported":{"a":1}}}');
    await mqtt(h, topics.updateDelta, '{}');
    await mqtt(h, 'pifleet/lamp-1/telemetry', '{}');
    await mqtt(h, '$aws/things/lamp-1/shadow/bogus', '{}');
    expect(h.published).toEqual([]);
  });

  it('answers on the named shadow topics for a named shadow request', async () => {
    const h = createHarness();
    const named = shadowTopics(thing, 'settings');
    const msgs = await mqtt(h, named.update, '{"state":{"desired":{"x":1}}}');
    expect(msgs.map((m) => m.topic)).toEqual([named.updateAccepted, named.updateDelta, named.updateDocuments]);
  });
});

describe('registry check', () => {
  it('answers 404 Thing not found when a thingExists check says no; the list is empty', async () => {
    const h = createHarness({ thingExists: (name) => name === 'known' });
    const msgs = await mqtt(h, topics.update, '{"state":{"reported":{"a":1}},"clientToken":"t"}');
    expect(only(msgs, topics.updateRejected)).toMatchObject({
      code: 404,
      message: 'Thing not found',
      clientToken: 't',
    });
    expect((await h.service.listNamedShadows(thing)).body.results).toEqual([]);
    const ok = await h.service.updateShadow('known', undefined, enc.encode('{"state":{"reported":{"a":1}}}'));
    expect(ok.status).toBe(200);
  });
});

describe('ListNamedShadowsForThing', () => {
  it('lists existing named shadows in pages, without the classic or deleted ones', async () => {
    const h = createHarness({ startMs: 5_000_000 });
    const body = enc.encode('{"state":{"reported":{"a":1}}}');
    await h.service.updateShadow(thing, undefined, body);
    for (const name of ['c', 'a', 'e', 'b', 'd']) await h.service.updateShadow(thing, name, body);
    await h.service.updateShadow('other-thing', 'zz', body);
    await h.service.deleteShadow(thing, 'c');

    const page1 = await h.service.listNamedShadows(thing, { pageSize: 2 });
    expect(page1.status).toBe(200);
    expect(page1.body.results).toEqual(['a', 'b']);
    expect(page1.body.timestamp).toBe(5_000);
    expect(typeof page1.body.nextToken).toBe('string');
    const page2 = await h.service.listNamedShadows(thing, { pageSize: 2, nextToken: page1.body.nextToken as string });
    expect(page2.body.results).toEqual(['d', 'e']);
    expect(page2.body.nextToken).toBeUndefined();
    expect((await h.service.listNamedShadows(thing)).body.results).toEqual(['a', 'b', 'd', 'e']);
    expect((await h.service.listNamedShadows('nobody')).body).toEqual({ results: [], timestamp: 5_000 });
  });

  it.each([
    { pageSize: 0, nextToken: undefined },
    { pageSize: 101, nextToken: undefined },
    { pageSize: 2.5, nextToken: undefined },
    { pageSize: 10, nextToken: 'garbage' },
  ])('rejects pageSize $pageSize / nextToken $nextToken with 400', async ({ pageSize, nextToken }) => {
    const h = createHarness();
    const res = await h.service.listNamedShadows(thing, {
      pageSize,
      ...(nextToken === undefined ? {} : { nextToken }),
    });
    expect(res.status).toBe(400);
    expect(res.errorType).toBe('InvalidRequestException');
  });
});

describe('in-flight requests and durability', () => {
  it('answers 429 to the 11th request for a thing while 10 are in flight, and serves the others in order', async () => {
    const held = createHeldStore();
    const h = createHarness({ store: held.store });
    const pending = Array.from({ length: 10 }, (_, i) =>
      h.service.handleMqtt(
        topics.update,
        enc.encode(JSON.stringify({ state: { reported: { n: i } }, clientToken: `r${i}` })),
        {
          clientId: 'c1',
        },
      ),
    );
    await held.whenWaiting(1);
    expect(h.service.inFlight(thing)).toBe(10);
    expect(h.published).toEqual([]);

    await h.service.handleMqtt(topics.update, enc.encode('{"state":{"reported":{"n":99}},"clientToken":"r10"}'), {
      clientId: 'c1',
    });
    expect(h.published).toEqual([
      {
        topic: topics.updateRejected,
        payload: { code: 429, message: 'Too Many Requests', timestamp: expect.any(Number), clientToken: 'r10' },
      },
    ]);
    // HTTP shares the per-thing budget.
    const httpRes = await h.service.getShadow(thing);
    expect(httpRes).toMatchObject({ status: 429, errorType: 'ThrottlingException' });
    // Another thing is not affected (a get needs no write, which the held store would stall).
    expect((await h.service.getShadow('lamp-2')).status).toBe(404);

    held.release();
    await Promise.all(pending);
    const accepted = h.published.filter((m) => m.topic === topics.updateAccepted);
    expect(accepted.map((m) => m.payload.clientToken)).toEqual(Array.from({ length: 10 }, (_, i) => `r${i}`));
    expect(accepted.map((m) => m.payload.version)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    expect(h.service.inFlight(thing)).toBe(0);
    expect((await h.service.getShadow(thing)).body.state).toEqual({ reported: { n: 9 } });
  });

  it('publishes /update/accepted only after the store has saved the document', async () => {
    const held = createHeldStore();
    const h = createHarness({ store: held.store });
    const done = h.service.handleMqtt(topics.update, enc.encode('{"state":{"reported":{"a":1}}}'), { clientId: 'c1' });
    await held.whenWaiting(1);
    expect(h.published).toEqual([]);
    held.release();
    await done;
    expect(h.published.map((m) => m.topic)).toEqual([topics.updateAccepted, topics.updateDocuments]);
  });

  it('answers 500 Internal service failure when the store fails, and keeps serving', async () => {
    const inner = createMemoryShadowStore();
    let fail = true;
    const store: ShadowStore = {
      ...inner,
      save: async (s) => {
        if (fail) throw new Error('disk full');
        await inner.save(s);
      },
    };
    const h = createHarness({ store });
    const msgs = await mqtt(h, topics.update, '{"state":{"reported":{"a":1}},"clientToken":"x"}');
    expect(only(msgs, topics.updateRejected)).toMatchObject({
      code: 500,
      message: 'Internal service failure',
      clientToken: 'x',
    });
    expect((await h.service.updateShadow(thing, undefined, enc.encode('{"state":{}}'))).errorType).toBe(
      'InternalFailureException',
    );
    fail = false;
    expect(only(await mqtt(h, topics.update, '{"state":{"reported":{"a":1}}}'), topics.updateAccepted).version).toBe(1);
  });

  it('stop() waits for requests in flight and then answers 503', async () => {
    const held = createHeldStore();
    const h = createHarness({ store: held.store });
    const done = h.service.handleMqtt(topics.update, enc.encode('{"state":{"reported":{"a":1}}}'), { clientId: 'c1' });
    await held.whenWaiting(1);
    const stopped = h.service.stop();
    held.release();
    await stopped;
    await done;
    expect(h.published.map((m) => m.topic)).toEqual([topics.updateAccepted, topics.updateDocuments]);
    expect((await h.service.getShadow(thing)).status).toBe(503);
  });
});
