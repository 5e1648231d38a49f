import { describe, expect, it } from 'vitest';
import { compileRule, prepareMessage, type RuleOutput, serializeOutput } from '../../src/core/iotsql/index.js';
import { run } from './helpers.js';

const T = 'topic/subtopic';
const P = { color: 'red', temperature: 50 };

describe('SELECT clause (examples from the AWS IoT SQL reference)', () => {
  it.each<[string, unknown, RuleOutput]>([
    ["SELECT * FROM 'topic/subtopic'", P, { color: 'red', temperature: 50 }],
    ["SELECT color FROM 'topic/subtopic'", P, { color: 'red' }],
    ["SELECT color AS my_color FROM 'topic/subtopic'", P, { my_color: 'red' }],
    [
      "SELECT color as my_color, temperature as fahrenheit FROM 'topic/subtopic'",
      P,
      { my_color: 'red', fahrenheit: 50 },
    ],
    ["SELECT *, 15 as speed FROM 'topic/subtopic'", P, { color: 'red', temperature: 50, speed: 15 }],
    ["SELECT VALUE color FROM 'topic/subtopic'", P, 'red'],
    ["SELECT VALUE [color, temperature] FROM 'topic/subtopic'", P, ['red', 50]],
    [
      "SELECT color.red as red_value FROM 'topic/subtopic'",
      { color: { red: 255, green: 0, blue: 0 }, temperature: 50 },
      { red_value: 255 },
    ],
    [
      "SELECT (temperature - 32) * 5 / 9 AS celsius, upper(color) as my_color FROM 'topic/subtopic'",
      P,
      { celsius: 10, my_color: 'RED' },
    ],
    ["SELECT NULL AS n FROM 'topic/subtopic'", P, { n: null }],
    [
      "SELECT {'latitude': get(lat_long, 0),'longitude':get(lat_long, 1)} as lat_long FROM 'topic/subtopic'",
      { lat_long: [47.606, -122.332] },
      { lat_long: { latitude: 47.606, longitude: -122.332 } },
    ],
    [
      "SELECT [lat,long] as lat_long FROM 'topic/subtopic'",
      { lat: 47.606, long: -122.332 },
      { lat_long: [47.606, -122.332] },
    ],
    ["SELECT temperature AS t FROM 'topic/subtopic'", { temperature: 50 }, { t: 50 }],
    [
      'SELECT decode(encoded_temp,"base64").temperature AS temp from \'topic/subtopic\'',
      { encoded_temp: 'eyAidGVtcGVyYXR1cmUiOiAzMyB9Cg==' },
      { temp: 33 },
    ],
    ["SELECT foo.bar AS bar.baz FROM 'topic/subtopic'", { foo: { bar: 'RED' } }, { bar: { baz: 'RED' } }],
    ["select Color from 'topic/subtopic'", { Color: 1, color: 2 }, { Color: 1 }],
  ])('%s', (sql, payload, expected) => {
    expect(run(sql, T, payload as never)).toEqual(expected);
  });
});

describe('output construction', () => {
  it.each<[string, unknown, RuleOutput]>([
    ["SELECT missing, color FROM 'topic/subtopic'", P, { color: 'red' }],
    ["SELECT missing AS m FROM 'topic/subtopic'", P, {}],
    ["SELECT a.b.c FROM 'topic/subtopic'", { a: { b: { c: 1 } } }, { c: 1 }],
    ["SELECT a.b[1].c FROM 'topic/subtopic'", { a: { b: [{ c: 1 }, { c: 2 }] } }, { c: 2 }],
    ["SELECT upper(color), lower('X') FROM 'topic/subtopic'", P, { upper: 'RED', lower: 'x' }],
    ["SELECT 1 + 1, 'lit' FROM 'topic/subtopic'", P, { _1: 2, _2: 'lit' }],
    ["SELECT *, color AS temperature FROM 'topic/subtopic'", P, { color: 'red', temperature: 'red' }],
    ["SELECT color AS x, temperature AS x FROM 'topic/subtopic'", P, { x: 50 }],
    ["SELECT *, * FROM 'topic/subtopic'", P, { color: 'red', temperature: 50 }],
    ["SELECT VALUE missing FROM 'topic/subtopic'", P, undefined],
    ["SELECT * FROM 'topic/subtopic'", [1, 2], [1, 2]],
    ["SELECT * FROM 'topic/subtopic'", 42, 42],
    ["SELECT *, 1 AS one FROM 'topic/subtopic'", 42, { one: 1 }],
    ["SELECT a.x AS p.q, b AS p.r FROM 'topic/subtopic'", { a: { x: 1 }, b: 2 }, { p: { q: 1, r: 2 } }],
    ["SELECT get(*, '__proto__') AS v, * FROM 'topic/subtopic'", JSON.parse('{"__proto__": {"polluted": true}}'), null],
  ])('%s', (sql, payload, expected) => {
    const out = run(sql, T, payload as never);
    if (expected === null) {
      // __proto__ must stay an ordinary key, never a prototype
      expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
      expect(Object.keys(out as object)).toEqual(['v', '__proto__']);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    } else {
      expect(out).toEqual(expected);
    }
  });

  it('SELECT * of a binary payload passes the raw bytes through; WHERE sees no fields', () => {
    const bytes = new Uint8Array([0xff, 0x00, 0x10]);
    const out = run("SELECT * FROM 'a/b'", 'a/b', bytes);
    expect(out).toBeInstanceOf(Uint8Array);
    expect([...(out as Uint8Array)]).toEqual([0xff, 0x00, 0x10]);
    expect(run("SELECT *, principal() AS p FROM 'a/b'", 'a/b', bytes, { principal: 'cert' })).toEqual({ p: 'cert' });
    expect(run("SELECT * FROM 'a/b' WHERE device_type = 'thermostat'", 'a/b', bytes)).toBe('no match');
  });

  it('a text payload that is not JSON is binary too', () => {
    const out = run("SELECT * FROM 'a/b'", 'a/b', 'hello world');
    expect(new TextDecoder().decode(out as Uint8Array)).toBe('hello world');
  });

  it('serializeOutput: JSON for values, bytes as they are, empty for Undefined', () => {
    const dec = new TextDecoder();
    expect(dec.decode(serializeOutput({ a: [1, 'x'] }))).toBe('{"a":[1,"x"]}');
    expect(dec.decode(serializeOutput('red'))).toBe('"red"');
    expect(serializeOutput(undefined).byteLength).toBe(0);
    const raw = new Uint8Array([1, 2]);
    expect(serializeOutput(raw)).toBe(raw);
  });

  it('a prepared message is decoded once and reused across rules', () => {
    const msg = prepareMessage({ topic: T, payload: JSON.stringify(P) });
    expect(prepareMessage(msg)).toBe(msg);
    const a = compileRule("SELECT color FROM 'topic/+'").evaluate(msg);
    const b = compileRule("SELECT temperature FROM 'topic/#'").evaluate(msg);
    expect(a).toEqual({ matched: true, output: { color: 'red' } });
    expect(b).toEqual({ matched: true, output: { temperature: 50 } });
  });

  it('SELECT * copies the payload object rather than returning it', () => {
    const msg = prepareMessage({ topic: T, payload: JSON.stringify(P) });
    const r = compileRule("SELECT * FROM 'topic/subtopic'").evaluate(msg);
    expect(r.matched && r.output).not.toBe(msg.body.json ? msg.body.value : undefined);
  });
});

describe('FROM topic filters', () => {
  it.each<[string, string, boolean]>([
    ['topic/subtopic', 'topic/subtopic', true],
    ['topic/subtopic', 'topic/subtopic-2', false],
    ['topic/#', 'topic/subtopic', true],
    ['topic/#', 'topic/subtopic-3/details', true],
    ['topic/#', 'topic', false], // AWS IoT rules: '#' does not match the parent level (MQTT would)
    ['topic/#', 'topic-2/subtopic-x', false],
    ['topic/+', 'topic/subtopic-2', true],
    ['topic/+', 'topic/subtopic-3/details', false],
    ['topic/+', 'topic-2/subtopic-x', false],
    ['topic/+', 'topic/', true],
    ['+/+/telemetry', 'pifleet/pi-01/telemetry', true],
    ['#', 'anything/at/all', true],
    ['#', '$aws/events/presence/connected/pi-01', false],
    ['+/events/presence/+/+', '$aws/events/presence/connected/pi-01', false],
    ['$aws/events/presence/+/+', '$aws/events/presence/connected/pi-01', true],
    ['$aws/events/presence/+/+', '$aws/events/presence/connected', false],
    ['$aws/things/+/shadow/update/accepted', '$aws/things/pi-01/shadow/update/accepted', true],
  ])("FROM '%s' on %s → %s", (filter, topic, expected) => {
    expect(run(`SELECT * FROM '${filter}'`, topic, {}) !== 'no match').toBe(expected);
    expect(compileRule(`SELECT * FROM '${filter}'`).matchesTopic(topic)).toBe(expected);
  });

  it('exposes the filter', () => {
    expect(compileRule("SELECT * FROM 'pifleet/+/telemetry'").topicFilter).toBe('pifleet/+/telemetry');
  });
});

describe('nested object queries', () => {
  const msg = {
    e: [
      { n: 'temperature', u: 'Cel', t: 1234, v: 22.5 },
      { n: 'light', u: 'lm', t: 1235, v: 135 },
      { n: 'acidity', u: 'pH', t: 1235, v: 7 },
    ],
  };
  it.each<[string, RuleOutput]>([
    ["SELECT (SELECT VALUE n FROM e) as sensors FROM 'my/topic'", { sensors: ['temperature', 'light', 'acidity'] }],
    ["SELECT (SELECT v FROM e WHERE n = 'temperature') as temperature FROM 'my/topic'", { temperature: [{ v: 22.5 }] }],
    [
      "SELECT get((SELECT v FROM e WHERE n = 'temperature'), 0).v as temperature FROM 'my/topic'",
      { temperature: 22.5 },
    ],
    ["SELECT (SELECT VALUE x.v FROM e AS x WHERE x.v > 10) AS big FROM 'my/topic'", { big: [22.5, 135] }],
    ["SELECT (SELECT VALUE v FROM e WHERE v > 1000) AS none FROM 'my/topic'", { none: [] }],
    ["SELECT (SELECT * FROM missing) AS m FROM 'my/topic'", {}],
    ["SELECT (SELECT VALUE a FROM [1, 2, 3] a WHERE a > 1) AS xs FROM 'my/topic'", { xs: [2, 3] }],
    ["SELECT (SELECT VALUE limit FROM e WHERE v > limit) AS over FROM 'my/topic'", { over: [] }],
    ["SELECT EXISTS (SELECT * FROM e WHERE n = 'light') AS hasLight FROM 'my/topic'", { hasLight: true }],
    ["SELECT EXISTS (SELECT * FROM e WHERE n = 'sound') AS hasSound FROM 'my/topic'", { hasSound: false }],
    [
      "SELECT EXISTS (SELECT VALUE nope FROM e) AS a, (SELECT VALUE nope FROM e) AS b FROM 'my/topic'",
      { a: false, b: [] },
    ],
    [
      "SELECT EXISTS (SELECT nope FROM e) AS a, (SELECT nope FROM e) AS b FROM 'my/topic'",
      { a: true, b: [{}, {}, {}] },
    ],
    ["SELECT EXISTS (SELECT * FROM e[0]) AS a FROM 'my/topic'", { a: false }],
  ])('%s', (sql, expected) => {
    expect(run(sql, 'my/topic', msg)).toEqual(expected);
  });

  it('inner names fall back to the outer payload (correlation)', () => {
    const sql = "SELECT (SELECT VALUE r.v FROM e r WHERE r.v > limit) AS over FROM 'my/topic'";
    expect(run(sql, 'my/topic', { ...msg, limit: 100 })).toEqual({ over: [135] });
  });

  it('EXISTS in WHERE (operators reference example)', () => {
    const sql = "SELECT * FROM 'a/b' WHERE EXISTS (SELECT * FROM arr a WHERE a = 3)";
    expect(run(sql, 'a/b', { arr: [1, 2, 3] })).toEqual({ arr: [1, 2, 3] });
    expect(run(sql, 'a/b', { arr: [1, 2] })).toBe('no match');
    expect(run(sql, 'a/b', {})).toBe('no match');
  });
});
