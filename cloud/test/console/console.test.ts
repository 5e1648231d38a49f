import { appTopics } from '@pifleet/protocol';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebConsole } from '../../src/console/console.js';
import { singleCredentialStore } from '../../src/http/credentials.js';
import { createHttpServer } from '../../src/http/server.js';
import { provisionThing } from '../../src/testing/provision.js';
import { thingMqttOptions } from '../../src/testing/thing-mqtt.js';
import { type RunningCore, removeDir, startCore, tempDir } from '../http/harness.js';
import { http } from '../http/plain-request.js';
import { openSse, type SseEvent } from './harness.js';

/** The console route group on the composed local core: auth, origin checks, JSON shapes, SSE. */

let dir: string;
let run: RunningCore;
let base: string;
let cookie: string;
/** Headers a same-origin page request carries. */
let page: Record<string, string>;

beforeAll(async () => {
  dir = tempDir('console');
  run = await startCore(dir);
  base = run.info.http;
  const opened = await http(base, 'GET', `/console/?token=${encodeURIComponent(run.core.services.console.token)}`);
  cookie = String(opened.headers['set-cookie']?.[0]).split(';')[0] as string;
  page = { cookie, 'sec-fetch-site': 'same-origin' };
  run.core.services.registry.createThing({ thingName: 'pi-a' });
  run.core.services.registry.createThing({ thingName: 'pi-b' });
});
afterAll(async () => {
  await run?.stop();
  removeDir(dir);
});

/** A provisioned thing's MQTT client over mutual TLS, not connected yet. */
async function provision(thingName: string, protocolVersion: 4 | 5 = 4) {
  const thing = await provisionThing(run, thingName);
  const client = mqtt.connect({ ...thingMqttOptions(run.info, thing), protocolVersion, manualConnect: true });
  return client;
}

describe('console sign-in', () => {
  it('prints a URL with the token under /console/ on the HTTP endpoint', () => {
    expect(run.info.console).toBe(`${base}/console/?token=${run.core.services.console.token}`);
  });

  it('answers the page without a session with 401 and an explanation', async () => {
    const r = await http(base, 'GET', '/console/');
    expect(r.status).toBe(401);
    expect(r.headers['content-type']).toMatch(/text\/html/);
    expect(r.text).toContain('token');
    expect(r.headers['set-cookie']).toBeUndefined();
  });

  it.each(['/console/api/things', '/console/events', '/console/assets/app.js', '/console/api/schema/desired'])(
    'refuses %s without a session (401 JSON)',
    async (path) => {
      const r = await http(base, 'GET', path);
      expect(r.status).toBe(401);
      expect(r.json().message).toMatch(/session/);
    },
  );

  it('refuses a wrong token and sets no cookie', async () => {
    const r = await http(base, 'GET', '/console/?token=not-the-token');
    expect(r.status).toBe(401);
    expect(r.headers['set-cookie']).toBeUndefined();
  });

  it('trades the token for an HttpOnly SameSite=Strict cookie, then serves the page with it', async () => {
    const r = await http(base, 'GET', run.info.console);
    expect(r.status).toBe(200);
    const setCookie = String(r.headers['set-cookie']?.[0]);
    expect(setCookie).toMatch(/^pifleet_console=[\w-]+; HttpOnly; SameSite=Strict; Path=\/console;/);
    expect(r.headers['referrer-policy']).toBe('no-referrer');
    const pageReply = await http(base, 'GET', '/console/', { cookie: setCookie.split(';')[0] as string });
    expect(pageReply.status).toBe(200);
    expect(pageReply.text).toContain('pifleet console');
    expect(pageReply.headers['content-security-policy']).toContain("script-src 'self'");
  });

  it('redirects /console to /console/ keeping the query', async () => {
    const r = await http(base, 'GET', '/console?token=abc');
    expect(r.status).toBe(308);
    expect(r.headers.location).toBe('/console/?token=abc');
  });

  it('does not take SigV4 paths: other APIs still require a signature', async () => {
    const r = await http(base, 'GET', '/things', { cookie });
    expect(r.status).toBe(403);
  });
});

describe('console origin checks', () => {
  it.each([
    ['a foreign Origin', { origin: 'http://evil.example' }],
    ['a foreign Host', { host: 'evil.example' }],
    ['a cross-site fetch', { 'sec-fetch-site': 'cross-site' }],
  ])('refuses %s with 403 even with a valid session', async (_name, headers) => {
    const r = await http(base, 'GET', '/console/api/things', { cookie, ...headers });
    expect(r.status).toBe(403);
  });

  it('refuses a POST without Origin (403) and accepts it from the same origin', async () => {
    const body = JSON.stringify({ desired: { logLevel: 'info' } });
    const without = await http(base, 'POST', '/console/api/things/pi-a/desired', { cookie }, body);
    expect(without.status).toBe(403);
    const same = await http(base, 'POST', '/console/api/things/pi-a/desired', { ...page, origin: base }, body);
    expect(same.status).toBe(200);
  });

  it('never sends CORS headers', async () => {
    const r = await http(base, 'GET', '/console/api/things', { ...page, origin: base });
    expect(r.status).toBe(200);
    expect(Object.keys(r.headers).filter((h) => h.startsWith('access-control-'))).toEqual([]);
  });
});

describe('console API', () => {
  it('lists every registered thing with its summary', async () => {
    run.core.services.registry.createThing({ thingName: 'pi-late' });
    const r = await http(base, 'GET', '/console/api/things', page);
    expect(r.status).toBe(200);
    const body = r.json<{ things: Array<Record<string, unknown>>; now: number }>();
    const names = body.things.map((t) => t.thingName);
    expect(names).toEqual([...names].sort());
    expect(names).toEqual(expect.arrayContaining(['pi-a', 'pi-b', 'pi-late']));
    expect(body.things.find((t) => t.thingName === 'pi-b')).toEqual({
      thingName: 'pi-b',
      connected: false,
      lastSeen: null,
      presenceAt: null,
      disconnectReason: null,
      protocol: null,
      lastTelemetry: null,
      shadow: null,
      alerts: { count: 0, lastAt: null },
    });
    expect(typeof body.now).toBe('number');
  });

  it('describes one thing: summary, shadow document, history, alerts', async () => {
    await run.core.services.shadows.updateShadow(
      'pi-b',
      undefined,
      Buffer.from(
        JSON.stringify({ state: { desired: { outputs: { relay: true } }, reported: { outputs: { relay: false } } } }),
      ),
    );
    const r = await http(base, 'GET', '/console/api/things/pi-b', page);
    expect(r.status).toBe(200);
    const body = r.json<{
      shadow: { state: { delta: unknown }; metadata: { desired: { outputs: { relay: { timestamp: unknown } } } } };
      summary: { shadow: unknown };
      history: unknown[];
      alerts: unknown[];
    }>();
    expect(body.shadow.state.delta).toEqual({ outputs: { relay: true } });
    expect(typeof body.shadow.metadata.desired.outputs.relay.timestamp).toBe('number');
    expect(body.summary.shadow).toMatchObject({ inSync: false, deltaKeys: ['outputs'] });
    expect(body.history).toEqual([]);
    expect(body.alerts).toEqual([]);
  });

  it.each([
    ['GET', '/console/api/things/nobody', 404],
    ['GET', '/console/api/things/bad%20name', 404],
    ['GET', '/console/api/nothing', 404],
    ['GET', '/console/api/things/pi-a/desired', 404],
    ['DELETE', '/console/api/things/pi-a', 405],
    ['PUT', '/console/', 405],
    ['POST', '/console/api/things', 405],
  ])('%s %s → %i', async (method, path, status) => {
    const r = await http(base, method, path, { ...page, origin: base });
    expect(r.status).toBe(status);
    expect(r.headers['content-security-policy']).toContain("default-src 'none'");
    expect(r.headers['cache-control']).toBe('no-store');
    expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
  });

  it('answers HEAD like GET, without a body', async () => {
    const r = await http(base, 'HEAD', '/console/assets/app.js', page);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toContain('text/javascript');
    expect(Number(r.headers['content-length'])).toBeGreaterThan(100);
    expect(r.text).toBe('');
  });

  it('serves the desired-state JSON Schema', async () => {
    const r = await http(base, 'GET', '/console/api/schema/desired', page);
    const schema = r.json<{
      type: string;
      additionalProperties: boolean;
      properties: { sampling: { additionalProperties: unknown }; logLevel: { enum: string[] } };
    }>();
    expect(schema.type).toBe('object');
    expect(schema.additionalProperties).toBe(false);
    expect(schema.properties.sampling.additionalProperties).toMatchObject({ minimum: 100, maximum: 86_400_000 });
    expect(schema.properties.logLevel.enum).toContain('debug');
  });

  it('serves the page assets and uPlot', async () => {
    for (const [path, type] of [
      ['/console/assets/app.js', 'text/javascript'],
      ['/console/assets/app.css', 'text/css'],
      ['/console/vendor/uplot.js', 'text/javascript'],
      ['/console/vendor/uplot.css', 'text/css'],
    ] as const) {
      const r = await http(base, 'GET', path, page);
      expect(r.status, path).toBe(200);
      expect(r.headers['content-type']).toContain(type);
      expect(r.text.length).toBeGreaterThan(100);
    }
  });
});

describe('console desired-state changes', () => {
  const post = (thing: string, body: unknown) =>
    http(base, 'POST', `/console/api/things/${thing}/desired`, { ...page, origin: base }, JSON.stringify(body));

  it.each([
    [{ desired: { sampling: { bme280: 5 } } }, 'sampling.bme280', 'at least 100'],
    [{ desired: { outputs: { relay: 'on' } } }, 'outputs.relay', 'true (on) or false'],
    [{ desired: { logLevel: 'loud' } }, 'logLevel', 'log level must be one of'],
    [{ desired: { colour: 'red' } }, '$', ''],
  ])('refuses %j with the path of each problem (400)', async (body, path, message) => {
    const r = await post('pi-a', body);
    expect(r.status).toBe(400);
    const issues = r.json<{ issues: Array<{ path: string; message: string }> }>().issues;
    expect(issues.length).toBeGreaterThan(0);
    if (path !== '$') expect(issues).toContainEqual({ path, message: expect.stringContaining(message) });
  });

  it('refuses a body over 64 KiB with 413', async () => {
    const r = await post('pi-a', { desired: { logLevel: 'info' }, pad: 'x'.repeat(64 * 1024) });
    expect(r.status).toBe(413);
    expect(r.json()).toEqual({ message: 'Request body exceeds 65536 bytes.' });
  });

  it.each([['not json'], ['[1,2]']])('refuses a body that is not a JSON object: %s', async (raw) => {
    const r = await http(base, 'POST', '/console/api/things/pi-a/desired', { ...page, origin: base }, raw);
    expect(r.status).toBe(400);
  });

  it('reports a concurrent desired change as a conflict, but not a device report in between', async () => {
    const first = await post('pi-a', { desired: { logLevel: 'warn' } });
    expect(first.status).toBe(200);
    const v1 = first.json<{ version: number }>().version;

    // Another operator changes desired meanwhile.
    const other = await run.core.services.shadows.updateShadow(
      'pi-a',
      undefined,
      Buffer.from(JSON.stringify({ state: { desired: { logLevel: 'debug' } } })),
    );
    expect(other.status).toBe(200);
    const conflict = await post('pi-a', {
      desired: { logLevel: 'error' },
      expected: { version: v1, desired: { logLevel: 'warn' } },
    });
    expect(conflict.status).toBe(409);
    const c = conflict.json<{ version: number; desired: Record<string, unknown>; message: string }>();
    expect(c.version).toBe(v1 + 1);
    expect(c.desired).toEqual({ logLevel: 'debug' });
    expect(c.message).toMatch(/changed since version/);

    // The device reports: the version moves, desired does not; the change based on v1+1 goes through.
    await run.core.services.shadows.updateShadow(
      'pi-a',
      undefined,
      Buffer.from(JSON.stringify({ state: { reported: { logLevel: 'debug' } } })),
    );
    const ok = await post('pi-a', {
      desired: { logLevel: 'error' },
      expected: { version: v1 + 1, desired: { logLevel: 'debug' } },
    });
    expect(ok.status).toBe(200);
    expect(ok.json<{ version: number }>().version).toBe(v1 + 3);
    const doc = await run.core.services.shadows.getShadow('pi-a');
    expect(doc.body).toMatchObject({ state: { desired: { logLevel: 'error' }, delta: { logLevel: 'error' } } });
  });

  it('answers 404 for a thing that is not registered', async () => {
    const r = await post('ghost', { desired: { logLevel: 'info' } });
    expect(r.status).toBe(404);
  });
});

describe('console event streams', () => {
  it('starts the fleet stream with a snapshot, then delivers presence and summaries live', async () => {
    const stream = await openSse(base, '/console/events', page);
    try {
      expect(stream.status).toBe(200);
      expect(stream.headers['content-type']).toMatch(/^text\/event-stream/);
      const snapshot = await stream.waitFor((e) => e.event === 'snapshot');
      expect((snapshot.data as { things: Array<{ thingName: string }> }).things.map((t) => t.thingName)).toContain(
        'pi-a',
      );

      const device = await provision('pi-live');
      const connected = new Promise<void>((resolve, reject) => {
        device.once('connect', () => resolve());
        device.once('error', reject);
      });
      device.connect();
      await connected;
      const presence = await stream.waitFor((e) => e.event === 'presence');
      expect(presence.data).toMatchObject({ thingName: 'pi-live', connected: true, reason: null, protocol: '3.1.1' });
      const isLive = (e: SseEvent) =>
        e.event === 'things' &&
        (e.data as Array<{ thingName: string; connected: boolean }>).some(
          (t) => t.thingName === 'pi-live' && t.connected,
        );
      await stream.waitFor(isLive);

      const thingStream = await openSse(base, '/console/events?thing=pi-live', page);
      try {
        const detail = await thingStream.waitFor((e) => e.event === 'detail');
        expect(detail.data).toMatchObject({
          summary: { thingName: 'pi-live', connected: true, protocol: '3.1.1' },
          shadow: null,
        });
        const batch = {
          v: 1,
          thingName: 'pi-live',
          bootId: 'boot-1234',
          seq: 1,
          sealedAt: Date.now(),
          readings: [{ sensor: 'bme280', ts: Date.now(), metrics: { temperature: 36.5 } }],
        };
        await device.publishAsync(appTopics.telemetry('pi-live'), JSON.stringify(batch), { qos: 1 });
        const telemetry = await thingStream.waitFor((e) => e.event === 'telemetry');
        expect(telemetry.data).toMatchObject({ thingName: 'pi-live', readings: batch.readings });
        await device.publishAsync(
          '$aws/things/pi-live/shadow/update',
          JSON.stringify({ state: { reported: { outputs: { led: true } } } }),
          { qos: 1 },
        );
        const shadow = await thingStream.waitFor((e) => e.event === 'shadow');
        expect(shadow.data).toMatchObject({
          thingName: 'pi-live',
          document: { state: { reported: { outputs: { led: true } } } },
        });
      } finally {
        thingStream.close();
      }

      await device.endAsync();
      const gone = await stream.waitFor(
        (e) => e.event === 'presence' && (e.data as { connected: boolean }).connected === false,
      );
      expect(gone.data).toMatchObject({ thingName: 'pi-live', reason: 'CLIENT_INITIATED_DISCONNECT', protocol: null });
    } finally {
      stream.close();
    }
  });

  it('shows the MQTT version of a connected MQTT 5 thing, live and in the things list', async () => {
    const stream = await openSse(base, '/console/events', page);
    const device = await provision('pi-five', 5);
    try {
      await stream.waitFor((e) => e.event === 'snapshot');
      device.connect();
      const presence = await stream.waitFor(
        (e) => e.event === 'presence' && (e.data as { thingName: string }).thingName === 'pi-five',
      );
      expect(presence.data).toMatchObject({ connected: true, protocol: '5' });
      await stream.waitFor(
        (e) =>
          e.event === 'things' &&
          (e.data as Array<{ thingName: string; protocol: string | null }>).some(
            (t) => t.thingName === 'pi-five' && t.protocol === '5',
          ),
      );
      const r = await http(base, 'GET', '/console/api/things', page);
      const things = r.json<{ things: Array<{ thingName: string; protocol: string | null }> }>().things;
      expect(things.find((t) => t.thingName === 'pi-five')?.protocol).toBe('5');
    } finally {
      stream.close();
      await device.endAsync();
    }
  });

  it('sends a followed thing its summaries with no fleet view open, and its history when the view opens', async () => {
    const at = Date.now();
    const telemetry = (seq: number, temperature: number) =>
      JSON.stringify({
        v: 1,
        thingName: 'pi-b',
        bootId: 'boot-summary',
        seq,
        sealedAt: at,
        readings: [{ sensor: 'bme280', ts: at + seq, metrics: { temperature } }],
      });
    // Before anyone follows pi-b: kept, then shown when its view opens.
    await run.core.services.broker.bus.publish(appTopics.telemetry('pi-b'), telemetry(1, 19.5));
    const thingStream = await openSse(base, '/console/events?thing=pi-b', page);
    try {
      const detail = await thingStream.waitFor((e) => e.event === 'detail');
      expect((detail.data as { history: unknown[] }).history).toEqual([
        { sensor: 'bme280', ts: at + 1, metrics: { temperature: 19.5 } },
      ]);
      await run.core.services.broker.bus.publish(appTopics.telemetry('pi-b'), telemetry(2, 20.5));
      const summary = await thingStream.waitFor(
        (e) =>
          e.event === 'summary' &&
          (e.data as { lastTelemetry: { metrics: Record<string, number> } | null }).lastTelemetry?.metrics[
            'bme280.temperature'
          ] === 20.5,
      );
      expect(summary.data).toMatchObject({ thingName: 'pi-b', lastTelemetry: { at: at + 2 } });
    } finally {
      thingStream.close();
    }
  });

  it('refuses a thing stream for an invalid name (400)', async () => {
    const r = await http(base, 'GET', '/console/events?thing=bad%20name', page);
    expect(r.status).toBe(400);
  });
});

describe('a console on its own listener', () => {
  it('answers 503 before start, and still starts without its page files (and says so)', async () => {
    const { registry, broker, shadows, credentials } = run.core.services;
    const empty = tempDir('console-assets');
    const webConsole = createWebConsole({
      registry,
      broker,
      shadows,
      now: Date.now,
      token: 'fixed-token',
      assetsDir: empty,
    });
    const server = createHttpServer({
      host: '127.0.0.1',
      port: 0,
      region: run.info.region,
      credentials: singleCredentialStore(credentials),
      routes: [webConsole.routes],
      now: Date.now,
    });
    const bound = await server.start();
    try {
      expect(webConsole.token).toBe('fixed-token');
      expect(webConsole.url(bound.url)).toBe(`${bound.url}/console/?token=fixed-token`);
      expect((await http(bound.url, 'GET', '/console/api/things')).status).toBe(503);
      await webConsole.start();
      const signIn = await http(bound.url, 'GET', '/console/?token=fixed-token');
      const own = String(signIn.headers['set-cookie']?.[0]).split(';')[0] as string;
      const pageReply = await http(bound.url, 'GET', '/console/', { cookie: own });
      expect(pageReply.status).toBe(200);
      expect(pageReply.text).toContain('Console unavailable');
      // The other listener's session means nothing here.
      expect((await http(bound.url, 'GET', '/console/api/things', { cookie })).status).toBe(401);
      expect((await http(bound.url, 'GET', '/console/api/things', { cookie: own })).status).toBe(200);
    } finally {
      await webConsole.stop();
      await server.stop();
      removeDir(empty);
    }
  });
});
