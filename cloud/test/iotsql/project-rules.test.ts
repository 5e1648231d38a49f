import { type TelemetryBatch, validateTelemetryBatch } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { compileRule, compileTemplate, prepareMessage } from '../../src/core/iotsql/index.js';

/** The SQL the project ships (the rule file uses these statements). */
const INGEST = "SELECT *, topic(2) AS thingName, timestamp() AS receivedAt FROM 'pifleet/+/telemetry'";
const ARCHIVE = "SELECT * FROM 'pifleet/+/telemetry'";
/** Alert on any reading above 30 °C: a nested SELECT filters the readings, EXISTS gates the rule. */
const ALERT = `SELECT topic(2) AS thingName, bootId, seq,
    (SELECT r.sensor AS sensor, r.ts AS ts, r.metrics.temperature AS temperature
       FROM readings AS r WHERE r.metrics.temperature > 30) AS breaches,
    timestamp() AS detectedAt
  FROM 'pifleet/+/telemetry'
  WHERE EXISTS (SELECT * FROM readings AS r WHERE r.metrics.temperature > 30)`;
/** The same threshold without nested queries: it can only look at the first reading. */
const ALERT_FIRST_READING = `SELECT topic(2) AS thingName, get(readings, 0).sensor AS sensor,
    get(get(readings, 0), 'metrics').temperature AS temperature
  FROM 'pifleet/+/telemetry'
  WHERE get(get(readings, 0), 'metrics').temperature > 30`;
const PRESENCE = "SELECT *, topic(4) AS eventType, topic(5) AS thingName FROM '$aws/events/presence/+/+'";

function batch(temps: (number | string | undefined)[]): TelemetryBatch {
  const b = {
    v: 1,
    thingName: 'pi-01',
    bootId: '3f0c2a1e-0000-4000-8000-000000000001',
    seq: 7,
    sealedAt: 1_700_000_010_000,
    readings: temps.map((t, i) => ({
      sensor: i % 2 === 0 ? 'bme280' : 'ds18b20',
      ts: 1_700_000_000_000 + i * 1000,
      metrics: t === undefined ? { humidity: 40.2 } : { temperature: t as number, humidity: 40.2 },
    })),
  };
  return b as TelemetryBatch;
}

const telemetry = (b: unknown, thing = 'pi-01') => ({
  topic: `pifleet/${thing}/telemetry`,
  payload: new TextEncoder().encode(JSON.stringify(b)),
  clientId: thing,
  timestamp: 1_700_000_011_000,
});

describe('the shipped rules', () => {
  it('ingest: the whole batch plus the thing name from the topic and the receive time', () => {
    const b = batch([21.5, 22]);
    expect(validateTelemetryBatch(b).ok).toBe(true);
    const r = compileRule(INGEST).evaluate(telemetry({ ...b, thingName: 'spoofed' }));
    expect(r).toEqual({ matched: true, output: { ...b, thingName: 'pi-01', receivedAt: 1_700_000_011_000 } });
  });

  it('ingest and archive ignore other topics', () => {
    for (const sql of [INGEST, ARCHIVE, ALERT, ALERT_FIRST_READING]) {
      const rule = compileRule(sql);
      expect(rule.evaluate({ ...telemetry(batch([50])), topic: 'pifleet/pi-01/status' }).matched).toBe(false);
      expect(rule.evaluate({ ...telemetry(batch([50])), topic: 'pifleet/pi-01/telemetry/extra' }).matched).toBe(false);
      expect(rule.evaluate({ ...telemetry(batch([50])), topic: 'other/pi-01/telemetry' }).matched).toBe(false);
    }
  });

  it('archive: the raw batch, even a payload that is not JSON', () => {
    const b = batch([21.5]);
    expect(compileRule(ARCHIVE).evaluate(telemetry(b))).toEqual({ matched: true, output: b });
    const junk = compileRule(ARCHIVE).evaluate({
      topic: 'pifleet/pi-01/telemetry',
      payload: new Uint8Array([0xc3, 0x28]),
    });
    expect(junk.matched && junk.output).toBeInstanceOf(Uint8Array);
  });

  it.each<
    [string, (number | string | undefined)[], { sensor: string; ts: number; temperature: number | string }[] | null]
  >([
    ['no reading is hot', [21.5, 25, 30], null],
    ['the first reading is hot', [31.5, 20], [{ sensor: 'bme280', ts: 1_700_000_000_000, temperature: 31.5 }]],
    ['a later reading is hot', [20, 21, 35], [{ sensor: 'bme280', ts: 1_700_000_002_000, temperature: 35 }]],
    [
      'several readings are hot',
      [31, 20, 40.25],
      [
        { sensor: 'bme280', ts: 1_700_000_000_000, temperature: 31 },
        { sensor: 'bme280', ts: 1_700_000_002_000, temperature: 40.25 },
      ],
    ],
    [
      'readings without a temperature are skipped',
      [undefined, 33],
      [{ sensor: 'ds18b20', ts: 1_700_000_001_000, temperature: 33 }],
    ],
    [
      'a numeric string compares as a number (AWS type rules)',
      ['31'],
      [{ sensor: 'bme280', ts: 1_700_000_000_000, temperature: '31' }],
    ],
    ['exactly 30 is not above 30', [30], null],
    ['an empty batch never alerts', [], null],
  ])('alert: %s', (_name, temps, breaches) => {
    const r = compileRule(ALERT).evaluate(telemetry(batch(temps)));
    if (breaches === null) {
      expect(r).toEqual({ matched: false });
    } else {
      expect(r).toEqual({
        matched: true,
        output: { thingName: 'pi-01', bootId: batch([]).bootId, seq: 7, breaches, detectedAt: 1_700_000_011_000 },
      });
    }
  });

  it('alert republish topic from a template', () => {
    const msg = prepareMessage(telemetry(batch([40]), 'pi-42'));
    expect(compileRule(ALERT).evaluate(msg).matched).toBe(true);
    expect(compileTemplate('pifleet/${topic(2)}/alerts').render(msg)).toBe('pifleet/pi-42/alerts');
  });

  it('the first-reading variant sees only readings[0]', () => {
    const rule = compileRule(ALERT_FIRST_READING);
    expect(rule.evaluate(telemetry(batch([31.5, 20])))).toEqual({
      matched: true,
      output: { thingName: 'pi-01', sensor: 'bme280', temperature: 31.5 },
    });
    expect(rule.evaluate(telemetry(batch([20, 35]))).matched).toBe(false);
    expect(rule.evaluate(telemetry(batch([]))).matched).toBe(false);
    expect(rule.evaluate(telemetry({ readings: 'not an array' })).matched).toBe(false);
  });

  it.each([
    [
      'connected',
      {
        clientId: 'pi-01',
        timestamp: 1_700_000_000_000,
        eventType: 'connected',
        sessionIdentifier: 's-1',
        principalIdentifier: 'abc',
        ipAddress: '127.0.0.1',
        versionNumber: 3,
      },
    ],
    [
      'disconnected',
      {
        clientId: 'pi-01',
        timestamp: 1_700_000_100_000,
        eventType: 'disconnected',
        sessionIdentifier: 's-1',
        principalIdentifier: 'abc',
        clientInitiatedDisconnect: false,
        disconnectReason: 'MQTT_KEEP_ALIVE_TIMEOUT',
        versionNumber: 4,
      },
    ],
  ])('presence: %s events pass through with the event type and client id from the topic', (eventType, event) => {
    const r = compileRule(PRESENCE).evaluate({
      topic: `$aws/events/presence/${eventType}/pi-01`,
      payload: JSON.stringify(event),
    });
    expect(r).toEqual({ matched: true, output: { ...event, eventType, thingName: 'pi-01' } });
  });

  it('presence ignores subscription events and application topics', () => {
    const rule = compileRule(PRESENCE);
    expect(rule.evaluate({ topic: '$aws/events/subscriptions/subscribed/pi-01', payload: '{}' }).matched).toBe(false);
    expect(rule.evaluate({ topic: 'aws/events/presence/connected/pi-01', payload: '{}' }).matched).toBe(false);
  });
});
