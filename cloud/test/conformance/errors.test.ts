import { join } from 'node:path';
import {
  ConflictException,
  DeleteThingShadowCommand,
  GetThingShadowCommand,
  InvalidRequestException,
  ListNamedShadowsForThingCommand,
  RequestEntityTooLargeException,
  ResourceNotFoundException,
  ThrottlingException,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import { type JsonObject, MQTT_PROTOCOLS, type MqttProtocol, SHADOW_ERRORS, shadowTopics } from '@pifleet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveLimits } from '../../src/limits/index.js';
import { openSqliteShadowStore } from '../../src/shadow/sqlite-store.js';
import {
  type Core,
  connectDevice,
  createGatedStore,
  type DeviceClient,
  openShadowDevice,
  provisionThing,
  rawSubscribe,
  type ShadowDevice,
  settle,
  startCore,
} from './harness.js';

/**
 * Every shadow error code through real clients against the composed core: 400 (each variant), 404,
 * 409, 413 and 429, for classic and named shadows, over MQTT (IotShadowClientv2, or a raw PUBLISH
 * on the SDK connection for what the v2 client cannot send), each over MQTT 3.1.1 and MQTT 5, and
 * over the HTTP data plane.
 * Throttling is made deterministic by holding the store's writes at a gate.
 */

let core: Core;
let gate: ReturnType<typeof createGatedStore>;

beforeAll(async () => {
  core = await startCore('conf-err', {
    // Every case here goes to one thing per protocol, back to back: past IoT Core's 20 shadow
    // requests per second per thing, which AWS would throttle. The rate has its own suite
    // (shadow/quotas.test.ts); this one tests each error, the in-flight 429 included.
    limits: resolveLimits('aws', { shadowRequestsPerSecondPerThing: null }),
    shadowStore: (dataDir) => {
      gate = createGatedStore(openSqliteShadowStore({ path: join(dataDir, 'shadows.sqlite') }));
      return gate.store;
    },
  });
});
afterAll(async () => {
  gate?.release();
  await core?.stop();
});

/** A thing name per protocol, so both runs share one core without sharing a thing. */
const named = (protocol: MqttProtocol, base: string) => `${base}-${protocol === '5' ? 'v5' : 'v3'}`;

const enc = new TextEncoder();
/** `depth` nested objects below the section, counted as IoT counts levels (the leaf value is not one). */
const nested = (depth: number): JsonObject => (depth === 0 ? { leaf: 1 } : { level: nested(depth - 1) });
const big = { state: { reported: { blob: 'x'.repeat(9 * 1024) } } };

interface RawCase {
  readonly name: string;
  readonly shadowName?: string;
  readonly payload: string;
  readonly code: number;
  readonly message: string;
  /** The clientToken the rejection must echo; undefined when the request cannot carry one. */
  readonly token?: string;
}

const rawCases: RawCase[] = [
  { name: 'invalid JSON', payload: '{"state": {"reported": ', ...SHADOW_ERRORS.invalidJson },
  { name: 'a JSON array', payload: '[1,2]', ...SHADOW_ERRORS.invalidJson },
  {
    name: 'missing state',
    payload: '{"clientToken":"t-missing"}',
    token: 't-missing',
    ...SHADOW_ERRORS.missingState,
  },
  {
    name: 'state not an object',
    payload: '{"state":"on","clientToken":"t-state"}',
    token: 't-state',
    ...SHADOW_ERRORS.stateNotObject,
  },
  {
    name: 'unexpected node in state',
    shadowName: 'cfg',
    payload: '{"state":{"delta":{"a":1}},"clientToken":"t-node"}',
    token: 't-node',
    code: 400,
    message: "State contains an invalid node: 'delta'",
  },
  {
    name: 'desired not an object',
    payload: '{"state":{"desired":[1]},"clientToken":"t-desired"}',
    token: 't-desired',
    ...SHADOW_ERRORS.desiredNotObject,
  },
  {
    name: 'invalid version',
    payload: '{"state":{"reported":{"a":1}},"version":"7","clientToken":"t-version"}',
    token: 't-version',
    ...SHADOW_ERRORS.invalidVersion,
  },
  {
    name: 'clientToken over 64 bytes',
    payload: JSON.stringify({ state: { reported: { a: 1 } }, clientToken: 'k'.repeat(65) }),
    ...SHADOW_ERRORS.invalidClientToken,
  },
  {
    name: 'too deep',
    shadowName: 'deep',
    payload: JSON.stringify({ state: { desired: nested(7) }, clientToken: 't-deep' }),
    token: 't-deep',
    ...SHADOW_ERRORS.tooDeep,
  },
  {
    name: 'document over 8 KB',
    payload: JSON.stringify({ ...big, clientToken: 't-big' }),
    token: 't-big',
    ...SHADOW_ERRORS.payloadTooLarge,
  },
];

describe.each(MQTT_PROTOCOLS)('shadow rejections over MQTT %s', (protocol) => {
  const thingName = named(protocol, 'err-v2');
  const rawThing = named(protocol, 'err-raw');
  let v2Device: ShadowDevice;
  let raw: DeviceClient;
  beforeAll(async () => {
    v2Device = await openShadowDevice(core, await provisionThing(core, thingName), [], protocol);
    raw = await connectDevice(core, await provisionThing(core, rawThing), protocol);
  });
  afterAll(async () => {
    await v2Device?.close();
    await raw?.close();
  });

  it.each(rawCases)('raw PUBLISH: $name → $code on /update/rejected', async (c) => {
    const topics = shadowTopics(rawThing, c.shadowName);
    const answers = await rawSubscribe(raw, `${topics.update}/+`);
    expect(answers.granted).toBe(true);
    try {
      expect(await raw.publish(topics.update, c.payload)).toBe(protocol === '5' ? 0 : undefined);
      const answer = await answers.waitFor((m) => m.topic === topics.updateRejected);
      expect(answers.messages.filter((m) => m.topic === topics.updateAccepted)).toEqual([]);
      const body = answer.payload as JsonObject;
      expect(body).toMatchObject({ code: c.code, message: c.message });
      expect(typeof body.timestamp).toBe('number');
      if (c.token === undefined) expect(body).not.toHaveProperty('clientToken');
      else expect(body.clientToken).toBe(c.token);
    } finally {
      await raw.unsubscribe(`${topics.update}/+`);
    }
  });

  const v2 = () => v2Device.shadows;
  const v2Cases: Array<{ name: string; run: () => Promise<unknown>; code: number; message: string }> = [
    { name: 'missing state', run: () => v2().updateShadow({ thingName }), ...SHADOW_ERRORS.missingState },
    {
      name: 'unexpected node in state (named)',
      run: () => v2().updateNamedShadow({ thingName, shadowName: 'cfg', state: { bogus: 1 } as never }),
      code: 400,
      message: "State contains an invalid node: 'bogus'",
    },
    {
      name: 'reported not an object',
      run: () => v2().updateShadow({ thingName, state: { reported: 'on' as never } }),
      ...SHADOW_ERRORS.reportedNotObject,
    },
    {
      name: 'null inside an array',
      run: () => v2().updateShadow({ thingName, state: { reported: { a: [1, null] } } }),
      ...SHADOW_ERRORS.invalidJson,
    },
    {
      name: 'seven levels of nesting',
      run: () => v2().updateShadow({ thingName, state: { reported: nested(7) } }),
      ...SHADOW_ERRORS.tooDeep,
    },
    {
      name: 'document over 8 KB (named)',
      run: () => v2().updateNamedShadow({ thingName, shadowName: 'cfg', state: big.state }),
      ...SHADOW_ERRORS.payloadTooLarge,
    },
    {
      name: 'get of a missing classic shadow',
      run: () => v2().getShadow({ thingName }),
      code: 404,
      message: `No shadow exists with name: '${thingName}'`,
    },
    {
      name: 'delete of a missing named shadow',
      run: () => v2().deleteNamedShadow({ thingName, shadowName: 'nothing' }),
      code: 404,
      message: "No shadow exists with name: 'nothing'",
    },
  ];

  it.each(v2Cases)('IotShadowClientv2: $name → $code', async (c) => {
    const outcome = await settle(c.run());
    expect(outcome.ok).toBe(false);
    expect(outcome.body).toMatchObject({ code: c.code, message: c.message });
    expect(typeof outcome.body.timestamp).toBe('number');
    // The v2 client matched the rejection to its request by clientToken, so the token was echoed.
    expect(typeof outcome.body.clientToken).toBe('string');
  });

  it.each([{ shadowName: undefined }, { shadowName: 'lock' }])(
    'IotShadowClientv2: a stale version → 409, the current version → accepted (shadow $shadowName)',
    async ({ shadowName }) => {
      const update = (state: JsonObject, version?: number) => {
        const request = { thingName, state, ...(version === undefined ? {} : { version }) };
        return settle(
          shadowName === undefined ? v2().updateShadow(request) : v2().updateNamedShadow({ ...request, shadowName }),
        );
      };
      const first = await update({ reported: { n: 1 } });
      expect(first.ok).toBe(true);
      const version = first.body.version as number;
      const stale = await update({ reported: { n: 2 } }, version + 5);
      expect(stale).toMatchObject({ ok: false, body: SHADOW_ERRORS.versionConflict });
      const fresh = await update({ reported: { n: 3 } }, version);
      expect(fresh).toMatchObject({ ok: true, body: { version: version + 1 } });
    },
  );

  it('429 Too Many Requests: rejects the requests past 10 in flight (IotShadowClientv2) and accepts the 10 once the store answers', async () => {
    gate.hold();
    let settled = 0;
    const results = Array.from({ length: 12 }, (_, i) =>
      settle(v2Device.shadows.updateNamedShadow({ thingName, shadowName: 'busy', state: { reported: { i } } })).then(
        (r) => {
          settled++;
          return r;
        },
      ),
    );
    try {
      await expect.poll(() => core.core.services.shadows.inFlight(thingName), { timeout: 10_000 }).toBe(10);
      await expect.poll(() => settled, { timeout: 10_000 }).toBe(2);
    } finally {
      gate.release();
    }
    const all = await Promise.all(results);
    const rejected = all.filter((r) => !r.ok).map((r) => r.body);
    expect(rejected).toHaveLength(2);
    for (const body of rejected) expect(body).toMatchObject(SHADOW_ERRORS.tooManyRequests);
    const versions = all.filter((r) => r.ok).map((r) => r.body.version as number);
    expect(versions.sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });
});

describe('shadow errors over the HTTP data plane', () => {
  const update = (thingName: string, payload: string, shadowName?: string) =>
    core.data.send(
      new UpdateThingShadowCommand({ thingName, ...(shadowName ? { shadowName } : {}), payload: enc.encode(payload) }),
    );

  const httpCases: Array<{
    name: string;
    shadowName?: string;
    payload: string;
    type: abstract new (...args: never[]) => Error;
    code: number;
    message: string;
  }> = [
    { name: 'invalid JSON', payload: '{nope', type: InvalidRequestException, ...SHADOW_ERRORS.invalidJson },
    { name: 'missing state', payload: '{"version":1}', type: InvalidRequestException, ...SHADOW_ERRORS.missingState },
    {
      name: 'unexpected node in state',
      payload: '{"state":{"metadata":{}}}',
      type: InvalidRequestException,
      code: 400,
      message: "State contains an invalid node: 'metadata'",
    },
    {
      name: 'too deep (named)',
      shadowName: 'deep',
      payload: JSON.stringify({ state: { reported: nested(7) } }),
      type: InvalidRequestException,
      ...SHADOW_ERRORS.tooDeep,
    },
    {
      name: 'document over 8 KB',
      payload: JSON.stringify(big),
      type: RequestEntityTooLargeException,
      ...SHADOW_ERRORS.payloadTooLarge,
    },
  ];

  it.each(httpCases)('UpdateThingShadow: $name → $code', async (c) => {
    const err = await update('err-http', c.payload, c.shadowName).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(c.type);
    expect(err).toMatchObject({ message: c.message, $metadata: { httpStatusCode: c.code } });
  });

  it('answers 404 ResourceNotFoundException for missing classic and named shadows', async () => {
    await expect(core.data.send(new GetThingShadowCommand({ thingName: 'err-none' }))).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
      message: "No shadow exists with name: 'err-none'",
      $metadata: { httpStatusCode: 404 },
    });
    await expect(
      core.data.send(new DeleteThingShadowCommand({ thingName: 'err-none', shadowName: 'x' })),
    ).rejects.toBeInstanceOf(ResourceNotFoundException);
  });

  it('answers 409 ConflictException for a stale version, then accepts the current one', async () => {
    await update('err-lock', '{"state":{"desired":{"a":1}}}', 'cfg');
    const err = await update('err-lock', '{"state":{"desired":{"a":2}},"version":9}', 'cfg').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictException);
    expect(err).toMatchObject({ message: 'Version conflict', $metadata: { httpStatusCode: 409 } });
    const ok = await update('err-lock', '{"state":{"desired":{"a":2}},"version":1}', 'cfg');
    expect(JSON.parse(new TextDecoder().decode(ok.payload))).toMatchObject({ version: 2 });
  });

  it('lists named shadows with paging and rejects an invalid page size', async () => {
    for (const name of ['a', 'b', 'c']) await update('err-list', '{"state":{"reported":{"x":1}}}', name);
    await update('err-list', '{"state":{"reported":{"x":1}}}');
    const first = await core.data.send(new ListNamedShadowsForThingCommand({ thingName: 'err-list', pageSize: 2 }));
    expect(first.results).toEqual(['a', 'b']);
    expect(first.nextToken).toEqual(expect.any(String));
    const second = await core.data.send(
      new ListNamedShadowsForThingCommand({ thingName: 'err-list', pageSize: 2, nextToken: first.nextToken }),
    );
    expect(second.results).toEqual(['c']);
    expect(second.nextToken).toBeUndefined();
    await expect(
      core.data.send(new ListNamedShadowsForThingCommand({ thingName: 'err-list', pageSize: 500 })),
    ).rejects.toBeInstanceOf(InvalidRequestException);
  });
});

describe('429 Too Many Requests over HTTP: more than 10 requests of one thing in flight', () => {
  it('answers ThrottlingException over HTTP while 10 requests of the thing are in flight', async () => {
    const thingName = 'err-busy-http';
    gate.hold();
    const pending = Array.from({ length: 10 }, (_, i) =>
      updateClassic(thingName, JSON.stringify({ state: { reported: { i } } })).then(
        (r) => r,
        (e: unknown) => e,
      ),
    );
    try {
      await expect.poll(() => core.core.services.shadows.inFlight(thingName), { timeout: 10_000 }).toBe(10);
      const err = await core.data.send(new GetThingShadowCommand({ thingName })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ThrottlingException);
      expect(err).toMatchObject({ message: 'Too Many Requests', $metadata: { httpStatusCode: 429 } });
    } finally {
      gate.release();
    }
    const done = await Promise.all(pending);
    expect(done.every((d) => !(d instanceof Error))).toBe(true);
    const get = await core.data.send(new GetThingShadowCommand({ thingName }));
    expect(JSON.parse(new TextDecoder().decode(get.payload))).toMatchObject({ version: 10 });
  });
});

function updateClassic(thingName: string, payload: string) {
  return core.data.send(new UpdateThingShadowCommand({ thingName, payload: enc.encode(payload) }));
}
