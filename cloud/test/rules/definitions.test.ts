import { validateTelemetryBatch } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { compileRule, compileTemplate } from '../../src/core/iotsql/index.js';
import { archiveStreamProblem } from '../../src/rules/archive-layout.js';
import {
  RULE_NAME_PATTERN,
  RULE_SQL_VERSION,
  RULES,
  type RuleAction,
  TELEMETRY_ARCHIVE,
  TEMPERATURE_ALERT_CELSIUS,
} from '../../src/rules/definitions.js';
import { batchOf } from '../../src/testing/telemetry-store-suite.js';

const rule = (name: string) => {
  const def = RULES.find((r) => r.name === name);
  if (def === undefined) throw new Error(`no rule ${name}`);
  return { def, compiled: compileRule(def.sql) };
};

const templatesOf = (a: RuleAction): string[] =>
  a.kind === 'republish' ? [a.topic] : a.kind === 'archive' ? [a.key] : a.kind === 'log' ? [a.logGroup] : [];

const telemetry = (readings: Parameters<typeof batchOf>[2]) => ({
  topic: 'pifleet/pi-01/telemetry',
  payload: JSON.stringify(batchOf('pi-01', 4, readings)),
  timestamp: 1_700_000_999_000,
});

describe('rule definitions', () => {
  it('ships the telemetry, archive, alert and presence rules with valid, unique names', () => {
    expect(RULES.map((r) => r.name)).toEqual([
      'pifleet_telemetry_ingest',
      'pifleet_telemetry_archive',
      'pifleet_temperature_alert',
      'pifleet_presence',
    ]);
    for (const r of RULES) expect(r.name).toMatch(RULE_NAME_PATTERN);
    expect(new Set(RULES.map((r) => r.name)).size).toBe(RULES.length);
  });

  it.each(RULES.map((r) => [r.name, r] as const))('%s compiles, has actions and an error action', (_name, r) => {
    expect(r.sqlVersion).toBe(RULE_SQL_VERSION);
    expect(() => compileRule(r.sql)).not.toThrow();
    expect(r.actions.length).toBeGreaterThan(0);
    expect(r.errorAction).toBeDefined();
    expect(r.description.length).toBeGreaterThan(20);
    for (const a of [...r.actions, r.errorAction])
      for (const t of templatesOf(a)) expect(() => compileTemplate(t)).not.toThrow();
  });

  it('is plain data that survives a JSON round trip (the CDK app and the local engine both read it)', () => {
    expect(JSON.parse(JSON.stringify(RULES))).toEqual(RULES);
  });

  it.each([
    ['pifleet_telemetry_ingest', 'pifleet/+/telemetry'],
    ['pifleet_telemetry_archive', 'pifleet/+/telemetry'],
    ['pifleet_temperature_alert', 'pifleet/+/telemetry'],
    ['pifleet_presence', '$aws/events/presence/+/+'],
  ])('%s reads %s', (name, filter) => {
    expect(rule(name).compiled.topicFilter).toBe(filter);
  });
});

describe('telemetry ingest rule', () => {
  it('delivers the batch plus the thing of the topic, and the batch part is still a valid batch', () => {
    const { compiled } = rule('pifleet_telemetry_ingest');
    const result = compiled.evaluate(telemetry([{ sensor: 'door', ts: 1, metrics: { open: true } }]));
    expect(result.matched).toBe(true);
    if (!result.matched) return;
    const { topicThing, ...batch } = result.output as Record<string, unknown>;
    expect(topicThing).toBe('pi-01');
    expect(validateTelemetryBatch(batch).ok).toBe(true);
  });

  it.each(['pifleet/pi-01/status', 'pifleet/pi-01/telemetry/extra', 'other/pi-01/telemetry'])('ignores %s', (topic) => {
    expect(rule('pifleet_telemetry_ingest').compiled.evaluate({ topic, payload: '{}' }).matched).toBe(false);
  });
});

describe('raw archive rule', () => {
  it('puts every message, with the topic thing added, into the archive stream as one JSON line', () => {
    const { def, compiled } = rule('pifleet_telemetry_archive');
    expect(def.actions).toEqual([{ kind: 'firehose', stream: TELEMETRY_ARCHIVE, separator: '\n' }]);
    const claimed = { ...batchOf('someone-else', 1, []), extra: { nested: [1, 2] } };
    const out = compiled.evaluate({ topic: 'pifleet/pi-01/telemetry', payload: JSON.stringify(claimed) });
    // The partition key is the topic's thing (the policy ties it to the connection), never the payload's.
    expect(out).toEqual({ matched: true, output: { ...claimed, topicThing: 'pi-01' } });
    expect(compiled.evaluate({ topic: 'pifleet/pi-01/telemetry', payload: 'not json at all' }).matched).toBe(true);
  });

  it('describes a stream both sides can build (Firehose and the local archive)', () => {
    expect(archiveStreamProblem(TELEMETRY_ARCHIVE)).toBeUndefined();
    expect(TELEMETRY_ARCHIVE).toEqual({
      name: 'pifleet-telemetry-archive',
      prefix: 'raw/',
      errorPrefix: 'raw-errors/',
      thingField: 'topicThing',
    });
  });
});

describe('temperature alert rule', () => {
  const hot = TEMPERATURE_ALERT_CELSIUS + 1.5;
  it.each([
    ['no reading over the threshold', [{ sensor: 'bme280', ts: 1, metrics: { temperature: 20 } }], []],
    ['exactly the threshold', [{ sensor: 'bme280', ts: 1, metrics: { temperature: TEMPERATURE_ALERT_CELSIUS } }], []],
    ['readings without temperature', [{ sensor: 'door', ts: 1, metrics: { open: true } }], []],
    ['a non-numeric temperature', [{ sensor: 'x', ts: 1, metrics: { temperature: true } }], []],
    ['the first reading hot', [{ sensor: 'bme280', ts: 1, metrics: { temperature: hot } }], [1]],
    [
      'a hot reading behind other sensors',
      [
        { sensor: 'door', ts: 1, metrics: { open: true } },
        { sensor: 'bme280', ts: 2, metrics: { temperature: 20 } },
        { sensor: 'bme280', ts: 3, metrics: { temperature: hot } },
      ],
      [3],
    ],
    [
      'several hot readings',
      [
        { sensor: 'a', ts: 1, metrics: { temperature: hot } },
        { sensor: 'b', ts: 2, metrics: { temperature: 0 } },
        { sensor: 'c', ts: 3, metrics: { temperature: hot + 10, humidity: 5 } },
      ],
      [1, 3],
    ],
  ] as const)('with %s', (_label, readings, hotTimes) => {
    const { compiled } = rule('pifleet_temperature_alert');
    const result = compiled.evaluate(telemetry([...readings]));
    expect(result.matched).toBe(hotTimes.length > 0);
    if (!result.matched) return;
    const out = result.output as { readings: { ts: number; temperature: number }[] };
    expect(out).toMatchObject({
      thingName: 'pi-01',
      seq: 4,
      thresholdCelsius: TEMPERATURE_ALERT_CELSIUS,
      raisedAt: 1_700_000_999_000,
    });
    expect(out.readings.map((r) => r.ts)).toEqual(hotTimes);
    for (const r of out.readings) expect(r.temperature).toBeGreaterThan(TEMPERATURE_ALERT_CELSIUS);
  });

  it('republishes to the thing alerts topic at QoS 1', () => {
    const action = rule('pifleet_temperature_alert').def.actions[0];
    expect(action).toMatchObject({ kind: 'republish', qos: 1 });
    if (action?.kind !== 'republish') return;
    expect(compileTemplate(action.topic).render({ topic: 'pifleet/pi-07/telemetry', payload: '{}' })).toBe(
      'pifleet/pi-07/alerts',
    );
  });
});

describe('presence rule', () => {
  it.each([
    ['$aws/events/presence/connected/pi-01', true],
    ['$aws/events/presence/disconnected/pi-01', true],
    ['$aws/events/subscriptions/subscribed/pi-01', false],
    ['$aws/things/pi-01/shadow/update', false],
  ])('%s matches: %s', (topic, matched) => {
    const result = rule('pifleet_presence').compiled.evaluate({
      topic,
      payload: JSON.stringify({ clientId: 'pi-01', eventType: 'connected', timestamp: 1 }),
    });
    expect(result.matched).toBe(matched);
    if (result.matched) expect(result.output).toEqual({ clientId: 'pi-01', eventType: 'connected', timestamp: 1 });
  });
});
