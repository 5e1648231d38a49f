import { describe, expect, it } from 'vitest';
import { endpointProblem, loadConfig, MAX_CONFIG_DEPTH } from '../../src/config/load.js';

const base = {
  thingName: 'pi-01',
  endpoint: 'abc-ats.iot.eu-west-1.amazonaws.com',
  certFile: '/etc/pifleet/cert.pem',
  keyFile: '/etc/pifleet/key.pem',
  sensors: [{ id: 'env', driver: 'bme280', bus: 1, address: '0x76', intervalMs: 5000 }],
  outputs: [{ id: 'relay', driver: 'digital-output', line: 17 }],
};
const text = (o: unknown) => JSON.stringify(o);

describe('loadConfig', () => {
  it('applies defaults, converts hex addresses, defaults clientId to thingName, and freezes', () => {
    const r = loadConfig({ fileText: text(base) });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    const c = r.value;
    expect(c.port).toBe(8883);
    expect(c.mqtt.protocol).toBe('5');
    expect(c.mqtt.clientId).toBe('pi-01');
    expect((c.sensors[0] as { address?: number } | undefined)?.address).toBe(0x76);
    expect(c.outputs[0]).toEqual({ id: 'relay', driver: 'digital-output', line: 17, activeLow: false, initial: false });
    expect(c.sensors[0]).toMatchObject({ driver: 'bme280', intervalMs: 5000, stuckAfter: 20 });
    expect(c.batch).toEqual({ maxReadings: 500, maxBytes: 65_536, maxAgeMs: 10_000 });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.sensors[0])).toBe(true);
    expect(() => {
      (c as { port: number }).port = 1;
    }).toThrow(TypeError);
  });

  it('reports every problem at once, each with its path', () => {
    const r = loadConfig({
      fileText: text({
        endpoint: '',
        port: 70_000,
        certFile: 'c',
        keyFile: 'k',
        mqtt: { protocol: '4' },
        sensors: [
          { id: 'a', driver: 'bme280', bus: 1, address: '0x10' },
          { id: 'b', driver: 'digital-input' },
          { id: 'c', driver: 'dht22', line: 4 },
          { id: 'bad id!', driver: 'bh1750' },
        ],
        batch: { maxBytes: 200_000 },
        colour: 'red',
      }),
    });
    expect(r.ok).toBe(false);
    const paths = r.ok ? [] : r.issues.map((i) => i.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'thingName',
        'endpoint',
        'port',
        'mqtt.protocol',
        'sensors[0].address',
        'sensors[1].line',
        'sensors[2].driver',
        'sensors[3].id',
        'batch.maxBytes',
        '$',
      ]),
    );
    expect(r.ok ? [] : r.issues.find((i) => i.path === 'batch.maxBytes')?.message).toMatch(/at most 122880/);
  });

  it('reports duplicate ids, and a GPIO line used twice, once the entries are otherwise valid', () => {
    const r = loadConfig({
      fileText: text({ ...base, sensors: [base.sensors[0], base.sensors[0]] }),
    });
    expect(r.ok ? [] : r.issues).toEqual([{ path: 'sensors[1].id', message: 'duplicate id "env"' }]);
    const lines = loadConfig({
      fileText: text({ ...base, sensors: [{ id: 'door', driver: 'digital-input', line: 17 }] }),
    });
    expect(lines.ok ? [] : lines.issues).toEqual([{ path: 'outputs[0].line', message: 'BCM 17 already used by door' }]);
  });

  it('rejects unparsable JSON with its file name', () => {
    const r = loadConfig({ fileText: '{"thingName": ', fileName: '/etc/pifleet/agent.json' });
    expect(r.ok ? '' : r.issues[0]?.message).toMatch(/agent\.json is not valid JSON/);
  });

  it.each([
    ['PIFLEET_THING_NAME', 'pi-99', (c: { thingName: string }) => c.thingName, 'pi-99'],
    ['PIFLEET_PORT', '8884', (c: { port: number }) => c.port, 8884],
    ['PIFLEET_MQTT_PROTOCOL', '3.1.1', (c: { mqtt: { protocol: string } }) => c.mqtt.protocol, '3.1.1'],
    ['PIFLEET_LOG_LEVEL', 'debug', (c: { logLevel: string }) => c.logLevel, 'debug'],
    ['PIFLEET_OUTBOX_PATH', '/tmp/o.db', (c: { outbox: { path: string } }) => c.outbox.path, '/tmp/o.db'],
    ['PIFLEET_TELEMETRY_ENCODING', 'v1', (c: { telemetry: { encoding: string } }) => c.telemetry.encoding, 'v1'],
  ] as const)('env %s overrides the file', (env, value, pick, expected) => {
    const r = loadConfig({ fileText: text({ ...base, logLevel: 'warn' }), env: { [env]: value } });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    expect((pick as (c: unknown) => unknown)(r.value)).toBe(expected);
  });

  it('flags override env, env overrides file, and a bad env value names its variable', () => {
    const r = loadConfig({
      fileText: text({ ...base, logLevel: 'warn' }),
      env: { PIFLEET_LOG_LEVEL: 'debug' },
      flags: { logLevel: 'error' },
    });
    expect(r.ok && r.value.logLevel).toBe('error');
    const bad = loadConfig({ fileText: text(base), env: { PIFLEET_PORT: 'eighty', PIFLEET_LOG_LEVEL: 'loud' } });
    expect(bad.ok ? [] : bad.issues.map((i) => `${i.path}: ${i.message}`)).toEqual([
      'port: from PIFLEET_PORT: "eighty" is not an integer',
      expect.stringMatching(/^logLevel: logLevel must be one of .* \(from PIFLEET_LOG_LEVEL\)$/),
    ]);
  });

  it('telemetry batches in v2 by default; telemetry.encoding takes v1 and refuses anything else by name', () => {
    const r = loadConfig({ fileText: text(base) });
    expect(r.ok && r.value.telemetry.encoding).toBe('v2');
    const v1 = loadConfig({ fileText: text({ ...base, telemetry: { encoding: 'v1' } }) });
    expect(v1.ok && v1.value.telemetry.encoding).toBe('v1');
    const bad = loadConfig({ fileText: text({ ...base, telemetry: { encoding: 'v3' } }) });
    expect(bad.ok ? [] : bad.issues.map((i) => `${i.path}: ${i.message}`)).toEqual([
      'telemetry.encoding: telemetry.encoding must be "v2" or "v1"',
    ]);
    const extra = loadConfig({ fileText: text({ ...base, telemetry: { encoding: 'v2', compress: true } }) });
    expect(extra.ok ? [] : extra.issues.map((i) => i.path)).toEqual(['telemetry']);
  });

  it('MQTT 5 by default; publish.refusedRetryMs defaults to 60 s and is bounded (1 s to 1 h)', () => {
    const r = loadConfig({ fileText: text(base) });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    expect(r.value.mqtt.protocol).toBe('5');
    expect(r.value.publish.refusedRetryMs).toBe(60_000);
    for (const refusedRetryMs of [999, 3_600_001]) {
      const bad = loadConfig({ fileText: text({ ...base, publish: { refusedRetryMs } }) });
      expect(bad.ok ? [] : bad.issues.map((i) => i.path)).toEqual(['publish.refusedRetryMs']);
    }
  });

  it.each([
    [
      'maxPerSecond',
      51,
      /at most 50: AWS IoT Core allows 100 publishes per second per connection \(quota publishesPerSecondPerConnection\)/,
    ],
    [
      'maxBytesPerSecond',
      384 * 1024 + 1,
      /at most 393216: AWS IoT Core allows 512 KiB of publishes per second per connection \(quota publishBytesPerSecondPerConnection\)/,
    ],
    ['maxBytesPerSecond', 120 * 1024 - 1, /at least 122880 \(one batch of the largest size\)/],
  ])('publish.%s = %d is refused with a message naming the IoT Core quota it would exceed', (field, value, message) => {
    const r = loadConfig({ fileText: text({ ...base, publish: { [field]: value } }) });
    expect(r.ok).toBe(false);
    expect(r.ok ? undefined : r.issues.find((i) => i.path === `publish.${field}`)?.message).toMatch(message);
  });

  it('the fastest publish settings the validation allows stay inside the per-connection quotas; the byte cap defaults to 256 KiB/s', () => {
    const r = loadConfig({ fileText: text({ ...base, publish: { maxPerSecond: 50, maxBytesPerSecond: 384 * 1024 } }) });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    expect(r.value.publish.maxPerSecond).toBeLessThan(100);
    expect(r.value.publish.maxBytesPerSecond + 120 * 1024).toBeLessThan(512 * 1024);
    const d = loadConfig({ fileText: text(base) });
    expect(d.ok && d.value.publish.maxBytesPerSecond).toBe(256 * 1024);
  });

  it('env alone can supply required settings', () => {
    const r = loadConfig({
      env: {
        PIFLEET_THING_NAME: 'pi-02',
        PIFLEET_ENDPOINT: 'localhost',
        PIFLEET_CERT_FILE: 'c.pem',
        PIFLEET_KEY_FILE: 'k.pem',
      },
    });
    expect(r.ok && r.value.thingName).toBe('pi-02');
  });

  it.each([
    ['bad host name', /contains spaces/],
    [
      'https://abc-ats.iot.eu-west-1.amazonaws.com',
      /is a URL; endpoint is a host name: use "abc-ats.iot.eu-west-1.amazonaws.com"/,
    ],
    ['mqtts://localhost:8883', /is a URL; .* use "localhost" and port 8883/],
    ['localhost:8883', /includes a port; set endpoint to "localhost" and port to 8883/],
    ['abc/iot', /is not a valid host name/],
    ['-abc.example.com', /is not a valid host name/],
    ['under_score.example.com', /is not a valid host name/],
  ])('endpoint %j is refused with what to use instead', (endpoint, message) => {
    const r = loadConfig({ fileText: text({ ...base, endpoint }) });
    expect(r.ok ? [] : r.issues).toEqual([{ path: 'endpoint', message: expect.stringMatching(message) }]);
  });

  it('an endpoint from the environment is checked too, and names its variable', () => {
    const r = loadConfig({ fileText: text(base), env: { PIFLEET_ENDPOINT: 'http://x' } });
    expect(r.ok ? [] : r.issues).toEqual([
      { path: 'endpoint', message: expect.stringMatching(/is a URL.*\(from PIFLEET_ENDPOINT\)$/) },
    ]);
  });

  it.each(['abc-ats.iot.eu-west-1.amazonaws.com', 'localhost', 'x', '127.0.0.1', '::1', 'host.example.com.'])(
    'endpoint %j is a host name',
    (endpoint) => {
      expect(endpointProblem(endpoint)).toBeUndefined();
    },
  );

  it('a 10,000-level document is refused with the path where it gets too deep, before anything recurses', () => {
    const depth = 10_000;
    const deep = `{"thingName":"pi-01","sensors":[${'{"x":'.repeat(depth)}1${'}'.repeat(depth)}]}`;
    const r = loadConfig({ fileText: deep, fileName: 'agent.json' });
    expect(r.ok).toBe(false);
    const issues = r.ok ? [] : r.issues;
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe(`sensors[0]${'.x'.repeat(MAX_CONFIG_DEPTH - 2)}`);
    expect(issues[0]?.message).toMatch(
      /agent\.json nests more than 16 levels deep here .*is this the agent's config file\?/,
    );
  });

  it('the deepest valid config passes the depth check', () => {
    const r = loadConfig({
      fileText: text({
        ...base,
        sensors: [{ id: 'soil', driver: 'ads1115', address: 72, channels: [{ name: 'moisture', input: 0 }] }],
      }),
    });
    expect(r.ok ? [] : r.issues).toEqual([]);
  });

  it('a __proto__ key in the file is an unknown key, and nothing reaches a prototype', () => {
    const r = loadConfig({ fileText: `{"__proto__":{"polluted":1},${text(base).slice(1)}` });
    expect(r.ok ? [] : r.issues.map((i) => i.path)).toEqual(['$']);
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
  });
});
