import { readFileSync } from 'node:fs';
import { GetThingShadowCommand, UpdateThingShadowCommand } from '@aws-sdk/client-iot-data-plane';
import type { JsonObject } from '@pifleet/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import type { LocalCoreInfo } from '../../src/app/local-core.js';
import { killAll, launchCore } from '../../src/testing/core-process.js';
import { removeDir, tempDir } from '../http/harness.js';
import { type Device, openShadowDevice, provisionThing, sdkClients, settle } from './harness.js';

/**
 * Shadows survive a restart and `kill -9` of the `pifleet-local-core` process: the bin is spawned
 * on a temp data dir, a device updates its shadow through IotShadowClientv2 and an operator through
 * the data plane, the process is killed, and a new process on the same data dir serves the same
 * documents (and versions) to both clients.
 */

const dirs: string[] = [];

afterAll(() => {
  killAll();
  for (const dir of dirs) removeDir(dir);
});

const launch = (dataDir: string) => launchCore(dataDir);

const enc = new TextEncoder();
const dec = new TextDecoder();

async function readShadows(info: LocalCoreInfo, device: Device) {
  const { data, iot } = sdkClients(info);
  const caPem = readFileSync(info.caFile, 'utf8');
  const shadowDevice = await openShadowDevice({ info, caPem }, device, []);
  try {
    const overMqtt = await settle(shadowDevice.shadows.getShadow({ thingName: device.thingName }));
    const named = await data.send(new GetThingShadowCommand({ thingName: device.thingName, shadowName: 'config' }));
    return { overMqtt, overHttp: JSON.parse(dec.decode(named.payload)) as JsonObject, data };
  } finally {
    await shadowDevice.close();
    iot.destroy();
  }
}

describe('shadow persistence of pifleet-local-core', () => {
  it('keeps classic and named shadows across kill -9 and a clean restart', async () => {
    const dataDir = tempDir('conf-persist');
    dirs.push(dataDir);

    const first = await launch(dataDir);
    const clients = sdkClients(first.info);
    const caPem = readFileSync(first.info.caFile, 'utf8');
    const device = await provisionThing({ iot: clients.iot, info: first.info }, 'persist-pi');
    const pi = await openShadowDevice({ info: first.info, caPem }, device, []);
    try {
      const reported = await settle(
        pi.shadows.updateShadow({ thingName: 'persist-pi', state: { reported: { temp: 21.5, led: 'off' } } }),
      );
      expect(reported).toMatchObject({ ok: true, body: { version: 1 } });
      const desired = await settle(
        pi.shadows.updateShadow({ thingName: 'persist-pi', state: { desired: { led: 'on' } } }),
      );
      expect(desired).toMatchObject({ ok: true, body: { version: 2 } });
    } finally {
      await pi.close();
    }
    await clients.data.send(
      new UpdateThingShadowCommand({
        thingName: 'persist-pi',
        shadowName: 'config',
        payload: enc.encode('{"state":{"desired":{"interval":10}}}'),
      }),
    );
    clients.iot.destroy();
    clients.data.destroy();

    // The accepted answers were sent only after the writes were durable: kill -9 loses none.
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');

    const second = await launch(dataDir);
    const afterKill = await readShadows(second.info, device);
    expect(afterKill.overMqtt).toMatchObject({
      ok: true,
      body: {
        version: 2,
        state: { desired: { led: 'on' }, reported: { temp: 21.5, led: 'off' }, delta: { led: 'on' } },
      },
    });
    expect(afterKill.overHttp).toMatchObject({ version: 1, state: { desired: { interval: 10 } } });
    // Versions continue from the stored ones.
    const next = await afterKill.data.send(
      new UpdateThingShadowCommand({
        thingName: 'persist-pi',
        shadowName: 'config',
        payload: enc.encode('{"state":{"reported":{"interval":10}}}'),
      }),
    );
    expect(JSON.parse(dec.decode(next.payload))).toMatchObject({ version: 2 });
    afterKill.data.destroy();

    second.child.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);

    const third = await launch(dataDir);
    const afterStop = await readShadows(third.info, device);
    expect(afterStop.overMqtt).toMatchObject({ ok: true, body: { version: 2 } });
    expect(afterStop.overHttp).toMatchObject({
      version: 2,
      state: { desired: { interval: 10 }, reported: { interval: 10 } },
    });
    afterStop.data.destroy();
    third.child.kill('SIGTERM');
    expect((await third.exited).code).toBe(0);
  });
});
