import { readFileSync } from 'node:fs';
import { GetThingShadowCommand, PublishCommand, UpdateThingShadowCommand } from '@aws-sdk/client-iot-data-plane';
import {
  appTopicResource,
  appTopics,
  type IotPolicyDocument,
  type JsonObject,
  MQTT_PROTOCOLS,
  type MqttProtocol,
} from '@pifleet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCoreInfo } from '../../src/app/local-core.js';
import { killAll, launchCore } from '../../src/testing/core-process.js';
import { removeDir, tempDir } from '../http/harness.js';
import {
  type ConnectOptions,
  type Core,
  connectDevice,
  type Device,
  type DeviceClient,
  openShadowDevice,
  provisionThing,
  type Received,
  sdkClients,
  settle,
  startCore,
  within,
} from './harness.js';

/**
 * Shadows survive a restart and `kill -9` of the `pifleet-local-core` process: the bin is spawned
 * on a temp data dir, a device updates its shadow through IotShadowClientv2 and an operator through
 * the data plane, the process is killed, and a new process on the same data dir serves the same
 * documents (and versions) to both clients, the device on MQTT 3.1.1 and on MQTT 5. And persistent
 * sessions: QoS 1 messages published while a device with a persistent session (3.1.1 clean session
 * false; MQTT 5 clean start false with a session expiry interval) is offline are delivered when it
 * resumes the session; a clean session gets none.
 */

const dirs: string[] = [];

afterAll(() => {
  killAll();
  for (const dir of dirs) removeDir(dir);
});

const launch = (dataDir: string) => launchCore(dataDir);

const enc = new TextEncoder();
const dec = new TextDecoder();

/** The device's classic shadow as IotShadowClientv2 gets it over each protocol, and the named one over HTTP. */
async function readShadows(info: LocalCoreInfo, device: Device) {
  const { data, iot } = sdkClients(info);
  iot.destroy();
  const caPem = readFileSync(info.caFile, 'utf8');
  const overMqtt = new Map<MqttProtocol, { ok: boolean; body: JsonObject }>();
  for (const protocol of MQTT_PROTOCOLS) {
    const shadowDevice = await openShadowDevice({ info, caPem }, device, [], protocol);
    try {
      overMqtt.set(protocol, await settle(shadowDevice.shadows.getShadow({ thingName: device.thingName })));
    } finally {
      await shadowDevice.close();
    }
  }
  const named = await data.send(new GetThingShadowCommand({ thingName: device.thingName, shadowName: 'config' }));
  return {
    overMqtt: Object.fromEntries(overMqtt),
    overHttp: JSON.parse(dec.decode(named.payload)) as JsonObject,
    data,
  };
}

describe('shadow persistence of pifleet-local-core', () => {
  it('keeps classic and named shadows across kill -9 and a clean restart, written and read over MQTT 3.1.1 and 5', async () => {
    const dataDir = tempDir('conf-persist');
    dirs.push(dataDir);

    const first = await launch(dataDir);
    const clients = sdkClients(first.info);
    const caPem = readFileSync(first.info.caFile, 'utf8');
    const device = await provisionThing({ iot: clients.iot, info: first.info }, 'persist-pi');
    // One update over MQTT 3.1.1, the next over MQTT 5 (the agent's default): one document, one version count.
    const writes: Array<[MqttProtocol, JsonObject]> = [
      ['3.1.1', { reported: { temp: 21.5, led: 'off' } }],
      ['5', { desired: { led: 'on' } }],
    ];
    for (const [i, [protocol, state]] of writes.entries()) {
      const pi = await openShadowDevice({ info: first.info, caPem }, device, [], protocol);
      try {
        const written = await settle(pi.shadows.updateShadow({ thingName: 'persist-pi', state }));
        expect(written, `MQTT ${protocol}`).toMatchObject({ ok: true, body: { version: i + 1 } });
      } finally {
        await pi.close();
      }
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
    const stored = {
      ok: true,
      body: {
        version: 2,
        state: { desired: { led: 'on' }, reported: { temp: 21.5, led: 'off' }, delta: { led: 'on' } },
      },
    };
    expect(afterKill.overMqtt).toMatchObject({ '3.1.1': stored, '5': stored });
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
    expect(afterStop.overMqtt).toMatchObject({
      '3.1.1': { ok: true, body: { version: 2 } },
      '5': { ok: true, body: { version: 2 } },
    });
    expect(afterStop.overHttp).toMatchObject({
      version: 2,
      state: { desired: { interval: 10 }, reported: { interval: 10 } },
    });
    afterStop.data.destroy();
    third.child.kill('SIGTERM');
    expect((await third.exited).code).toBe(0);
  });
});

describe('persistent sessions', () => {
  let core: Core;
  beforeAll(async () => {
    core = await startCore('conf-session');
  });
  afterAll(async () => {
    await core?.stop();
  });

  /** An MQTT 5 client allowed to publish to every device's commands topic. */
  async function operatorClient(name: string): Promise<DeviceClient> {
    const arn = (kind: string, rest: string) =>
      `arn:aws:iot:${core.info.region}:${core.info.accountId}:${kind}/${rest}`;
    const policy: IotPolicyDocument = {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client', name) },
        { Effect: 'Allow', Action: 'iot:Publish', Resource: arn('topic', appTopicResource('commands', '*')) },
      ],
    };
    return connectDevice(core, await provisionThing(core, name, { policy }), '5');
  }

  describe.each(MQTT_PROTOCOLS)('over MQTT %s', (protocol) => {
    const v = protocol === '5' ? 'v5' : 'v3';

    /** A persistent session: 3.1.1 clean session false; MQTT 5 clean start false, kept an hour. */
    const persistent: ConnectOptions =
      protocol === '5' ? { clean: false, sessionExpirySeconds: 3600 } : { clean: false };

    /** Connects with every received message recorded from the CONNACK on. */
    async function connectRecording(device: Device, options: ConnectOptions) {
      const received: Received[] = [];
      let arrived: (m: Received) => void = () => undefined;
      const client = await connectDevice(core, device, protocol, {
        ...options,
        onMessage: (m) => {
          received.push(m);
          arrived(m);
        },
      });
      return {
        client,
        received,
        /** Resolves with the first received message matching, waiting for it if needed. */
        next: (match: (m: Received) => boolean) =>
          received.find(match) ??
          within(
            new Promise<Received>((resolve) => {
              arrived = (m) => {
                if (match(m)) resolve(m);
              };
            }),
            10_000,
            'a message of the resumed session',
          ),
      };
    }

    const command = (thing: string, payload: JsonObject) =>
      core.data.send(
        new PublishCommand({ topic: appTopics.commands(thing), qos: 1, payload: enc.encode(JSON.stringify(payload)) }),
      );
    const isCommand = (n: number) => (m: Received) => typeof m.payload === 'object' && m.payload.n === n;

    it('delivers the QoS 1 messages published while the device was offline when it resumes its session', async () => {
      const thing = `session-${v}`;
      const device = await provisionThing(core, thing);
      const first = await connectDevice(core, device, protocol, persistent);
      expect(first.sessionPresent).toBe(false);
      expect(await first.subscribe(appTopics.commands(thing), () => undefined)).toBe(1);
      await first.close();

      await command(thing, { n: 1 });
      await command(thing, { n: 2 });

      const resumed = await connectRecording(device, persistent);
      try {
        expect(resumed.client.sessionPresent).toBe(true);
        await resumed.next(isCommand(2));
        expect(resumed.received.map((m) => [m.topic, m.payload])).toEqual([
          [appTopics.commands(thing), { n: 1 }],
          [appTopics.commands(thing), { n: 2 }],
        ]);
      } finally {
        await resumed.client.close();
      }
    });

    it('drops a queued message whose MQTT 5 expiry passed while the device was offline, delivers the others', async () => {
      const thing = `expiry-${v}`;
      const device = await provisionThing(core, thing);
      const first = await connectDevice(core, device, protocol, persistent);
      await first.subscribe(appTopics.commands(thing), () => undefined);
      await first.close();

      // An MQTT 5 operator client sets the expiry (the data plane's Publish here carries no properties).
      const operator = await operatorClient(`expiry-op-${v}`);
      try {
        const publish = (n: number, expiry: number) =>
          operator.publish(appTopics.commands(thing), JSON.stringify({ n }), 1, {
            messageExpiryIntervalSeconds: expiry,
          });
        expect(await publish(1, 1)).toBe(0);
        expect(await publish(2, 600)).toBe(0);
      } finally {
        await operator.close();
      }
      // Time passing is the behaviour under test: message 1 expires a second after it was published.
      await new Promise((resolve) => setTimeout(resolve, 1_100));

      const resumed = await connectRecording(device, persistent);
      try {
        const kept = await resumed.next(isCommand(2));
        expect(resumed.received.map((m) => m.payload)).toEqual([{ n: 2 }]);
        if (protocol === '5') {
          // The remaining lifetime, not the original (MQTT 5.0 section 3.3.2.3.3).
          expect(kept.packet?.messageExpiryIntervalSeconds).toBeGreaterThan(590);
          expect(kept.packet?.messageExpiryIntervalSeconds).toBeLessThan(600);
        }
      } finally {
        await resumed.client.close();
      }
    });

    it('keeps nothing for a clean session: no session present, nothing queued', async () => {
      const thing = `clean-${v}`;
      const device = await provisionThing(core, thing);
      const first = await connectDevice(core, device, protocol, { clean: true });
      await first.subscribe(appTopics.commands(thing), () => undefined);
      await first.close();

      await command(thing, { n: 1 });

      const again = await connectRecording(device, { clean: true });
      try {
        expect(again.client.sessionPresent).toBe(false);
        // A live message after the reconnect: anything queued would have arrived before it.
        await again.client.subscribe(appTopics.commands(thing), () => undefined);
        await command(thing, { n: 2 });
        await again.next(isCommand(2));
        expect(again.received.map((m) => m.payload)).toEqual([{ n: 2 }]);
      } finally {
        await again.client.close();
      }
    });
  });
});
