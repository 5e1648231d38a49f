import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { GetThingShadowCommand, UpdateThingShadowCommand } from '@aws-sdk/client-iot-data-plane';
import type { JsonObject } from '@pifleet/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import type { LocalCoreInfo } from '../../src/app/local-core.js';
import { removeDir, tempDir } from '../http/harness.js';
import { type Device, openShadowDevice, provision, sdkClients, settle } from './harness.js';

/**
 * Shadows survive a restart and `kill -9` of the `pifleet-local-core` process: the bin is spawned
 * on a temp data dir, a device updates its shadow through IotShadowClientv2 and an operator through
 * the data plane, the process is killed, and a new process on the same data dir serves the same
 * documents (and versions) to both clients.
 */

const BIN = fileURLToPath(new URL('../../bin/pifleet-local-core.js', import.meta.url));
const children = new Set<ChildProcess>();
const dirs: string[] = [];

afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
  for (const dir of dirs) removeDir(dir);
});

interface Running {
  readonly child: ChildProcess;
  readonly info: LocalCoreInfo;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns the bin and waits (bounded) for its ready line. */
async function launch(dataDir: string): Promise<Running> {
  const child = spawn(process.execPath, [BIN, '--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
  });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no ready line within 20 s; stderr:\n${stderr}`)), 20_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const nl = out.indexOf('\n');
      if (nl !== -1) {
        clearTimeout(timer);
        resolve(out.slice(0, nl));
      }
    });
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before ready; stderr:\n${stderr}`));
    });
  });
  return { child, info: JSON.parse(line) as LocalCoreInfo, exited };
}

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
    const device = await provision({ iot: clients.iot, info: first.info }, 'persist-pi');
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
