import { afterEach, describe, expect, it } from 'vitest';
import {
  decodeTelemetryBatch,
  desiredStateJsonSchema,
  rejectionsToReported,
  splitDesired,
  validateDesiredState,
  validateReportedState,
  validateTelemetryBatch,
} from '../src/index.js';

/**
 * Keys that name parts of JavaScript's object model, in pifleet's own formats (desired state,
 * reported state, telemetry). They are refused with a reason wherever an id or name is expected,
 * never silently dropped, never crash a validator, and never reach a prototype.
 */

const parse = (text: string): unknown => JSON.parse(text);

afterEach(() => {
  expect(Object.keys(Object.prototype)).toEqual([]);
});

describe('desired state with reserved keys', () => {
  it.each([
    ['{"outputs":{"__proto__":true}}', 'outputs.__proto__'],
    ['{"outputs":{"__proto__":{"x":1}}}', 'outputs.__proto__'],
    ['{"sampling":{"__proto__":1000}}', 'sampling.__proto__'],
    ['{"outputs":{"constructor":true}}', 'outputs.constructor'],
    ['{"sampling":{"prototype":1000}}', 'sampling.prototype'],
    ['{"__proto__":{"x":1}}', '$'],
    ['{"batch":{"__proto__":{"maxReadings":5}}}', 'batch'],
  ])('validateDesiredState(%s) refuses the key with its path', (text, path) => {
    const r = validateDesiredState(parse(text));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.issues.map((i) => i.path)).toContain(path);
  });

  it('says why: the id is reserved', () => {
    const r = validateDesiredState(parse('{"outputs":{"__proto__":true,"relay":"on"}}'));
    expect(r).toEqual({
      ok: false,
      issues: [{ path: 'outputs.__proto__', message: 'output id must not be __proto__, constructor or prototype' }],
    });
  });

  it('splitDesired rejects reserved ids and batch fields with a reason, keeps the good keys, and does not crash', () => {
    const { accepted, rejected } = splitDesired(
      parse(
        '{"outputs":{"__proto__":true,"constructor":false,"relay":true},' +
          '"sampling":{"prototype":1000,"bme280":2000},' +
          '"batch":{"constructor":1,"__proto__":2,"toString":3,"maxReadings":50},' +
          '"__proto__":{"x":1}}',
      ),
    );
    expect(accepted).toEqual({ outputs: { relay: true }, sampling: { bme280: 2000 }, batch: { maxReadings: 50 } });
    expect(Object.getPrototypeOf(accepted.outputs)).toBe(Object.prototype);
    expect(rejected.map((r) => r.path).sort()).toEqual(
      [
        'outputs.__proto__',
        'outputs.constructor',
        'sampling.prototype',
        'batch.constructor',
        'batch.__proto__',
        'batch.toString',
        '__proto__',
      ].sort(),
    );
    const reasons = Object.fromEntries(rejected.map((r) => [r.path, r.reason]));
    expect(reasons['outputs.__proto__']).toBe(
      'invalid id "__proto__": output id must not be __proto__, constructor or prototype',
    );
    expect(reasons['batch.constructor']).toMatch(/^unknown batch setting/);

    // The reported map keeps every rejection, `__proto__` included, as an own key.
    const reported = rejectionsToReported(rejected);
    expect(Object.getPrototypeOf(reported)).toBe(Object.prototype);
    expect(Object.keys(reported ?? {})).toContain('__proto__');
    const wire = JSON.parse(JSON.stringify(reported)) as object;
    expect(Object.getOwnPropertyDescriptor(wire, '__proto__')?.value).toEqual({
      value: { x: 1 },
      reason: 'unknown desired key; expected sampling, batch, outputs or logLevel',
    });
  });

  it('the JSON Schema for clients still describes the records', () => {
    const schema = desiredStateJsonSchema() as { properties: Record<string, { type?: string }> };
    expect(schema.properties.outputs?.type).toBe('object');
    expect(schema.properties.sampling?.type).toBe('object');
  });
});

describe('reported state with reserved keys', () => {
  it('refuses a __proto__ sensor instead of dropping it', () => {
    const r = validateReportedState(
      parse(
        '{"agent":{"version":"1","bootId":"b-1234567","startedAt":1,"uptimeS":1},' +
          '"sensors":{"__proto__":{"driver":"x","healthy":true,"intervalMs":1}},"outputs":{},"sampling":{},' +
          '"batch":{"maxReadings":1,"maxBytes":1,"maxAgeMs":1},"logLevel":"info",' +
          '"outbox":{"depth":0,"bytes":0,"dropped":0,"droppedReadings":0,"sent":0}}',
      ),
    );
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues.map((i) => i.path)).toEqual(['sensors.__proto__']);
  });
});

describe('telemetry with reserved keys and deep nesting', () => {
  const batch = (metrics: string, sensor = 'bme280') =>
    `{"v":1,"thingName":"pi-01","bootId":"3f0c2b1e-8a44","seq":1,"sealedAt":1,"readings":[{"sensor":"${sensor}","ts":1,"metrics":${metrics}}]}`;

  it.each([
    ['a __proto__ metric', batch('{"t":1,"__proto__":5}'), 'readings[0].metrics.__proto__'],
    ['a __proto__ metric holding an object', batch('{"t":1,"__proto__":{"x":1}}'), 'readings[0].metrics.__proto__'],
    ['a constructor metric', batch('{"constructor":1}'), 'readings[0].metrics.constructor'],
    ['a __proto__ sensor id', batch('{"t":1}', '__proto__'), 'readings[0].sensor'],
    ['a reading with a __proto__ key', batch('{"t":1},"__proto__":{"x":1}'), 'readings[0]'],
    ['a batch with a __proto__ key', batch('{"t":1}').replace(/}$/, ',"__proto__":{"x":1}}'), '$'],
  ])('refuses %s with its path', (_name, text, path) => {
    const r = decodeTelemetryBatch(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues.map((i) => i.path)).toContain(path);
  });

  it('still accepts an ordinary batch after all of the above', () => {
    expect(validateTelemetryBatch(parse(batch('{"t":1}'))).ok).toBe(true);
  });

  it('refuses a 10,000-level payload as too deep before parsing it', () => {
    const deep = `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`;
    expect(decodeTelemetryBatch(batch(deep))).toEqual({
      ok: false,
      issues: [{ path: '$', message: 'JSON is nested more than 64 levels deep' }],
    });
  });
});
