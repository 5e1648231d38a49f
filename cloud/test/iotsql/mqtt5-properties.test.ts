import { describe, expect, it } from 'vitest';
import {
  compileRule,
  compileTemplate,
  type IotMessage,
  IotSqlError,
  type MqttMessageProperties,
  type RuleOutput,
} from '../../src/core/iotsql/index.js';
import { compileError } from './helpers.js';

/**
 * `get_mqtt_property()` and `get_user_properties()`: IoT SQL's view of a PUBLISH's MQTT 5
 * properties (AWS IoT SQL reference, Functions). An MQTT 3.1.1 message carries none.
 */

const TOPIC = 'pifleet/pi-01/telemetry';
const FROM = "FROM 'pifleet/+/telemetry'";

const V5: MqttMessageProperties = {
  payloadFormatIndicator: true,
  contentType: 'application/json',
  responseTopic: 'pifleet/pi-01/replies',
  correlationData: Buffer.from([0x00, 0xff, 0x10, 0x80]),
  userProperties: { site: 'north', Site: 'upper', batch: ['b-1', 'b-2'], empty: '' },
};

const message = (properties?: MqttMessageProperties, payload = '{"t":21}'): IotMessage => ({
  topic: TOPIC,
  payload,
  clientId: 'pi-01',
  ...(properties === undefined ? {} : { properties }),
});

function select(items: string, properties?: MqttMessageProperties): RuleOutput {
  const r = compileRule(`SELECT ${items} ${FROM}`).evaluate(message(properties));
  if (!r.matched) throw new Error('rule did not match');
  return r.output;
}

const matches = (where: string, properties?: MqttMessageProperties) =>
  compileRule(`SELECT * ${FROM} WHERE ${where}`).evaluate(message(properties)).matched;

describe('get_mqtt_property(name)', () => {
  it.each<[name: string, expected: RuleOutput]>([
    ['content_type', 'application/json'],
    ['response_topic', 'pifleet/pi-01/replies'],
    // binary: base64 of the exact bytes (0x00 0xff 0x10 0x80 is not UTF-8)
    ['correlation_data', 'AP8QgA=='],
    ['format_indicator', 'UTF8_DATA'],
  ])('%s of an MQTT 5 message', (name, expected) => {
    expect(select(`get_mqtt_property('${name}') AS v`, V5)).toEqual({ v: expected });
  });

  it('reads a payload format indicator of 0 as UNSPECIFIED_BYTES, the enum the republish headers take', () => {
    expect(select("get_mqtt_property('format_indicator') AS f", { payloadFormatIndicator: false })).toEqual({
      f: 'UNSPECIFIED_BYTES',
    });
  });

  it('is Undefined for a property the MQTT 5 message does not carry (the key is left out)', () => {
    expect(
      select(
        "get_mqtt_property('content_type') AS c, get_mqtt_property('correlation_data') AS d, " +
          "get_mqtt_property('format_indicator') AS f, get_mqtt_property('response_topic') AS r, 1 AS one",
        { userProperties: { a: 'b' } },
      ),
    ).toEqual({ one: 1 });
  });

  it('is Undefined for every property of an MQTT 3.1.1 message', () => {
    const out = select(
      "isUndefined(get_mqtt_property('content_type')) AS c, isUndefined(get_mqtt_property('format_indicator')) AS f, " +
        "isUndefined(get_mqtt_property('response_topic')) AS r, isUndefined(get_mqtt_property('correlation_data')) AS d",
    );
    expect(out).toEqual({ c: true, f: true, r: true, d: true });
  });

  it('works in WHERE', () => {
    expect(matches("get_mqtt_property('content_type') = 'application/json'", V5)).toBe(true);
    expect(matches("get_mqtt_property('content_type') = 'text/plain'", V5)).toBe(false);
    // 3.1.1: Undefined = 'x' is Undefined, which is not true
    expect(matches("get_mqtt_property('content_type') = 'application/json'")).toBe(false);
    expect(matches("isUndefined(get_mqtt_property('content_type'))")).toBe(true);
  });

  it('evaluates a name computed at run time; one that names no property is Undefined', () => {
    const rule = compileRule(`SELECT get_mqtt_property(p) AS v ${FROM}`);
    const run = (p: unknown) => rule.evaluate({ ...message(V5), payload: JSON.stringify({ p }) });
    expect(run('content_type')).toEqual({ matched: true, output: { v: 'application/json' } });
    expect(run('CONTENT_TYPE')).toEqual({ matched: true, output: {} });
    expect(run('contentType')).toEqual({ matched: true, output: {} });
    expect(run(7)).toEqual({ matched: true, output: {} });
  });

  it.each<[sql: string, reason: RegExp]>([
    [
      `SELECT get_mqtt_property('contentType') AS c ${FROM}`,
      /one of 'format_indicator', 'content_type'.*not "contentType"/,
    ],
    [`SELECT get_mqtt_property('CONTENT_TYPE') AS c ${FROM}`, /not "CONTENT_TYPE"/],
    [`SELECT get_mqtt_property(1) AS c ${FROM}`, /takes a property name \(a string\)/],
    [`SELECT get_mqtt_property() AS c ${FROM}`, /get_mqtt_property\(\) takes 1 argument, got 0/],
    [`SELECT * ${FROM} WHERE get_mqtt_property('a', 'b') = 1`, /takes 1 argument, got 2/],
  ])('refuses %s when the rule is compiled', (sql, reason) => {
    const err = compileError(sql);
    expect(err.kind).toBe('semantic');
    expect(err.reason).toMatch(reason);
  });
});

describe('get_user_properties([key])', () => {
  it.each<[key: string, expected: RuleOutput]>([
    // an Array even for one value: MQTT 5 allows a key more than once
    ['site', ['north']],
    ['batch', ['b-1', 'b-2']],
    // keys are case-sensitive
    ['Site', ['upper']],
    ['empty', ['']],
  ])('%s', (key, expected) => {
    expect(select(`get_user_properties('${key}') AS v`, V5)).toEqual({ v: expected });
  });

  it('is Undefined for a key the message does not carry, a key that is not a String, and an MQTT 3.1.1 message', () => {
    expect(
      select("get_user_properties('SITE') AS a, get_user_properties('missing') AS b, get_user_properties(1) AS c", V5),
    ).toEqual({});
    expect(select("get_user_properties('site') AS a, get_user_properties() AS b")).toEqual({});
    expect(select("get_user_properties() AS b, 'x' AS x", { contentType: 'text/plain' })).toEqual({ x: 'x' });
  });

  it('without a key lists every user property as one-key objects, repeated keys in order', () => {
    expect(select('get_user_properties() AS all', V5)).toEqual({
      all: [{ site: 'north' }, { Site: 'upper' }, { batch: 'b-1' }, { batch: 'b-2' }, { empty: '' }],
    });
  });

  it('reads only own keys: Object.prototype names and __proto__ are ordinary, absent keys', () => {
    const props: MqttMessageProperties = { userProperties: JSON.parse('{"__proto__":"p","k":"v"}') };
    expect(
      select(
        "get_user_properties('toString') AS t, get_user_properties('constructor') AS c, get_user_properties('__proto__') AS p",
        props,
      ),
    ).toEqual({ p: ['p'] });
    const all = select('get_user_properties() AS all', props) as { all: Record<string, string>[] };
    expect(all.all).toHaveLength(2);
    expect(Object.getPrototypeOf(all.all[0])).toBe(Object.prototype);
    expect(Object.keys(all.all[0] as object)).toEqual(['__proto__']);
  });

  it('works in WHERE, with get() and IN', () => {
    expect(matches("get(get_user_properties('site'), 0) = 'north'", V5)).toBe(true);
    expect(matches("'b-2' IN get_user_properties('batch')", V5)).toBe(true);
    expect(matches("get_user_properties('site') = ['north']", V5)).toBe(true);
    expect(matches("get(get_user_properties('site'), 0) = 'north'")).toBe(false);
  });

  it('get_user_property (singular) is not an IoT SQL function: the error names the one meant', () => {
    const err = compileError(`SELECT get_user_property('site') AS s ${FROM}`);
    expect(err.reason).toBe('unknown function get_user_property(); did you mean get_user_properties()?');
    expect(compileError(`SELECT get_user_properties('a', 'b') AS s ${FROM}`).reason).toMatch(
      /takes 0 to 1 arguments, got 2/,
    );
  });
});

describe('in substitution templates', () => {
  it('renders properties; Undefined (an MQTT 3.1.1 message) renders empty', () => {
    const t = compileTemplate(
      "replies/${get(get_user_properties('site'), 0)}/${get_mqtt_property('correlation_data')}|${get_mqtt_property('content_type')}",
    );
    expect(t.render(message(V5))).toBe('replies/north/AP8QgA==|application/json');
    expect(t.render(message())).toBe('replies//|');
  });

  it('checks a literal property name when the template is compiled', () => {
    expect(() => compileTemplate("${get_mqtt_property('correlationData')}")).toThrow(IotSqlError);
  });
});
