import { type Reading, TELEMETRY_V2, toTelemetryBatchV2 } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { compileRule } from '../../src/core/iotsql/index.js';
import { RULES, TEMPERATURE_ALERT_CELSIUS } from '../../src/rules/definitions.js';
import { batchOf } from '../../src/testing/telemetry-store-suite.js';

/**
 * The temperature alert rule against telemetry batch v2 (per-sensor groups, columns of values) and
 * v1, in the local IoT SQL engine. The rule keeps to what AWS IoT SQL documents: a nested SELECT
 * over an array of objects with a WHERE on their fields, get() and isUndefined(); no function over
 * an array's elements, which AWS does not have.
 */

const alertRule = () => {
  const def = RULES.find((r) => r.name === 'pifleet_temperature_alert');
  if (def === undefined) throw new Error('no alert rule');
  return compileRule(def.sql);
};

const identity = { thingName: 'pi-01', bootId: 'boot-0000-alert', seq: 4, sealedAt: 1_700_000_010_000 };
const message = (payload: unknown) => ({
  topic: 'pifleet/pi-01/telemetry',
  payload: JSON.stringify(payload),
  timestamp: 1_700_000_999_000,
});
const v2 = (readings: Reading[]) => toTelemetryBatchV2({ ...identity, readings });

const T0 = 1_700_000_000_000;
const hot = TEMPERATURE_ALERT_CELSIUS + 1.5;

interface HotGroup {
  sensor: string;
  temperature: number;
  dt: number[];
  temperatures: number[];
}

describe('temperature alert rule, telemetry batch v2', () => {
  it.each([
    ['no reading over the threshold', [{ sensor: 'env', ts: T0, metrics: { temperature: 20 } }], []],
    ['exactly the threshold', [{ sensor: 'env', ts: T0, metrics: { temperature: TEMPERATURE_ALERT_CELSIUS } }], []],
    ['groups without temperature', [{ sensor: 'door', ts: T0, metrics: { open: true, count: 99 } }], []],
    ['a boolean temperature (no peak)', [{ sensor: 'x', ts: T0, metrics: { temperature: true } }], []],
    [
      'a hot humidity is not a hot temperature',
      [{ sensor: 'env', ts: T0, metrics: { temperature: 1, humidity: 90 } }],
      [],
    ],
    [
      'one hot reading among cool ones of its group',
      [
        { sensor: 'env', ts: T0, metrics: { temperature: 20 } },
        { sensor: 'env', ts: T0 + 1000, metrics: { temperature: hot } },
        { sensor: 'env', ts: T0 + 2000, metrics: { temperature: 21 } },
      ],
      [{ sensor: 'env', temperature: hot, dt: [0, 1000, 2000], temperatures: [20, hot, 21] }],
    ],
    [
      'hot groups behind other sensors, one per sensor and metric set',
      [
        { sensor: 'door', ts: T0, metrics: { open: true } },
        { sensor: 'a', ts: T0 + 1, metrics: { temperature: hot } },
        { sensor: 'b', ts: T0 + 2, metrics: { temperature: 0 } },
        { sensor: 'a', ts: T0 + 3, metrics: { temperature: hot + 10, humidity: 5 } },
      ],
      [
        { sensor: 'a', temperature: hot, dt: [1], temperatures: [hot] },
        { sensor: 'a', temperature: hot + 10, dt: [3], temperatures: [hot + 10] },
      ],
    ],
  ] as const)('with %s', (_label, readings, groups) => {
    const batch = v2(readings.map((r) => ({ ...r, metrics: { ...r.metrics } })));
    expect(batch.v).toBe(TELEMETRY_V2);
    const result = alertRule().evaluate(message(batch));
    expect(result.matched).toBe(groups.length > 0);
    if (!result.matched) return;
    const out = result.output as unknown as { sensors: HotGroup[]; readings?: unknown; t0: number };
    expect(out).toMatchObject({
      thingName: 'pi-01',
      bootId: identity.bootId,
      seq: 4,
      thresholdCelsius: TEMPERATURE_ALERT_CELSIUS,
      raisedAt: 1_700_000_999_000,
      t0: T0,
    });
    expect(out.sensors).toEqual(groups);
    // A v2 batch has no readings array: the alert has no readings key, or an empty one.
    expect(out.readings ?? []).toEqual([]);
  });

  it('a v1 batch alerts as before: the hot readings, no groups', () => {
    const result = alertRule().evaluate(
      message(
        batchOf('pi-01', 4, [
          { sensor: 'env', ts: 1, metrics: { temperature: 20 } },
          { sensor: 'env', ts: 2, metrics: { temperature: hot } },
        ]),
      ),
    );
    expect(result.matched).toBe(true);
    if (!result.matched) return;
    const out = result.output as unknown as { readings: unknown; sensors?: unknown; t0?: unknown };
    expect(out.readings).toEqual([{ sensor: 'env', ts: 2, temperature: hot }]);
    expect(out.sensors ?? []).toEqual([]);
    expect(out.t0).toBeUndefined();
  });

  it.each([
    ['a payload that is not JSON', 'not json'],
    ['an object without readings or sensors', '{"v":2}'],
    ['sensors that are not an array', '{"v":2,"sensors":{"peak":{"temperature":99}}}'],
    ['groups whose peak is null', '{"v":2,"sensors":[{"sensor":"x","peak":{"temperature":null}}]}'],
    ['groups whose peak is an object', '{"v":2,"sensors":[{"sensor":"x","peak":{"temperature":{"v":99}}}]}'],
  ])('does not alert on %s', (_label, payload) => {
    const result = alertRule().evaluate({ topic: 'pifleet/pi-01/telemetry', payload, timestamp: 1 });
    expect(result.matched).toBe(false);
  });
});
