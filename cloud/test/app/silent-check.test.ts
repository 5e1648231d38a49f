import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExposition } from '../adapters/prometheus-text.js';
import { type RunningCore, removeDir, startCore, tempDir } from '../http/harness.js';
import { http } from '../http/plain-request.js';

/**
 * The local core runs the silent-devices check on a schedule, as the stack's EventBridge rule runs
 * its Lambda, and its count is `pifleet_silent_devices` on `GET /metrics`: a thing disconnected for
 * longer than the threshold is silent, one that connected just now is not.
 */

let dir: string;
let run: RunningCore;

const THRESHOLD_MS = 60_000;

async function silentGauge(): Promise<number | undefined> {
  const reply = await http(run.info.http, 'GET', '/metrics', {});
  expect(reply.status).toBe(200);
  return parseExposition(reply.text).value('pifleet_silent_devices');
}

beforeAll(async () => {
  dir = tempDir('silent-check');
  run = await startCore(dir, { silentCheck: { everyMs: 50, thresholdMs: THRESHOLD_MS } });
});
afterAll(async () => {
  await run?.stop();
  if (dir) removeDir(dir);
});

describe('the local silent-devices check', () => {
  it('counts the things quiet past the threshold into pifleet_silent_devices, on its schedule', async () => {
    const now = Date.now();
    const store = run.core.services.telemetry;
    const presence = (thingName: string, connected: boolean, timestamp: number) =>
      store.putConnectivity({
        thingName,
        connected,
        clientId: thingName,
        timestamp,
        eventType: connected ? 'connected' : 'disconnected',
      });
    await presence('pi-gone', false, now - 10 * THRESHOLD_MS);
    await presence('pi-also-gone', false, now - 2 * THRESHOLD_MS);
    await presence('pi-just-left', false, now - 1_000);
    await presence('pi-here', true, now - 1_000);
    await expect.poll(silentGauge, { timeout: 5_000, interval: 50 }).toBe(2);

    // It comes back: the next run counts one fewer.
    await presence('pi-gone', true, Date.now());
    await expect.poll(silentGauge, { timeout: 5_000, interval: 50 }).toBe(1);
  });
});
