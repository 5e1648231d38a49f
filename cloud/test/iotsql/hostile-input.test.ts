import { MAX_JSON_DEPTH } from '@pifleet/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { compileRule, compileTemplate, decodePayload, serializeOutput } from '../../src/core/iotsql/index.js';
import { RULES } from '../../src/rules/definitions.js';
import { TOPIC } from './helpers.js';

/**
 * Payloads a device controls, at their worst: keys that name the object model, and nesting far
 * past anything a real payload has. Every rule evaluates without throwing, and nothing reaches
 * a prototype.
 */

afterEach(() => {
  expect(Object.keys(Object.prototype)).toEqual([]);
});

const nested = (levels: number) => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;
const arrays = (levels: number) => `${'['.repeat(levels)}1${']'.repeat(levels)}`;

describe('payloads nested deeper than the bound are opaque bytes', () => {
  it('a payload at the bound is JSON; one level more is not', () => {
    expect(decodePayload(nested(MAX_JSON_DEPTH)).json).toBe(true);
    expect(decodePayload(nested(MAX_JSON_DEPTH + 1))).toEqual({ json: false });
  });

  it.each([
    ['10,000 nested objects', `{"readings":[${nested(10_000)}],"x":1}`],
    ['10,000 nested arrays', `{"readings":${arrays(10_000)},"x":1}`],
  ])('%s: every project rule and comparison evaluates without throwing', (_name, payload) => {
    for (const def of RULES) {
      const rule = compileRule(def.sql);
      const topic = def.sql.includes('presence') ? '$aws/events/presence/connected/pi-01' : TOPIC;
      const result = rule.evaluate({ topic, payload });
      if (result.matched) expect(() => serializeOutput(result.output)).not.toThrow();
    }
    // SELECT * passes the payload on unchanged, as bytes.
    const star = compileRule(`SELECT * FROM '${TOPIC}'`).evaluate({ topic: TOPIC, payload });
    expect(star).toMatchObject({ matched: true });
    expect(Buffer.from(serializeOutput((star as { output: Uint8Array }).output)).toString()).toBe(payload);
    // Operators that recurse into values see Undefined, not a 10,000-level value.
    const eq = compileRule(`SELECT VALUE readings = readings FROM '${TOPIC}'`).evaluate({ topic: TOPIC, payload });
    expect(eq).toEqual({ matched: true, output: undefined });
    expect(compileTemplate('t/${readings}').render({ topic: TOPIC, payload })).toBe('t/');
  });

  it("decode(…, 'base64') of deep JSON gives the text, not a value", () => {
    const deep = nested(10_000);
    const b64 = Buffer.from(deep).toString('base64');
    const out = compileRule(`SELECT VALUE decode(b, 'base64') FROM '${TOPIC}'`).evaluate({
      topic: TOPIC,
      payload: JSON.stringify({ b: b64 }),
    });
    expect(out).toEqual({ matched: true, output: deep });
  });
});

describe('keys that name the object model are ordinary keys', () => {
  it('SELECT *, fields and nested SELECTs keep __proto__, constructor and prototype as own keys', () => {
    const payload =
      '{"__proto__":{"x":1},"constructor":{"y":2},"prototype":3,' +
      '"readings":[{"sensor":"s","__proto__":{"z":1},"metrics":{"temperature":99}}]}';
    const star = compileRule(`SELECT * FROM '${TOPIC}'`).evaluate({ topic: TOPIC, payload });
    expect(JSON.stringify((star as { output: unknown }).output)).toBe(JSON.stringify(JSON.parse(payload)));

    const picked = compileRule(
      `SELECT __proto__.x AS a, get(*, 'constructor') AS b, (SELECT __proto__ FROM readings) AS c FROM '${TOPIC}'`,
    ).evaluate({ topic: TOPIC, payload });
    expect(JSON.stringify((picked as { output: unknown }).output)).toBe(
      '{"a":1,"b":{"y":2},"c":[{"__proto__":{"z":1}}]}',
    );
  });

  it('a missing __proto__ or constructor field is Undefined, never a member of Object.prototype', () => {
    const out = compileRule(
      `SELECT VALUE [a.__proto__, a.constructor, get(a, 'toString'), isUndefined(a.constructor)] FROM '${TOPIC}'`,
    ).evaluate({ topic: TOPIC, payload: '{"a":{}}' });
    expect(out).toEqual({ matched: true, output: [true] });
  });
});
