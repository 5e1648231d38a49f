import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { GetThingShadowCommand, IoTDataPlaneClient, UpdateThingShadowCommand } from '@aws-sdk/client-iot-data-plane';
import {
  appTopics,
  RECOMMENDED_POLICY_NAME,
  recommendedDevicePolicy,
  SHADOW_ERRORS,
  shadowTopics,
  until,
} from '@pifleet/protocol';
import mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { localCorePaths } from '../../src/app/local-core.js';
import { LOCAL_PROFILE } from '../../src/http/credentials.js';
import { resolveLimits } from '../../src/limits/index.js';
import type { RuleErrorPayload } from '../../src/rules/actions/error-payload.js';
import { logFileName } from '../../src/rules/actions/log.js';
import { RULE_ERROR_LOG_GROUP } from '../../src/rules/definitions.js';
import { batchOf } from '../../src/testing/telemetry-store-suite.js';
import { thingMqttOptions } from '../../src/testing/thing-mqtt.js';
import { credentialsFrom, type RunningCore, removeDir, startCore, tempDir } from '../http/harness.js';
import { apiClient, type ProvisionedThing, provisionThing } from './harness.js';

/**
 * A property test of hostile JSON over every entry point of the composed local IoT Core, with
 * real clients only: MQTT shadow topics (mqtt.js over mutual TLS), the IoT data plane
 * (@aws-sdk/client-iot-data-plane), the command API (SigV4-signed HTTP), and telemetry through
 * the rules engine (IoT SQL) into ingest and the archive.
 *
 * Each document is generated from a seed (HOSTILE_JSON_SEED picks another) and holds
 * `__proto__`, `constructor` or `prototype` keys at random depths and positions. After every one:
 * Object.prototype (the core runs in this process) has gained nothing; the keys came back as
 * ordinary keys wherever IoT stores them; and another thing's valid desired write and another
 * device's telemetry still work. The bug this guards against: one device's reported `__proto__`
 * wrote into Object.prototype, after which every strict validation in the process failed.
 */

const SEED = Number(process.env.HOSTILE_JSON_SEED ?? 20_240_614);
const RUNS = 24;
const ATTACKER = 'hostile-dev';
const VICTIM = 'victim-dev';
const T0 = 1_700_000_000_000;

/** mulberry32: a small seeded generator, so a failing document can be produced again from its seed. */
function generator(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T;
  return { next, int, pick };
}
type Gen = ReturnType<typeof generator>;

const HOSTILE = ['__proto__', 'constructor', 'prototype'] as const;
const ORDINARY = ['x', 'y', 'polluted', 'toString', 'valueOf', 'hasOwnProperty', 'timestamp', 'isAdmin'] as const;

/**
 * JSON text of an object at most `levels` deep (objects and arrays count), built as text so that
 * `__proto__` is an own key exactly as a device's bytes make it. No nulls (a null deletes a key).
 */
function objectText(g: Gen, levels: number): string {
  const keys = new Set<string>();
  const count = 1 + g.int(3);
  while (keys.size < count) keys.add(g.next() < 0.5 ? g.pick(HOSTILE) : g.pick(ORDINARY));
  return `{${[...keys].map((k) => `${JSON.stringify(k)}:${valueText(g, levels - 1)}`).join(',')}}`;
}

function valueText(g: Gen, levels: number): string {
  const roll = g.next();
  if (levels > 0 && roll < 0.45) return objectText(g, levels);
  if (levels > 0 && roll < 0.55) return `[${valueText(g, 0)},${levels > 1 ? objectText(g, levels - 1) : '1'}]`;
  if (roll < 0.7) return String(g.int(1000));
  if (roll < 0.85) return JSON.stringify(g.pick([...HOSTILE, ...ORDINARY]));
  return g.next() < 0.5 ? 'true' : 'false';
}

/** A document with at least one hostile key; `levels` is IoT's section depth (at most 6 below the section). */
function hostileDocument(g: Gen, levels = 6): string {
  let text = objectText(g, levels);
  if (!HOSTILE.some((k) => text.includes(`"${k}":`))) text = `{"${g.pick(HOSTILE)}":${objectText(g, levels - 1)}}`;
  return text;
}

/** Canonical text of a parsed value: own keys sorted, so two documents compare regardless of key order. */
function canon(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canon).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const obj = value as Record<string, unknown>;
    return `{${Object.keys(obj)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canon(Object.getOwnPropertyDescriptor(obj, k)?.value)}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Every property of a prototype a merge could write through: none may appear or change. */
const PROTOTYPES = [Object.prototype, Array.prototype, Function.prototype] as const;
const pristine = PROTOTYPES.map((p) => Object.getOwnPropertyNames(p).sort());
function expectPrototypesUntouched(context: string): void {
  PROTOTYPES.forEach((p, i) => {
    expect(Object.getOwnPropertyNames(p).sort(), `${context}: prototype ${i} gained properties`).toEqual(pristine[i]);
  });
  const probe: Record<string, unknown> = {};
  for (const key of ORDINARY.filter((k) => !(k in Object.prototype)))
    expect(probe[key], `${context}: {}.${key}`).toBe(undefined);
}

let dir: string;
let run: RunningCore;
let data: IoTDataPlaneClient;
let api: ReturnType<typeof apiClient>;
let attacker: mqtt.MqttClient;
let victim: mqtt.MqttClient;
let victimSeq = 0;
const inbox: Array<{ topic: string; payload: Buffer }> = [];
const inboxWaiters: Array<{
  match: (m: (typeof inbox)[number]) => boolean;
  resolve: (m: (typeof inbox)[number]) => void;
}> = [];
const enc = new TextEncoder();
const dec = new TextDecoder();

async function connect(thing: ProvisionedThing): Promise<mqtt.MqttClient> {
  const client = await mqtt.connectAsync(thingMqttOptions(run.info, thing));
  return client;
}

function nextMessage(match: (m: (typeof inbox)[number]) => boolean, what: string): Promise<(typeof inbox)[number]> {
  const seen = inbox.find(match);
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 10_000);
    inboxWaiters.push({
      match,
      resolve: (m) => {
        clearTimeout(timer);
        resolve(m);
      },
    });
  });
}

/** Waits until `probe` is true, checking every millisecond, for at most 10 s. */
const eventually = (probe: () => boolean | Promise<boolean>, what: string) =>
  until(probe, { within: 10_000, step: 1, what });

beforeAll(async () => {
  dir = tempDir('hostile-json');
  // Each hostile document is followed by requests to the same two things' shadows, back to back:
  // past IoT Core's 20 shadow requests per second per thing (shadow/quotas.test.ts tests that rate).
  run = await startCore(dir, { limits: resolveLimits('aws', { shadowRequestsPerSecondPerThing: null }) });
  process.env.AWS_SHARED_CREDENTIALS_FILE = run.info.credentialsFile;
  process.env.AWS_CONFIG_FILE = `${run.info.credentialsFile}.no-config`;
  data = new IoTDataPlaneClient({
    region: run.info.region,
    endpoint: run.info.http,
    profile: LOCAL_PROFILE,
    maxAttempts: 1,
  });
  api = apiClient(run.info, await credentialsFrom(run.info.credentialsFile));
  const policy = {
    name: RECOMMENDED_POLICY_NAME,
    document: recommendedDevicePolicy(run.info.region, run.info.accountId),
  };
  const a = await provisionThing(run.iot, ATTACKER, { ...policy, create: true });
  const v = await provisionThing(run.iot, VICTIM, { ...policy, create: false });
  attacker = await connect(a);
  victim = await connect(v);
  attacker.on('message', (topic, payload) => {
    const m = { topic, payload };
    inbox.push(m);
    for (const w of [...inboxWaiters]) {
      if (w.match(m)) {
        inboxWaiters.splice(inboxWaiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  const shadow = `$aws/things/${ATTACKER}/shadow`;
  await attacker.subscribeAsync(
    [`${shadow}/update/+`, `${shadow}/name/+/update/accepted`, `${shadow}/name/+/update/rejected`],
    { qos: 1 },
  );
}, 60_000);

afterAll(async () => {
  await attacker?.endAsync();
  await victim?.endAsync();
  data?.destroy();
  await run?.stop();
  removeDir(dir);
});

afterEach(() => {
  expectPrototypesUntouched('after the test');
});

/** What every other thing must still be able to do, after each hostile document. */
async function expectOthersWork(context: string): Promise<void> {
  expectPrototypesUntouched(context);
  // The symptom of the original bug: a strict validation of a valid desired document failed.
  const put = await api('PUT', `/api/things/${VICTIM}/desired`, { body: { desired: { outputs: { relay: true } } } });
  expect(put.status, `${context}: command API for ${VICTIM}: ${JSON.stringify(put.body)}`).toBe(200);
  const update = await data.send(
    new UpdateThingShadowCommand({
      thingName: VICTIM,
      payload: enc.encode(JSON.stringify({ state: { desired: { sampling: { bme280: 5000 } } } })),
    }),
  );
  expect(JSON.parse(dec.decode(update.payload)).state, `${context}: data plane`).toEqual({
    desired: { sampling: { bme280: 5000 } },
  });
  // Another device's valid telemetry is acknowledged and stored.
  victimSeq++;
  const stored = await run.core.services.telemetry.countReadings(VICTIM);
  const batch = batchOf(VICTIM, victimSeq, [{ sensor: 'bme280', ts: T0 + victimSeq, metrics: { temperature: 21 } }]);
  await victim.publishAsync(appTopics.telemetry(VICTIM), JSON.stringify(batch), { qos: 1 });
  await eventually(
    async () => (await run.core.services.telemetry.countReadings(VICTIM)) === stored + 1,
    `${context}: victim batch stored`,
  );
}

function errorSink(): RuleErrorPayload[] {
  const file = join(localCorePaths(dir).ruleLogDir, logFileName(RULE_ERROR_LOG_GROUP));
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { message: RuleErrorPayload }).message);
}

/** The attacker's archive objects (`raw/thing=<it>/date=…/…jsonl.gz`), after writing what the archive buffers. */
async function archived(): Promise<string[]> {
  await run.core.services.rules.flushArchive();
  const folder = join(localCorePaths(dir).archiveDir, 'raw', `thing=${ATTACKER}`);
  return existsSync(folder)
    ? readdirSync(folder, { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('.jsonl.gz'))
        .sort()
    : [];
}

/** The records of one archive object of the attacker's. */
function archivedRecords(file: string): unknown[] {
  const text = gunzipSync(readFileSync(join(localCorePaths(dir).archiveDir, 'raw', `thing=${ATTACKER}`, file)));
  return text
    .toString('utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as unknown);
}

describe('hostile keys at random depths and positions', () => {
  it(`MQTT shadow topics store and echo them as ordinary keys (seed ${SEED})`, async () => {
    const g = generator(SEED);
    for (let i = 0; i < RUNS; i++) {
      const doc = hostileDocument(g);
      const context = `seed ${SEED} run ${i}: ${doc}`;
      const name = `m${i}`;
      const topics = shadowTopics(ATTACKER, name);
      const clientToken = `m-${i}`;
      await attacker.publishAsync(topics.update, `{"state":{"reported":${doc}},"clientToken":"${clientToken}"}`, {
        qos: 1,
      });
      const answer = await nextMessage(
        (m) => m.topic.startsWith(`${topics.update}/`) && m.payload.includes(`"clientToken":"${clientToken}"`),
        `answer to ${context}`,
      );
      expect(answer.topic, context).toBe(topics.updateAccepted);
      const accepted = JSON.parse(answer.payload.toString()) as { state: { reported: unknown } };
      expect(canon(accepted.state.reported), context).toBe(canon(JSON.parse(doc)));

      const got = await data.send(new GetThingShadowCommand({ thingName: ATTACKER, shadowName: name }));
      const stored = JSON.parse(dec.decode(got.payload)) as {
        state: { reported: unknown };
        metadata: { reported: object };
      };
      expect(canon(stored.state.reported), context).toBe(canon(JSON.parse(doc)));
      expect(Object.keys(stored.metadata.reported).sort(), context).toEqual(Object.keys(JSON.parse(doc)).sort());
      await expectOthersWork(context);
    }
  }, 120_000);

  it(`the data plane stores desired documents with them and answers a delta with them (seed ${SEED})`, async () => {
    const g = generator(SEED + 1);
    for (let i = 0; i < RUNS; i++) {
      const doc = hostileDocument(g);
      const context = `seed ${SEED + 1} run ${i}: ${doc}`;
      const name = `h${i}`;
      const out = await data.send(
        new UpdateThingShadowCommand({
          thingName: ATTACKER,
          shadowName: name,
          payload: enc.encode(`{"state":{"desired":${doc}}}`),
        }),
      );
      const accepted = JSON.parse(dec.decode(out.payload)) as { state: { desired: unknown } };
      expect(canon(accepted.state.desired), context).toBe(canon(JSON.parse(doc)));
      const got = await data.send(new GetThingShadowCommand({ thingName: ATTACKER, shadowName: name }));
      const stored = JSON.parse(dec.decode(got.payload)) as { state: { desired: unknown; delta: unknown } };
      expect(canon(stored.state.desired), context).toBe(canon(JSON.parse(doc)));
      // Nothing reported yet: the delta is the whole desired document, hostile keys included.
      expect(canon(stored.state.delta), context).toBe(canon(JSON.parse(doc)));
      await expectOthersWork(context);
    }
  }, 120_000);

  it(`the command API refuses them with 400 and a path, never 500 (seed ${SEED})`, async () => {
    const g = generator(SEED + 2);
    for (let i = 0; i < RUNS; i++) {
      // Hostile keys where a desired document has ids, sections or fields, and anywhere else.
      const key = g.pick(HOSTILE);
      const shapes = [
        `{"desired":{"outputs":{"${key}":${g.next() < 0.5 ? 'true' : hostileDocument(g, 2)}}}}`,
        `{"desired":{"sampling":{"${key}":1000,"bme280":2000}}}`,
        `{"desired":{"batch":{"${key}":${hostileDocument(g, 2)}}}}`,
        `{"desired":${hostileDocument(g, 4)}}`,
        `{"desired":{"logLevel":"info"},"${key}":${hostileDocument(g, 2)}}`,
      ];
      const body = g.pick(shapes);
      const context = `seed ${SEED + 2} run ${i}: ${body}`;
      const res = await api('PUT', `/api/things/${ATTACKER}/desired`, { rawBody: body });
      expect(res.status, `${context}: ${JSON.stringify(res.body)}`).toBe(400);
      const paths = (res.body.issues as { path: string }[]).map((issue) => issue.path);
      expect(paths.length, context).toBeGreaterThan(0);
      await expectOthersWork(context);
    }
    // The API wrote nothing: the attacker's classic shadow was never created through it.
    const got = await api('GET', `/api/things/${ATTACKER}/shadow`);
    expect(JSON.stringify(got.body)).not.toMatch(/outputs|sampling|batch/);
  }, 120_000);

  it(`telemetry through the rules: not stored, archived as sent, and the engine keeps going (seed ${SEED})`, async () => {
    const g = generator(SEED + 3);
    for (let i = 0; i < RUNS; i++) {
      const key = g.pick(HOSTILE);
      const reading = `{"sensor":"bme280","ts":${T0 + i},"metrics":{"temperature":21}}`;
      const shapes = [
        `{"v":1,"thingName":"${ATTACKER}","bootId":"boot-hostile","seq":${i + 1},"sealedAt":${T0},"readings":[${reading}],"${key}":${hostileDocument(g, 3)}}`,
        `{"v":1,"thingName":"${ATTACKER}","bootId":"boot-hostile","seq":${i + 1},"sealedAt":${T0},"readings":[{"sensor":"bme280","ts":${T0},"${key}":${hostileDocument(g, 2)},"metrics":{"t":1}}]}`,
        `{"v":1,"thingName":"${ATTACKER}","bootId":"boot-hostile","seq":${i + 1},"sealedAt":${T0},"readings":[{"sensor":"bme280","ts":${T0},"metrics":{"t":1,"${key}":${g.next() < 0.5 ? '5' : hostileDocument(g, 2)}}}]}`,
        `{"v":1,"thingName":"${ATTACKER}","bootId":"boot-hostile","seq":${i + 1},"sealedAt":${T0},"readings":[{"sensor":"${key}","ts":${T0},"metrics":{"t":1}}]}`,
      ];
      const payload = g.pick(shapes);
      const context = `seed ${SEED + 3} run ${i}: ${payload}`;
      const before = (await archived()).length;
      const errorsBefore = errorSink().length;
      // Acknowledged once the rules' actions are done: the archive holds the record from then on.
      await attacker.publishAsync(appTopics.telemetry(ATTACKER), payload, { qos: 1 });
      // The archive rule keeps the payload as sent (SELECT * copies __proto__ as an own key), plus
      // the topic's thing, in one object of its own once flushed.
      const files = await archived();
      expect(files.length, `${context}: archived`).toBe(before + 1);
      const file = files.find((f) => !archivedBefore.has(f)) as string;
      archivedBefore.add(file);
      const records = archivedRecords(file);
      expect(records, context).toHaveLength(1);
      const kept = records[0] as Record<string, unknown>;
      expect(kept.topicThing, context).toBe(ATTACKER);
      delete kept.topicThing;
      expect(canon(kept), context).toBe(canon(JSON.parse(payload)));
      // The ingest rule refuses it as a batch, through its error action.
      await eventually(() => errorSink().length > errorsBefore, `${context}: ingest error action`);
      expect(errorSink().at(-1)?.ruleName, context).toBe('pifleet_telemetry_ingest');
      expect(await run.core.services.telemetry.countReadings(ATTACKER), context).toBe(0);
      await expectOthersWork(context);
    }
  }, 120_000);
});
const archivedBefore = new Set<string>();

describe('10,000 levels of nesting at every entry point', () => {
  const deep = `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`;

  it('MQTT shadow update: /update/rejected 400 with the clientToken', async () => {
    const topics = shadowTopics(ATTACKER);
    await attacker.publishAsync(topics.update, `{"clientToken":"deep-1","state":{"reported":${deep}}}`, { qos: 1 });
    const answer = await nextMessage(
      (m) => m.topic.startsWith(`${topics.update}/`) && m.payload.includes('"deep-1"'),
      'answer to the deep update',
    );
    expect(answer.topic).toBe(topics.updateRejected);
    expect(JSON.parse(answer.payload.toString())).toMatchObject({ ...SHADOW_ERRORS.tooDeep, clientToken: 'deep-1' });
    await expectOthersWork('deep MQTT');
  });

  it("UpdateThingShadow: 400 InvalidRequestException with IoT's message", async () => {
    const err = await data
      .send(new UpdateThingShadowCommand({ thingName: ATTACKER, payload: enc.encode(`{"state":{"desired":${deep}}}`) }))
      .then(
        () => undefined,
        (e: unknown) => e as { name: string; message: string; $metadata: { httpStatusCode: number } },
      );
    expect(err?.name).toBe('InvalidRequestException');
    expect(err?.$metadata.httpStatusCode).toBe(400);
    expect(err?.message).toBe(SHADOW_ERRORS.tooDeep.message);
    await expectOthersWork('deep data plane');
  });

  it('command API: 400 with the reason', async () => {
    const res = await api('PUT', `/api/things/${ATTACKER}/desired`, { rawBody: `{"desired":${deep}}` });
    expect(res.status).toBe(400);
    expect(res.body.issues).toEqual([{ path: 'body', message: expect.stringContaining('nested too deeply') }]);
    await expectOthersWork('deep command API');
  });

  it('telemetry: acknowledged, refused by ingest through the error action, archived as its topic thing', async () => {
    const payload = `{"v":1,"thingName":"${ATTACKER}","readings":[${deep}]}`;
    const errorsBefore = errorSink().length;
    const before = await archived();
    await attacker.publishAsync(appTopics.telemetry(ATTACKER), payload, { qos: 1 });
    await eventually(() => errorSink().length > errorsBefore, 'ingest error action');
    expect(errorSink().at(-1)?.ruleName).toBe('pifleet_telemetry_ingest');
    // Too deep to be read as JSON: `SELECT *, topic(2) AS topicThing` has no object to add to.
    const file = (await archived()).find((f) => !before.includes(f)) as string;
    expect(archivedRecords(file)).toEqual([{ topicThing: ATTACKER }]);
    expect(await run.core.services.telemetry.countReadings(ATTACKER)).toBe(0);
    await expectOthersWork('deep telemetry');
  });
});
