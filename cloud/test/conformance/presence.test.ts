import { type IotPolicyDocument, type JsonObject, presenceTopics } from '@pifleet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BusMessage } from '../../src/broker/index.js';
import { type Core, closeQuietly, connectDevice, provisionThing, rawSubscribe, startCore, within } from './harness.js';

/**
 * Presence lifecycle events of the composed core, as IoT Core publishes them: seen by an in-process
 * subscriber on the broker bus (where the rules engine listens) and by an MQTT client whose policy
 * allows `$aws/events/...`; a device with the recommended policy may not subscribe to them.
 */

let core: Core;

beforeAll(async () => {
  core = await startCore('conf-presence');
});
afterAll(async () => {
  await core?.stop();
});

describe('presence events', () => {
  it('publishes connected and disconnected events with IoT Core fields to the bus and to permitted subscribers', async () => {
    const arn = (kind: string, rest: string) =>
      `arn:aws:iot:${core.info.region}:${core.info.accountId}:${kind}/${rest}`;
    const policy: IotPolicyDocument = {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client', 'presence-watch') },
        { Effect: 'Allow', Action: 'iot:Subscribe', Resource: arn('topicfilter', '$aws/events/presence/*') },
        { Effect: 'Allow', Action: 'iot:Receive', Resource: arn('topic', '$aws/events/presence/*') },
      ],
    };
    const watcher = await connectDevice(core, await provisionThing(core, 'presence-watch', { policy }));
    const bus: BusMessage[] = [];
    const unsubscribe = await core.core.services.broker.bus.subscribe(presenceTopics.allFilter, (m) => {
      bus.push(m);
    });
    try {
      const events = await rawSubscribe(watcher, presenceTopics.allFilter);
      expect(events.granted).toBe(true);

      const device = await provisionThing(core, 'presence-pi');
      const connection = await connectDevice(core, device);
      const connected = await events.waitFor((m) => m.topic === presenceTopics.connected('presence-pi'));
      await within(connection.disconnect(), 5_000, 'disconnect');
      const disconnected = await events.waitFor((m) => m.topic === presenceTopics.disconnected('presence-pi'));

      const on = connected.payload as JsonObject;
      const off = disconnected.payload as JsonObject;
      expect(on).toMatchObject({
        clientId: 'presence-pi',
        eventType: 'connected',
        principalIdentifier: expect.stringMatching(/^[0-9a-f]{64}$/),
        sessionIdentifier: expect.any(String),
        timestamp: expect.any(Number),
        versionNumber: expect.any(Number),
      });
      expect(off).toMatchObject({
        clientId: 'presence-pi',
        eventType: 'disconnected',
        clientInitiatedDisconnect: true,
        disconnectReason: 'CLIENT_INITIATED_DISCONNECT',
        principalIdentifier: on.principalIdentifier,
        sessionIdentifier: on.sessionIdentifier,
        versionNumber: on.versionNumber,
      });
      expect(off.timestamp as number).toBeGreaterThanOrEqual(on.timestamp as number);

      // The in-process subscriber saw the same two events (published before the MQTT deliveries).
      const seen = bus
        .filter((m) => m.topic.endsWith('/presence-pi'))
        .map((m) => ({ topic: m.topic, event: JSON.parse(m.payload.toString('utf8')) as JsonObject }));
      expect(seen).toEqual([
        { topic: presenceTopics.connected('presence-pi'), event: on },
        { topic: presenceTopics.disconnected('presence-pi'), event: off },
      ]);

      // A device with the recommended policy may not watch presence.
      const nosy = await connectDevice(core, await provisionThing(core, 'presence-nosy'));
      try {
        expect((await rawSubscribe(nosy, presenceTopics.allFilter)).granted).toBe(false);
      } finally {
        await closeQuietly(nosy);
      }
    } finally {
      await unsubscribe();
      await closeQuietly(watcher);
    }
  });
});
