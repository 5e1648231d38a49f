import { UpdateCertificateCommand } from '@aws-sdk/client-iot';
import {
  appTopics,
  type IotPolicyDocument,
  type JsonObject,
  LIMITS,
  MQTT_PROTOCOLS,
  type MqttProtocol,
  presenceTopics,
} from '@pifleet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BusMessage } from '../../src/broker/index.js';
import { certificateIdOf } from '../../src/ca/local-ca.js';
import {
  type Core,
  connectDevice,
  coreForFile,
  type Device,
  type DeviceClient,
  deniedSubscribeCode,
  provisionThing,
  rawSubscribe,
  type Subscription,
} from './harness.js';

/**
 * Presence lifecycle events of the composed core, as IoT Core publishes them: seen by an in-process
 * subscriber on the broker bus (where the rules engine listens) and by an MQTT client whose policy
 * allows `$aws/events/...`; a device with the recommended policy may not subscribe to them. The
 * watcher and the device each connect over MQTT 3.1.1 and MQTT 5: the events are the same.
 */

let core: Core;
const { arn } = coreForFile('conf-presence', (started) => {
  core = started;
});

const suffix = (protocol: MqttProtocol) => (protocol === '5' ? 'v5' : 'v3');

/** A client allowed to watch presence events, and the bus's copy of them. */
async function watchPresence(protocol: MqttProtocol) {
  const name = `presence-watch-${suffix(protocol)}`;
  const policy: IotPolicyDocument = {
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client', name) },
      { Effect: 'Allow', Action: 'iot:Subscribe', Resource: arn('topicfilter', '$aws/events/presence/*') },
      { Effect: 'Allow', Action: 'iot:Receive', Resource: arn('topic', '$aws/events/presence/*') },
    ],
  };
  const watcher = await connectDevice(core, await provisionThing(core, name, { policy }), protocol);
  const bus: BusMessage[] = [];
  const unsubscribe = await core.core.services.broker.bus.subscribe(presenceTopics.allFilter, (m) => {
    bus.push(m);
  });
  let events: Subscription;
  try {
    events = await rawSubscribe(watcher, presenceTopics.allFilter);
    expect(events.granted).toBe(true);
  } catch (err) {
    await unsubscribe();
    await watcher.close();
    throw err;
  }
  return {
    events,
    /** The bus's events of one client id, parsed. */
    onBus: (clientId: string) =>
      bus
        .filter((m) => m.topic.endsWith(`/${clientId}`))
        .map((m) => ({ topic: m.topic, event: JSON.parse(m.payload.toString('utf8')) as JsonObject })),
    async close() {
      await unsubscribe();
      await watcher.close();
    },
  };
}

describe.each(MQTT_PROTOCOLS)('presence events, watcher over MQTT %s', (watcherProtocol) => {
  let watch: Awaited<ReturnType<typeof watchPresence>>;
  beforeAll(async () => {
    watch = await watchPresence(watcherProtocol);
  });
  afterAll(async () => {
    await watch?.close();
  });

  it.each(MQTT_PROTOCOLS)(
    'publishes connected and disconnected events with IoT Core fields for a device on MQTT %s',
    async (deviceProtocol) => {
      const thing = `presence-pi-${suffix(watcherProtocol)}-${suffix(deviceProtocol)}`;
      const device = await connectDevice(core, await provisionThing(core, thing), deviceProtocol);
      const connected = await watch.events.waitFor((m) => m.topic === presenceTopics.connected(thing));
      await device.close();
      const disconnected = await watch.events.waitFor((m) => m.topic === presenceTopics.disconnected(thing));

      const on = connected.payload as JsonObject;
      const off = disconnected.payload as JsonObject;
      expect(on).toMatchObject({
        clientId: thing,
        eventType: 'connected',
        principalIdentifier: expect.stringMatching(/^[0-9a-f]{64}$/),
        sessionIdentifier: expect.any(String),
        timestamp: expect.any(Number),
        versionNumber: expect.any(Number),
      });
      expect(off).toMatchObject({
        clientId: thing,
        eventType: 'disconnected',
        clientInitiatedDisconnect: true,
        disconnectReason: 'CLIENT_INITIATED_DISCONNECT',
        principalIdentifier: on.principalIdentifier,
        sessionIdentifier: on.sessionIdentifier,
        versionNumber: on.versionNumber,
      });
      expect(off.timestamp as number).toBeGreaterThanOrEqual(on.timestamp as number);

      // The in-process subscriber saw the same two events (published before the MQTT deliveries).
      expect(watch.onBus(thing)).toEqual([
        { topic: presenceTopics.connected(thing), event: on },
        { topic: presenceTopics.disconnected(thing), event: off },
      ]);
    },
  );

  it('reports a session taken over by the same client id as DUPLICATE_CLIENTID', async () => {
    const thing = `presence-dup-${suffix(watcherProtocol)}`;
    const device = await provisionThing(core, thing);
    const first = await connectDevice(core, device, watcherProtocol);
    const second = await connectDevice(core, device, watcherProtocol);
    try {
      await first.dropped();
      const off = await watch.events.waitFor((m) => m.topic === presenceTopics.disconnected(thing));
      expect(off.payload).toMatchObject({
        clientId: thing,
        clientInitiatedDisconnect: false,
        disconnectReason: 'DUPLICATE_CLIENTID',
      });
    } finally {
      await first.close();
      await second.close();
    }
  });

  // Why the broker ended a device's connection, in IoT Core's words ("Lifecycle events": a publish
  // over the payload limit is a CLIENT_ERROR, a failed authorization an AUTH_ERROR); the device
  // speaks the watcher's protocol.
  const ended: Array<{
    cause: string;
    reason: string;
    end: (device: Device, client: DeviceClient) => Promise<unknown>;
  }> = [
    {
      cause: 'a publish over 128 KB',
      reason: 'CLIENT_ERROR',
      end: (device, client) =>
        client.publish(appTopics.telemetry(device.thingName), new Uint8Array(LIMITS.maxMessageBytes + 1)),
    },
    {
      cause: 'its certificate made INACTIVE',
      reason: 'AUTH_ERROR',
      end: (device) =>
        core.iot.send(
          new UpdateCertificateCommand({ certificateId: certificateIdOf(device.certPem), newStatus: 'INACTIVE' }),
        ),
    },
  ];
  it.each(ended)('reports a connection ended by $cause as $reason', async ({ cause, reason, end }) => {
    const thing = `presence-end-${suffix(watcherProtocol)}-${ended.findIndex((e) => e.cause === cause)}`;
    const device = await provisionThing(core, thing);
    const client = await connectDevice(core, device, watcherProtocol);
    try {
      void end(device, client).catch(() => undefined);
      await client.dropped();
      const off = await watch.events.waitFor((m) => m.topic === presenceTopics.disconnected(thing));
      expect(off.payload).toMatchObject({
        clientId: thing,
        clientInitiatedDisconnect: false,
        disconnectReason: reason,
      });
    } finally {
      await client.close();
    }
  });

  it('refuses a device with the recommended policy a presence subscription', async () => {
    const nosy = await connectDevice(
      core,
      await provisionThing(core, `presence-nosy-${suffix(watcherProtocol)}`),
      watcherProtocol,
    );
    try {
      expect((await rawSubscribe(nosy, presenceTopics.allFilter)).code).toBe(deniedSubscribeCode(watcherProtocol));
    } finally {
      await nosy.close();
    }
  });
});
