import type { TelemetryBatch } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { createFleetState, shadowStatus } from '../../src/console/fleet-state.js';

function batch(
  thingName: string,
  readings: Array<[number, Record<string, number | boolean>]>,
  seq = 1,
): TelemetryBatch {
  return {
    v: 1,
    thingName,
    bootId: 'boot-0001',
    seq,
    sealedAt: readings[readings.length - 1]?.[0] ?? 0,
    readings: readings.map(([ts, metrics]) => ({ sensor: 'bme280', ts, metrics })),
  };
}

describe('shadowStatus', () => {
  it.each([
    ['no desired', { reported: { a: 1 } }, true, []],
    [
      'desired equals reported',
      { desired: { outputs: { relay: true } }, reported: { outputs: { relay: true } } },
      true,
      [],
    ],
    [
      'desired differs',
      { desired: { outputs: { relay: true } }, reported: { outputs: { relay: false } } },
      false,
      ['outputs'],
    ],
    ['desired key not reported', { desired: { logLevel: 'debug' }, reported: {} }, false, ['logLevel']],
    ['two keys pending', { desired: { logLevel: 'debug', batch: { maxReadings: 5 } } }, false, ['batch', 'logLevel']],
    ['state missing', undefined, true, []],
  ])('%s', (_name, state, inSync, deltaKeys) => {
    const status = shadowStatus({ version: 3, timestamp: 100, state: state as never });
    expect(status).toEqual({ version: 3, timestamp: 100, inSync, deltaKeys });
  });
});

describe('shadowStatus with keys that name the object model', () => {
  it.each([
    [
      'a desired __proto__ the device has not reported',
      '{"desired":{"__proto__":{"x":1}},"reported":{}}',
      false,
      ['__proto__'],
    ],
    [
      'a desired __proto__ the device reported',
      '{"desired":{"__proto__":{"x":1}},"reported":{"__proto__":{"x":1}}}',
      true,
      [],
    ],
    ['a desired constructor not reported', '{"desired":{"constructor":1},"reported":{}}', false, ['constructor']],
  ])('%s', (_name, state, inSync, deltaKeys) => {
    const status = shadowStatus({ version: 1, timestamp: 1, state: JSON.parse(state) as never });
    expect(status).toEqual({ version: 1, inSync, deltaKeys, timestamp: 1 });
    expect(Object.keys(Object.prototype)).toEqual([]);
  });
});

describe('createFleetState', () => {
  it('tracks presence, last seen and disconnect reason', () => {
    const fleet = createFleetState();
    fleet.presence('pi-01', true, 1_000);
    expect(fleet.summary('pi-01')).toMatchObject({ connected: true, presenceAt: 1_000, lastSeen: 1_000 });
    fleet.presence('pi-01', false, 2_000, 'CONNECTION_LOST');
    expect(fleet.summary('pi-01')).toMatchObject({
      connected: false,
      lastSeen: 2_000,
      disconnectReason: 'CONNECTION_LOST',
    });
    fleet.presence('pi-01', true, 3_000);
    expect(fleet.summary('pi-01')?.disconnectReason).toBeNull();
  });

  it('knows the MQTT version of the connected session, and forgets it on disconnect', () => {
    const fleet = createFleetState();
    expect(fleet.summary('pi-01')).toBeUndefined();
    fleet.ensure('pi-01');
    expect(fleet.summary('pi-01')?.protocol).toBeNull();
    fleet.presence('pi-01', true, 1_000, undefined, '5');
    expect(fleet.summary('pi-01')?.protocol).toBe('5');
    fleet.presence('pi-01', false, 2_000, 'CONNECTION_LOST', '5');
    expect(fleet.summary('pi-01')?.protocol).toBeNull();
    fleet.presence('pi-01', true, 3_000, undefined, '3.1.1');
    expect(fleet.summary('pi-01')?.protocol).toBe('3.1.1');
    fleet.presence('pi-01', true, 4_000);
    expect(fleet.summary('pi-01')?.protocol).toBeNull();
  });

  it('keeps the newest value of each metric, even when a resent older batch arrives later', () => {
    const fleet = createFleetState();
    fleet.telemetry('pi-01', batch('pi-01', [[2_000, { temperature: 22 }]]), 2_100);
    fleet.telemetry('pi-01', batch('pi-01', [[1_000, { temperature: 18, humidity: 40 }]], 2), 2_200);
    const last = fleet.summary('pi-01')?.lastTelemetry;
    expect(last?.at).toBe(2_000);
    expect(last?.metrics).toEqual({ 'bme280.temperature': 22 });
    expect(fleet.history('pi-01', 2_200).map((r) => r.ts)).toEqual([1_000, 2_000]);
    expect(fleet.summary('pi-01')?.lastSeen).toBe(2_200);
  });

  it('bounds history by count and by age', () => {
    const fleet = createFleetState({ historyPerThing: 5, historyWindowMs: 10_000 });
    const readings: Array<[number, Record<string, number>]> = [];
    for (let i = 0; i < 8; i++) readings.push([i * 1_000, { temperature: i }]);
    fleet.telemetry('pi-01', batch('pi-01', readings), 8_000);
    expect(fleet.history('pi-01', 8_000).map((r) => r.ts)).toEqual([3_000, 4_000, 5_000, 6_000, 7_000]);
    expect(fleet.history('pi-01', 15_500).map((r) => r.ts)).toEqual([6_000, 7_000]);
  });

  it('keeps the last alerts only, but counts all of them', () => {
    const fleet = createFleetState({ alertsPerThing: 2 });
    for (let i = 0; i < 5; i++) fleet.alert('pi-01', { n: i }, 100 + i);
    expect(fleet.alerts('pi-01').map((a) => a.alert)).toEqual([{ n: 3 }, { n: 4 }]);
    expect(fleet.summary('pi-01')?.alerts).toEqual({ count: 5, lastAt: 104 });
  });

  it('ignores a shadow document older than the one it has', () => {
    const fleet = createFleetState();
    fleet.shadow('pi-01', { version: 5, timestamp: 10, state: { desired: { a: 1 } } }, 0);
    fleet.shadow('pi-01', { version: 4, timestamp: 9, state: {} }, 0);
    expect(fleet.summary('pi-01')?.shadow).toMatchObject({ version: 5, inSync: false, deltaKeys: ['a'] });
    fleet.shadowDeleted('pi-01');
    expect(fleet.summary('pi-01')?.shadow).toBeNull();
  });

  it('reports each changed thing once per takeDirty and follows the registry list', () => {
    const fleet = createFleetState();
    fleet.syncThings(['a', 'b', 'c']);
    expect(
      fleet
        .takeDirty()
        .map((s) => s.thingName)
        .sort(),
    ).toEqual(['a', 'b', 'c']);
    fleet.presence('b', true, 1);
    fleet.presence('b', false, 2);
    expect(fleet.takeDirty().map((s) => s.thingName)).toEqual(['b']);
    expect(fleet.takeDirty()).toEqual([]);
    fleet.syncThings(['b', 'd']);
    expect(fleet.list().map((s) => s.thingName)).toEqual(['b', 'd']);
    expect(fleet.has('a')).toBe(false);
    expect(fleet.summary('b')?.presenceAt).toBe(2);
  });
});
