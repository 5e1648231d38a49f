import type { Reading, TelemetryBatch } from '@pifleet/protocol';
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

/**
 * The console before its history was kept compact: every reading an object, the summary's metrics
 * copied per batch. The compact fleet state must show exactly what this showed.
 */
function eagerModel(windowMs: number, perThing: number) {
  let history: Reading[] = [];
  let last: { at: number; metrics: Record<string, number | boolean> } | null = null;
  const prune = (now: number) => {
    let drop = 0;
    while (drop < history.length && (history[drop] as Reading).ts < now - windowMs) drop++;
    drop = Math.max(drop, history.length - perThing);
    history = history.slice(drop);
  };
  return {
    telemetry(b: TelemetryBatch, at: number) {
      const metrics = { ...(last?.metrics ?? {}) };
      let newest = last?.at ?? 0;
      const ordered = [...b.readings].sort((x, y) => x.ts - y.ts);
      for (const r of ordered) {
        if (r.ts >= newest) {
          newest = r.ts;
          for (const [name, value] of Object.entries(r.metrics)) metrics[`${r.sensor}.${name}`] = value;
        }
      }
      const tail = history[history.length - 1];
      history.push(...ordered);
      if (tail !== undefined && (ordered[0]?.ts ?? Number.POSITIVE_INFINITY) < tail.ts)
        history.sort((x, y) => x.ts - y.ts);
      prune(at);
      last = { at: newest, metrics };
    },
    history(now: number) {
      prune(now);
      return history;
    },
    last: () => last,
  };
}

describe('the compact history shows what the eager one did', () => {
  it.each([1, 2, 3, 4])('random batches, late resends and window pruning (seed %i)', (seed) => {
    let a = seed * 7919;
    const rand = () => {
      a = (a * 1_103_515_245 + 12_345) % 2_147_483_648;
      return a / 2_147_483_648;
    };
    const windowMs = 60_000;
    const fleet = createFleetState({ historyWindowMs: windowMs, historyPerThing: 50 });
    const eager = eagerModel(windowMs, 50);
    let now = 1_700_000_000_000;
    for (let b = 0; b < 200; b++) {
      now += Math.floor(rand() * 4_000);
      // Mostly fresh batches; one in six resent from up to two minutes back.
      const start = rand() < 1 / 6 ? now - Math.floor(rand() * 120_000) : now - 5_000;
      const readings: Array<[number, Record<string, number | boolean>]> = [];
      for (let r = 0; r < 1 + Math.floor(rand() * 12); r++) {
        const metrics: Record<string, number | boolean> = {};
        for (let m = 0; m < 1 + Math.floor(rand() * 3); m++) {
          metrics[['temperature', 'humidity', 'open', 'lux'][Math.floor(rand() * 4)] as string] =
            rand() < 0.25 ? rand() < 0.5 : Math.round(rand() * 1e4) / 100;
        }
        readings.push([start + Math.floor(rand() * 5_000), metrics]);
      }
      const input = batch('pi-01', readings, b + 1);
      input.readings.forEach((r, i) => {
        (r as { sensor: string }).sensor = i % 3 === 0 ? 'door' : 'bme280';
      });
      fleet.telemetry('pi-01', input, now);
      eager.telemetry(input, now);
      expect(JSON.stringify(fleet.summary('pi-01')?.lastTelemetry)).toBe(JSON.stringify(eager.last()));
      if (b % 10 === 0) expect(JSON.stringify(fleet.history('pi-01', now))).toBe(JSON.stringify(eager.history(now)));
    }
    expect(JSON.stringify(fleet.history('pi-01', now + 30_000))).toBe(JSON.stringify(eager.history(now + 30_000)));
  });

  it('builds a summary only when asked, and a new object after each change', () => {
    const fleet = createFleetState();
    fleet.telemetry('pi-01', batch('pi-01', [[1_000, { temperature: 20 }]]), 1_000);
    const first = fleet.summary('pi-01');
    expect(fleet.summary('pi-01')).toBe(first);
    fleet.telemetry('pi-01', batch('pi-01', [[2_000, { temperature: 21 }]], 2), 2_000);
    const second = fleet.summary('pi-01');
    expect(second).not.toBe(first);
    // A summary handed out earlier does not change under its holder.
    expect(first?.lastTelemetry?.metrics).toEqual({ 'bme280.temperature': 20 });
    expect(second?.lastTelemetry).toEqual({ at: 2_000, metrics: { 'bme280.temperature': 21 } });
  });

  it('takes the changed summaries of the followed things only, and forgets the rest', () => {
    const fleet = createFleetState();
    fleet.syncThings(['a', 'b', 'c']);
    fleet.takeDirty();
    fleet.presence('a', true, 1);
    fleet.presence('b', true, 1);
    expect(fleet.takeDirty(new Set(['b', 'c'])).map((s) => s.thingName)).toEqual(['b']);
    expect(fleet.takeDirty()).toEqual([]);
    fleet.presence('a', false, 2);
    expect(fleet.takeDirty(new Set())).toEqual([]);
    expect(fleet.takeDirty()).toEqual([]);
  });

  it('bounds the summary of a device that keeps inventing metric names', () => {
    const fleet = createFleetState({ lastMetricsPerThing: 8 });
    for (let i = 0; i < 100; i++) fleet.telemetry('pi-01', batch('pi-01', [[i, { [`m${i}`]: i }]], i + 1), i);
    const metrics = fleet.summary('pi-01')?.lastTelemetry?.metrics ?? {};
    expect(Object.keys(metrics).length).toBeLessThanOrEqual(8);
    expect(metrics['bme280.m99']).toBe(99);
  });

  it('keeps a reading with more metrics than the history holds out of the history, not out of the summary', () => {
    const fleet = createFleetState({ historyValuesPerThing: 4 });
    const wide = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`m${i}`, i]));
    fleet.telemetry(
      'pi-01',
      batch('pi-01', [
        [1, { t: 1 }],
        [2, wide],
      ]),
      2,
    );
    expect(fleet.history('pi-01', 2)).toEqual([{ sensor: 'bme280', ts: 1, metrics: { t: 1 } }]);
    expect(fleet.summary('pi-01')?.lastTelemetry?.metrics).toMatchObject({ 'bme280.t': 1, 'bme280.m5': 5 });
  });
});
