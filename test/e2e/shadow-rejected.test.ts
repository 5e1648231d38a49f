import { createVirtualClock, type SimulatedDevice } from '@pifleet/simulator';
import {
  desire,
  getShadow,
  part,
  provisionDevice,
  type RunningCore,
  type ShadowDoc,
  waitForShadow,
} from '@pifleet/testkit';
import { describe, expect, it } from 'vitest';
import { PROTOCOL_CASES } from './protocols.js';
import { startDeviceOnCore, stopSimulatedDevices } from './simulated-devices.js';
import { coreForFile } from './suite-core.js';

/**
 * `reported.rejected` against the local core's real shadow service: a rejected desired key is
 * dropped as soon as the operator removes it or sets it to a valid value — cases in which the
 * shadow publishes no delta for that key. The agent is the real runtime (aws-iot-device-sdk-v2,
 * IotShadowClientv2) on simulated hardware; its periodic report is hours away, so only the
 * agent noticing the change can clear the key within the wait. Over MQTT 5 and 3.1.1: the shadow
 * client runs on the SDK's MQTT 5 client or on its 3.1.1 connection.
 */

let dir: string;
let core: RunningCore;
coreForFile(
  'e2e-rejected',
  (suite) => {
    ({ core, dir } = suite);
  },
  stopSimulatedDevices,
);

const rejectedOf = (doc: ShadowDoc) => (doc.state.reported?.rejected ?? {}) as Record<string, unknown>;

describe.each(PROTOCOL_CASES)('reported.rejected over MQTT $protocol', ({ protocol, tag }) => {
  it('drops a rejected key once its desired value is removed or made valid, with no delta for it', async () => {
    const thing = `e2e-rejected-gone-${tag}`;
    const files = await provisionDevice(core, thing, dir);
    const clock = createVirtualClock();
    const d = await startDeviceOnCore(core, files, protocol, clock, {
      relay: true,
      overrides: { shadow: { requestTimeoutMs: 5_000, reportIntervalMs: 86_400_000 } },
    });
    await waitForShadow(core, thing, (s) => s.state.reported?.outputs !== undefined);
    // The quick updates below can reach the shadow's per-thing request rate; the agent then retries
    // its report after a delay on its own clock (a 429, seen in about one run in twelve), so that
    // clock keeps moving with real time while the test waits.
    let ticking = true;
    const ticker = (async () => {
      while (ticking) {
        await clock.advance(50);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      await rejectedKeysClear(thing, d);
    } finally {
      ticking = false;
      await ticker;
    }
  });
});

/** The three cases of the test above, on a started device. */
async function rejectedKeysClear(thing: string, d: Pick<SimulatedDevice, 'status'>): Promise<void> {
  // An output this device does not have: the only difference between desired and reported.
  await desire(core, thing, { outputs: { fan: true } });
  await waitForShadow(core, thing, (s) => rejectedOf(s)['outputs.fan'] !== undefined);
  const removed = await desire(core, thing, { outputs: { fan: null } });
  // Nothing in desired differs from reported any more: the shadow publishes no delta.
  expect((await getShadow(core, thing))?.state.delta).toBeUndefined();
  const cleared = await waitForShadow(core, thing, (s) => rejectedOf(s)['outputs.fan'] === undefined, 10_000);
  expect(cleared.version).toBeGreaterThan(removed.version);
  expect(cleared.state.reported?.rejected).toBeUndefined();

  // An invalid interval, then the interval the sensor already runs at (equal to reported: no delta).
  await desire(core, thing, { sampling: { env: 5 } });
  await waitForShadow(core, thing, (s) => rejectedOf(s)['sampling.env'] !== undefined);
  await desire(core, thing, { sampling: { env: 1_000 } });
  expect((await getShadow(core, thing))?.state.delta).toBeUndefined();
  const valid = await waitForShadow(core, thing, (s) => rejectedOf(s)['sampling.env'] === undefined, 10_000);
  expect(valid.state.reported?.rejected).toBeUndefined();
  expect(part<Record<string, number>>(valid, 'sampling').env).toBe(1_000);

  // A rejection unrelated to a later desired change stays.
  await desire(core, thing, { outputs: { fan: true } });
  await waitForShadow(core, thing, (s) => rejectedOf(s)['outputs.fan'] !== undefined);
  await desire(core, thing, { outputs: { relay: true } });
  const both = await waitForShadow(core, thing, (s) => part<Record<string, boolean>>(s, 'outputs').relay === true);
  expect(Object.keys(rejectedOf(both))).toEqual(['outputs.fan']);
  expect(d.status().actual.outputs.relay).toBe(true);
}
