/**
 * The quota counters as the local core reports them: `GET /quotas` on the HTTP listener (SigV4,
 * like the other local routes) and the console's copy, after a real MQTT client is throttled.
 */
import { appTopics, MQTT5_REASON } from '@pifleet/protocol';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QUOTA_NAMES, QUOTAS, resolveLimits } from '../../src/limits/index.js';
import { provisionThing } from '../../src/testing/provision.js';
import { thingMqttOptions } from '../../src/testing/thing-mqtt.js';
import { apiClient } from '../e2e-cloud/harness.js';
import { credentialsFrom, type RunningCore, removeDir, startCore, tempDir } from '../http/harness.js';
import { http } from '../http/plain-request.js';

let dir: string;
let run: RunningCore;
let call: ReturnType<typeof apiClient>;

beforeAll(async () => {
  dir = tempDir('quotas-api');
  run = await startCore(dir, { limits: resolveLimits('aws', { publishesPerSecondPerConnection: 2 }) });
  call = apiClient(run.info, await credentialsFrom(run.info.credentialsFile), 'iot');
});
afterAll(async () => {
  await run?.stop();
  removeDir(dir);
});

describe('GET /quotas', () => {
  it('lists every quota with its value (null = not enforced) and zero counts at start', async () => {
    const r = await call('GET', '/quotas');
    expect(r.status).toBe(200);
    expect(r.body.mode).toBe('aws');
    const limits = r.body.limits as Record<string, number | null>;
    expect(Object.keys(limits)).toEqual([...QUOTA_NAMES]);
    expect(limits.publishesPerSecondPerConnection).toBe(2);
    expect(limits.connectsPerSecondPerClientId).toBe(QUOTAS.connectsPerSecondPerClientId.aws);
    expect(Object.values(r.body.throttled as Record<string, number>).every((n) => n === 0)).toBe(true);
    expect(r.body.total).toBe(0);
  });

  it('refuses an unsigned request (403), as every SigV4 route does', async () => {
    const r = await call('GET', '/quotas', { sign: false });
    expect(r.status).toBe(403);
  });

  it('counts a throttled MQTT publish, and the console shows the same counts', async () => {
    const thing = await provisionThing(run, 'quota-pi');
    const client = await mqtt.connectAsync({ ...thingMqttOptions(run.info, thing), protocolVersion: 5 });
    try {
      const topic = appTopics.telemetry('quota-pi');
      const codes = await Promise.all(
        [1, 2, 3].map((i) =>
          client.publishAsync(topic, JSON.stringify({ i }), { qos: 1 }).then(
            () => 0,
            (err: { code: number }) => err.code,
          ),
        ),
      );
      expect(codes).toEqual([0, 0, MQTT5_REASON.QUOTA_EXCEEDED]);
    } finally {
      await client.endAsync();
    }
    const r = await call('GET', '/quotas');
    expect((r.body.throttled as Record<string, number>).publishesPerSecondPerConnection).toBe(1);
    expect(r.body.total).toBe(1);

    const opened = await http(
      run.info.http,
      'GET',
      `/console/?token=${encodeURIComponent(run.core.services.console.token)}`,
    );
    const cookie = String(opened.headers['set-cookie']?.[0]).split(';')[0] as string;
    const page = await http(run.info.http, 'GET', '/console/api/quotas', { cookie, 'sec-fetch-site': 'same-origin' });
    expect(page.status).toBe(200);
    expect(page.json()).toEqual(r.body);
    expect((await http(run.info.http, 'GET', '/console/api/quotas')).status).toBe(401);
  });
});
