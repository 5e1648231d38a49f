import { appTopics, shadowTopics } from '@pifleet/protocol';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provisionThing } from '../../src/testing/provision.js';
import { batchOf, readingsFrom } from '../../src/testing/telemetry-store-suite.js';
import { thingMqttOptions } from '../../src/testing/thing-mqtt.js';
import { parseExposition } from '../adapters/prometheus-text.js';
import { apiClient } from '../e2e-cloud/harness.js';
import { credentialsFrom, type RunningCore, removeDir, startCore, tempDir } from '../http/harness.js';
import { http } from '../http/plain-request.js';

/**
 * `GET /metrics` of the composed local core, after real traffic: a device on mqtt.js over mutual TLS
 * publishes telemetry batches (one twice, one poison), desired-state writes go through the command
 * API signed with AWS's SigV4 signer (accepted, invalid, conflicting), and a SUBSCRIBE breaks a
 * quota. The exposition is scraped over HTTP, parsed strictly, and every count checked exactly.
 */

const THING = 'pi-metrics';
let dir: string;
let run: RunningCore;
let base: string;
let device: mqtt.MqttClient;
let api: ReturnType<typeof apiClient>;

/** The lag each stored batch is given: sealed this long before it is published. */
const LAG_MS = { first: 200, second: 3_000 };

async function scrape(host?: string) {
  const reply = await http(base, 'GET', '/metrics', host === undefined ? {} : { host });
  expect(reply.status).toBe(200);
  return { reply, text: parseExposition(reply.text) };
}

beforeAll(async () => {
  dir = tempDir('metrics');
  run = await startCore(dir);
  base = run.info.http;
  api = apiClient(run.info, await credentialsFrom(run.info.credentialsFile));
  const thing = await provisionThing(run, THING);
  device = await mqtt.connectAsync(thingMqttOptions(run.info, thing));

  // Telemetry: two batches stored, the first resent (a duplicate), then a poison batch. The core
  // acknowledges a QoS 1 telemetry message once the ingest rule's action has run, so each count
  // is in place when publishAsync resolves.
  const topic = appTopics.telemetry(THING);
  const first = batchOf(THING, 1, readingsFrom(1_700_000_000_000, 5), undefined, Date.now() - LAG_MS.first);
  await device.publishAsync(topic, JSON.stringify(first), { qos: 1 });
  const second = batchOf(THING, 2, readingsFrom(1_700_000_100_000, 3), undefined, Date.now() - LAG_MS.second);
  await device.publishAsync(topic, JSON.stringify(second), { qos: 1 });
  await device.publishAsync(topic, JSON.stringify(first), { qos: 1 });
  await device.publishAsync(topic, JSON.stringify({ v: 1, thingName: THING, readings: 'nope' }), { qos: 1 });

  // Nine filters in one SUBSCRIBE: over IoT Core's eight, all refused and one breach counted.
  const nine = Array.from({ length: 9 }, (_, i) => `pifleet/${THING}/nine/${i}`);
  const refused = await device.subscribeAsync(nine, { qos: 1 }).then(
    () => undefined,
    (err: Error & { packet?: { granted?: number[] } }) => err.packet?.granted,
  );
  expect(refused).toEqual(nine.map(() => 0x80));

  // Desired state: the delta of the accepted write is the one message delivered to the device.
  await device.subscribeAsync(shadowTopics(THING).updateDelta, { qos: 1 });
  const delta = new Promise<void>((resolve) => device.once('message', () => resolve()));
  const path = `/api/things/${THING}/desired`;
  expect((await api('PUT', path, { body: { desired: { logLevel: 'debug' } } })).status).toBe(200);
  expect((await api('PUT', path, { body: { desired: { logLevel: 'loud' } } })).status).toBe(400);
  expect((await api('PUT', path, { body: { desired: { logLevel: 'info' }, expectedVersion: 7 } })).status).toBe(409);
  // A read counts in none of the command metrics.
  expect((await api('GET', `/api/things/${THING}/shadow`)).status).toBe(200);
  await delta;
});

afterAll(async () => {
  await device?.endAsync().catch(() => undefined);
  await run?.stop();
  removeDir(dir);
});

describe('GET /metrics after real traffic', () => {
  it('answers the Prometheus text format without a signature', async () => {
    const { reply, text } = await scrape();
    expect(reply.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(reply.headers['cache-control']).toBe('no-store');
    expect(reply.headers['x-amzn-requestid']).toBeUndefined();
    expect(text.types.get('pifleet_readings_stored_total')).toBe('counter');
    expect(text.types.get('process_cpu_user_seconds_total')).toBe('counter');
  });

  it('counts what the ingest handler did, exactly', async () => {
    const { text } = await scrape();
    expect(text.value('pifleet_readings_stored_total')).toBe(8);
    expect(text.value('pifleet_batches_stored_total')).toBe(2);
    expect(text.value('pifleet_batches_deduplicated_total')).toBe(1);
    expect(text.value('pifleet_poison_batches_total')).toBe(1);
    expect(text.value('pifleet_store_failures_total')).toBe(0);
  });

  it('has one ingest lag per stored batch, in the buckets of their lags', async () => {
    const { text } = await scrape();
    const lag = (le: string) => text.value('pifleet_ingest_lag_seconds_bucket', { le });
    expect(text.value('pifleet_ingest_lag_seconds_count')).toBe(text.value('pifleet_batches_stored_total'));
    expect(lag('+Inf')).toBe(2);
    // 200 ms at least (sealed 200 ms before it was sent), and well under 2.5 s; the other 3 s at least.
    expect(lag('0.1')).toBe(0);
    expect(lag('2.5')).toBe(1);
    expect(lag('60')).toBe(2);
    expect(text.value('pifleet_ingest_lag_seconds_sum')).toBeGreaterThanOrEqual((LAG_MS.first + LAG_MS.second) / 1000);
  });

  it('counts the desired-state writes by outcome, reads in none', async () => {
    const { text } = await scrape();
    expect(text.value('pifleet_commands_accepted_total')).toBe(1);
    expect(text.value('pifleet_commands_rejected_total')).toBe(1);
    expect(text.value('pifleet_commands_conflicting_total')).toBe(1);
  });

  it("reads the broker's, the quotas' and the rules' counts at the scrape", async () => {
    const { text } = await scrape();
    expect(text.value('pifleet_mqtt_connections')).toBe(1);
    expect(text.value('pifleet_mqtt_connects_total')).toBe(1);
    expect(text.value('pifleet_mqtt_messages_received_total')).toBe(4);
    expect(text.value('pifleet_mqtt_messages_delivered_total')).toBe(1);
    expect(text.value('pifleet_quota_throttled_total', { quota: 'topicFiltersPerSubscribe' })).toBe(1);
    expect(text.series('pifleet_quota_throttled_total').reduce((sum, s) => sum + s.value, 0)).toBe(1);
    const rule = 'pifleet_telemetry_ingest';
    expect(text.value('pifleet_rule_matched_total', { rule })).toBe(4);
    expect(text.value('pifleet_rule_actions_total', { rule, outcome: 'succeeded' })).toBe(3);
    expect(text.value('pifleet_rule_actions_total', { rule, outcome: 'failed' })).toBe(1);
    expect(text.value('pifleet_rule_error_actions_total', { rule, outcome: 'succeeded' })).toBe(1);
  });

  it('answers a Host that names this machine: loopback names and the bind address', async () => {
    const port = new URL(base).port;
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`]) {
      expect((await scrape(host)).text.value('pifleet_batches_stored_total')).toBe(2);
    }
  });

  it.each([
    ['a foreign name', 'metrics.example.com'],
    ['a foreign name on this port', 'evil.example:8880'],
    ['a name that only starts like loopback', 'localhost.rebind.example'],
    ['another address', '10.0.0.9'],
  ])('refuses a Host with %s (403, no metrics)', async (_, host) => {
    const reply = await http(base, 'GET', '/metrics', { host });
    expect(reply.status).toBe(403);
    expect(reply.text).toMatch(/Host is not this machine/);
    expect(reply.text).not.toMatch(/pifleet_/);
  });

  it('answers only GET and HEAD, only at /metrics', async () => {
    expect((await http(base, 'POST', '/metrics', {}, '{}')).status).toBe(405);
    expect((await http(base, 'GET', '/metrics/more')).status).toBe(404);
    const head = await http(base, 'HEAD', '/metrics');
    expect(head.status).toBe(200);
    expect(head.text).toBe('');
  });

  it('counts a disconnect by its reason', async () => {
    await device.endAsync();
    let text = (await scrape()).text;
    // The broker sees the DISCONNECT a moment after the client has sent it.
    for (let i = 0; i < 50 && text.value('pifleet_mqtt_connections') !== 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
      text = (await scrape()).text;
    }
    expect(text.value('pifleet_mqtt_connections')).toBe(0);
    expect(text.value('pifleet_mqtt_disconnects_total', { reason: 'CLIENT_INITIATED_DISCONNECT' })).toBe(1);
  });
});

describe('GET /console/api/metrics', () => {
  it('answers the summary to the console session, and 401 without one', async () => {
    const opened = await http(base, 'GET', `/console/?token=${encodeURIComponent(run.core.services.console.token)}`);
    const cookie = String(opened.headers['set-cookie']?.[0]).split(';')[0] as string;
    expect((await http(base, 'GET', '/console/api/metrics')).status).toBe(401);

    const reply = await http(base, 'GET', '/console/api/metrics', { cookie, 'sec-fetch-site': 'same-origin' });
    expect(reply.status).toBe(200);
    const summary = reply.json<{ ingestLag: { p50Ms: number; p99Ms: number } }>();
    expect(summary).toMatchObject({
      readingsStored: 8,
      batchesStored: 2,
      batchesDeduplicated: 1,
      poisonBatches: 1,
      storeFailures: 0,
      ingestLag: { count: 2 },
      commands: { accepted: 1, rejected: 1, conflicting: 1 },
      // The device disconnected in the suite before.
      connections: 0,
      throttled: 1,
    });
    // Two observations: the median is estimated within the first batch's bucket (≥ 200 ms), the p99
    // within the second's, (2.5 s, 5 s]: 2.5 s + 2.5 s × 0.98.
    expect(summary.ingestLag.p50Ms).toBeGreaterThanOrEqual(LAG_MS.first);
    expect(summary.ingestLag.p50Ms).toBeLessThanOrEqual(2_500);
    expect(summary.ingestLag.p99Ms).toBe(4_950);
  });
});
