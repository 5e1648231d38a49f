import { type JsonObject, LIMITS, SHADOW_ERRORS, shadowTopics, validateDesiredState } from '@pifleet/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { openSqliteShadowStore } from '../../src/shadow/sqlite-store.js';
import { createHarness, type Harness } from './harness.js';

/**
 * Hostile shadow documents: keys that name parts of JavaScript's object model, and nesting far
 * past the limit. IoT treats `__proto__`, `constructor` and `prototype` as ordinary keys, so the
 * shadow stores and answers them as such, and nothing else in the process may notice.
 */

const enc = new TextEncoder();
const victim = 'other-thing';

async function mqtt(h: Harness, topic: string, payload: string) {
  const from = h.published.length;
  await h.service.handleMqtt(topic, enc.encode(payload), { clientId: 'attacker' });
  return h.since(from);
}

function payloadOn(messages: { topic: string; payload: JsonObject }[], topic: string): JsonObject | undefined {
  return messages.find((m) => m.topic === topic)?.payload;
}

/** Object.prototype has no key a document could have put there. */
function expectPrototypeClean(): void {
  const probe: Record<string, unknown> = {};
  for (const key of ['x', 'y', 'a', 'timestamp', 'polluted'])
    expect(probe[key], `Object.prototype.${key}`).toBeUndefined();
  expect(Object.keys(Object.prototype)).toEqual([]);
}

/** What every other thing must still be able to do afterwards. */
async function expectOthersUnaffected(h: Harness): Promise<void> {
  const desired = { outputs: { relay: true }, sampling: { bme280: 5000 } };
  expect(validateDesiredState(desired)).toEqual({ ok: true, value: desired });
  const res = await h.service.updateShadow(victim, undefined, enc.encode(JSON.stringify({ state: { desired } })));
  expect(res.status).toBe(200);
  expect((res.body.state as JsonObject).desired).toEqual(desired);
}

afterEach(() => {
  // If a test polluted the prototype, say so here rather than in every later test of the run.
  expectPrototypeClean();
});

describe('__proto__, constructor and prototype are ordinary keys', () => {
  it('a device reporting {"__proto__":{"x":1}} over MQTT is stored and answered as such, and pollutes nothing', async () => {
    const h = createHarness();
    const topics = shadowTopics('attacker');
    const body = '{"state":{"reported":{"__proto__":{"x":1}}},"clientToken":"t1"}';
    const messages = await mqtt(h, topics.update, body);
    const accepted = payloadOn(messages, topics.updateAccepted);
    expect(accepted).toEqual(
      JSON.parse(
        '{"state":{"reported":{"__proto__":{"x":1}}},"metadata":{"reported":{"__proto__":{"x":{"timestamp":1700000000}}}},"version":1,"timestamp":1700000000,"clientToken":"t1"}',
      ),
    );
    expectPrototypeClean();

    const got = payloadOn(await mqtt(h, topics.get, ''), topics.getAccepted);
    expect(JSON.stringify((got?.state as JsonObject | undefined)?.reported)).toBe('{"__proto__":{"x":1}}');
    await expectOthersUnaffected(h);
  });

  it('merges into, and deletes, a __proto__ key like any other', async () => {
    const h = createHarness();
    const update = async (reported: string) => {
      const res = await h.service.updateShadow('t', undefined, enc.encode(`{"state":{"reported":${reported}}}`));
      expect(res.status).toBe(200);
    };
    await update('{"__proto__":{"x":1}}');
    await update('{"__proto__":{"y":2},"a":{"__proto__":{"b":1},"constructor":{"c":1},"prototype":3}}');
    let got = await h.service.getShadow('t');
    expect(JSON.stringify((got.body.state as JsonObject).reported)).toBe(
      '{"__proto__":{"x":1,"y":2},"a":{"__proto__":{"b":1},"constructor":{"c":1},"prototype":3}}',
    );
    expect(JSON.stringify((got.body.metadata as JsonObject).reported)).toBe(
      '{"__proto__":{"x":{"timestamp":1700000000},"y":{"timestamp":1700000000}},' +
        '"a":{"__proto__":{"b":{"timestamp":1700000000}},"constructor":{"c":{"timestamp":1700000000}},"prototype":{"timestamp":1700000000}}}',
    );
    await update('{"__proto__":null,"a":{"constructor":null}}');
    got = await h.service.getShadow('t');
    expect(JSON.stringify((got.body.state as JsonObject).reported)).toBe('{"a":{"__proto__":{"b":1},"prototype":3}}');
    expectPrototypeClean();
    await expectOthersUnaffected(h);
  });

  it('a desired __proto__ (HTTP) produces a delta with that key, and the device reporting it clears the delta', async () => {
    const h = createHarness();
    const topics = shadowTopics('t');
    let from = h.published.length;
    const res = await h.service.updateShadow(
      't',
      undefined,
      enc.encode('{"state":{"desired":{"__proto__":{"x":1},"constructor":1,"n":{"prototype":true}}}}'),
    );
    expect(res.status).toBe(200);
    const delta = payloadOn(h.since(from), topics.updateDelta);
    expect(JSON.stringify(delta?.state)).toBe('{"__proto__":{"x":1},"constructor":1,"n":{"prototype":true}}');

    from = h.published.length;
    const messages = await mqtt(
      h,
      topics.update,
      '{"state":{"reported":{"__proto__":{"x":1},"constructor":1,"n":{"prototype":true}}}}',
    );
    expect(payloadOn(messages, topics.updateAccepted)).toBeDefined();
    expect(payloadOn(messages, topics.updateDelta)).toBeUndefined();
    const got = await h.service.getShadow('t');
    expect((got.body.state as JsonObject).delta).toBeUndefined();
    await expectOthersUnaffected(h);
  });

  it('survives the SQLite store: reloaded documents keep __proto__ as an own key', async () => {
    const store = openSqliteShadowStore({ path: ':memory:' });
    try {
      const h = createHarness({ store });
      await h.service.updateShadow('t', undefined, enc.encode('{"state":{"reported":{"__proto__":{"x":1}}}}'));
      await h.service.updateShadow('t', undefined, enc.encode('{"state":{"reported":{"__proto__":{"y":2}}}}'));
      const got = await h.service.getShadow('t');
      expect(JSON.stringify((got.body.state as JsonObject).reported)).toBe('{"__proto__":{"x":1,"y":2}}');
      await expectOthersUnaffected(h);
    } finally {
      await store.close();
    }
  });
});

function nested(levels: number): string {
  return `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;
}

describe('nesting far past the limit', () => {
  const tooDeep = { code: SHADOW_ERRORS.tooDeep.code, message: SHADOW_ERRORS.tooDeep.message };

  it.each([
    ['reported', 10_000],
    ['desired', 10_000],
    ['desired', 20_000],
  ])(
    'MQTT: %s nested %i levels is answered on /update/rejected with 400, clientToken echoed',
    async (section, levels) => {
      const h = createHarness();
      const topics = shadowTopics('t');
      const messages = await mqtt(h, topics.update, `{"clientToken":"deep","state":{"${section}":${nested(levels)}}}`);
      expect(payloadOn(messages, topics.updateRejected)).toEqual({
        ...tooDeep,
        clientToken: 'deep',
        timestamp: 1700000000,
      });
      expect(payloadOn(messages, topics.updateAccepted)).toBeUndefined();
      await expectOthersUnaffected(h);
    },
  );

  it('MQTT: a deep array inside reported is rejected the same way', async () => {
    const h = createHarness();
    const topics = shadowTopics('t');
    const deepArray = `${'['.repeat(10_000)}1${']'.repeat(10_000)}`;
    const messages = await mqtt(h, topics.update, `{"clientToken":"arr","state":{"reported":{"a":${deepArray}}}}`);
    expect(payloadOn(messages, topics.updateRejected)).toMatchObject({ ...tooDeep, clientToken: 'arr' });
  });

  it('HTTP: UpdateThingShadow of a 10,000-level document answers 400 with IoT message, not 500', async () => {
    const h = createHarness();
    const body = `{"state":{"desired":${nested(10_000)}}}`;
    expect(body.length).toBeGreaterThan(60_000);
    const res = await h.service.updateShadow('t', undefined, enc.encode(body));
    expect(res).toEqual({ status: 400, body: tooDeep, errorType: 'InvalidRequestException' });
    await expectOthersUnaffected(h);
  });

  it('nesting outside state is ignored as IoT ignores content outside state, at any depth', async () => {
    const h = createHarness();
    const res = await h.service.updateShadow(
      't',
      undefined,
      enc.encode(`{"state":{"reported":{"ok":1}},"extra":${nested(10_000)}}`),
    );
    expect(res.status).toBe(200);
  });

  it('MQTT get and delete with a deep payload still answer (their content is ignored)', async () => {
    const h = createHarness();
    const topics = shadowTopics('t');
    await h.service.updateShadow('t', undefined, enc.encode('{"state":{"reported":{"ok":1}}}'));
    expect(payloadOn(await mqtt(h, topics.get, nested(10_000)), topics.getAccepted)).toBeDefined();
    expect(payloadOn(await mqtt(h, topics.delete, nested(10_000)), topics.deleteAccepted)).toBeDefined();
  });

  it('HTTP: a request document over 128 KB is refused with 413 before it is parsed', async () => {
    const h = createHarness();
    const body = `{"state":{"reported":{"big":"${'x'.repeat(LIMITS.maxMessageBytes)}"}}}`;
    const res = await h.service.updateShadow('t', undefined, enc.encode(body));
    expect(res).toEqual({
      status: 413,
      body: { code: 413, message: SHADOW_ERRORS.payloadTooLarge.message },
      errorType: 'RequestEntityTooLargeException',
    });
  });
});
