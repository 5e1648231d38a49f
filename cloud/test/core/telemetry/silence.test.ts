import { describe, expect, it } from 'vitest';
import { lastReadingTime, silenceFromConnectivity, silenceFromTelemetry } from '../../../src/core/telemetry/silence.js';
import type { ConnectivityRecord } from '../../../src/ports/telemetry-store.js';

const NOW = 1_700_000_000_000;
const MIN = 60_000;
const THRESHOLD = 15 * MIN;

const record = (connected: boolean, minutesAgo: number): ConnectivityRecord => ({
  thingName: 'pi-01',
  connected,
  clientId: 'pi-01',
  timestamp: NOW - minutesAgo * MIN,
  eventType: connected ? 'connected' : 'disconnected',
});

describe('silence of a thing', () => {
  it.each([
    // label, connected, event minutes ago, newest reading minutes ago (undefined: none; null: not asked), verdict
    ['disconnected for longer than the threshold', false, 16, null, { reason: 'disconnected', forMin: 16 }],
    ['disconnected exactly the threshold ago (not yet "longer than")', false, 15, null, 'live'],
    ['disconnected a minute ago', false, 1, null, 'live'],
    ['disconnected, with a clock ahead of ours', false, -5, null, 'live'],
    ['connected for less than the threshold: live without asking for readings', true, 14, null, 'live'],
    ['connected exactly the threshold ago: live without asking', true, 15, null, 'live'],
    ['connected long ago: its readings decide', true, 16, null, 'needs-telemetry'],
  ] as const)('from the record alone: %s', (_label, connected, ago, _reading, expected) => {
    const verdict = silenceFromConnectivity(record(connected, ago), NOW, THRESHOLD);
    if (expected === 'live') expect(verdict).toEqual({ silent: false });
    else if (expected === 'needs-telemetry') expect(verdict).toBe('needs-telemetry');
    else {
      expect(verdict).toEqual({
        silent: true,
        reason: expected.reason,
        since: NOW - expected.forMin * MIN,
        silentForMs: expected.forMin * MIN,
      });
    }
  });

  it.each([
    ['a hung agent: connected an hour, newest reading 20 minutes old', 60, 20, { reason: 'no-telemetry', forMin: 20 }],
    ['connected an hour, newest reading 2 minutes old', 60, 2, 'live'],
    ['connected an hour, newest reading exactly the threshold old', 60, 15, 'live'],
    ['connected an hour and never stored a reading', 60, undefined, { reason: 'no-telemetry', forMin: 60 }],
    // Back from a long outage: the connect starts the clock, not the last reading before the outage.
    ['reconnected 5 minutes ago after a day away', 5, 24 * 60, 'live'],
    [
      'reconnected 20 minutes ago after a day away, still nothing new',
      20,
      24 * 60,
      { reason: 'no-telemetry', forMin: 20 },
    ],
    ['a reading stamped in the future (agent clock ahead)', 60, -10, 'live'],
  ] as const)('connected, from its newest reading: %s', (_label, connectedAgo, readingAgo, expected) => {
    const lastReadingAt = readingAgo === undefined ? undefined : NOW - readingAgo * MIN;
    const verdict = silenceFromTelemetry(record(true, connectedAgo), lastReadingAt, NOW, THRESHOLD);
    if (expected === 'live') expect(verdict).toEqual({ silent: false });
    else {
      expect(verdict).toEqual({
        silent: true,
        reason: expected.reason,
        since: NOW - expected.forMin * MIN,
        silentForMs: expected.forMin * MIN,
      });
    }
  });

  it('a disconnected thing is judged by its disconnect, whatever its readings', () => {
    expect(silenceFromTelemetry(record(false, 30), NOW, NOW, THRESHOLD)).toMatchObject({
      silent: true,
      reason: 'disconnected',
      silentForMs: 30 * MIN,
    });
  });

  it.each([
    ['no latest values', [], undefined],
    [
      'the newest of every sensor and metric',
      [
        { sensor: 'bme280', metric: 'humidity', value: 40, ts: NOW - 3000 },
        { sensor: 'bme280', metric: 'temperature', value: 21, ts: NOW - 1000 },
        { sensor: 'door', metric: 'open', value: true, ts: NOW - 9000 },
      ],
      NOW - 1000,
    ],
  ] as const)('last reading time: %s', (_label, latest, expected) => {
    expect(lastReadingTime(latest)).toBe(expected);
  });
});
