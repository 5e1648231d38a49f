import { createMqttJsTransport, type Transport, type TransportEvents } from '@pifleet/device-agent';
import { appTopics, MQTT_PROTOCOLS, type MqttProtocol } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import type { FleetIdentity } from '../../src/fleet/provision.js';
import type { LocalTarget } from '../../src/fleet/target.js';
import { localFleetForFile } from '../local-fleet.js';

/**
 * The mqtt.js transport the fleet's devices use, against the local IoT Core (its policy checks,
 * topic rules and session handling) on both protocols: what AWS IoT Core answers an MQTT 5
 * client with reason codes, a 3.1.1 client gets as a closed connection or a SUBACK 0x80.
 * device-agent's own tests run the transport contract against a bare aedes.
 */
let target: LocalTarget;
let identities: readonly FleetIdentity[];
localFleetForFile('mqttjs-core-', ['mq-1', 'mq-2'], (fleet) => {
  ({ target, identities } = fleet);
});

const identity = (i: number) => identities[i] as FleetIdentity;

const transportOf = (i: number, protocol: MqttProtocol, operationTimeoutMs = 5_000) =>
  createMqttJsTransport({
    endpoint: target.info.mqtt.host,
    port: target.info.mqtt.port,
    clientId: identity(i).thingName,
    certFile: identity(i).certFile,
    keyFile: identity(i).keyFile,
    caFile: target.info.caFile,
    reconnectMinMs: 100,
    reconnectMaxMs: 1_000,
    operationTimeoutMs,
    protocol,
  });

const nextEvent = <E extends keyof TransportEvents>(t: Transport, e: E, ms = 10_000) =>
  new Promise<TransportEvents[E]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${e} within ${ms} ms`)), ms);
    const off = t.on(e, (d) => {
      clearTimeout(timer);
      off();
      resolve(d);
    });
  });

async function connected(t: Transport): Promise<Transport> {
  const up = nextEvent(t, 'connected');
  t.start();
  await up;
  return t;
}

describe.each(MQTT_PROTOCOLS)('mqtt.js transport on the local IoT Core, MQTT %s', (protocol) => {
  it('connects with that version, publishes its telemetry (PUBACK) and gets a refused SUBSCRIBE to another thing with the SUBACK code', async () => {
    const t = await connected(transportOf(0, protocol));
    // The local core saw the CONNECT of the version asked for.
    expect(target.services.broker.bus.sessions().get(identity(0).thingName)?.protocol).toBe(protocol);
    await t.publish(appTopics.telemetry(identity(0).thingName), '{"v":1}', { qos: 1 });
    const reasonCode = protocol === '5' ? 0x87 : 0x80;
    await expect(t.subscribe(appTopics.commands(identity(1).thingName), 1, () => undefined)).rejects.toMatchObject({
      code: 'SUBSCRIBE_REFUSED',
      data: { filter: appTopics.commands(identity(1).thingName), reasonCode },
    });
    expect(t.isConnected).toBe(true);
    await t.stop();
  });
});

describe('mqtt.js transport on the local IoT Core, MQTT 5 only', () => {
  it('a publish the policy denies is PUBLISH_REFUSED 0x87, a reserved topic 0x90, and the connection stays', async () => {
    const t = await connected(transportOf(0, '5'));
    let interrupted = false;
    t.on('interrupted', () => {
      interrupted = true;
    });
    await expect(t.publish(appTopics.telemetry(identity(1).thingName), '{}', { qos: 1 })).rejects.toMatchObject({
      code: 'PUBLISH_REFUSED',
      data: { reasonCode: 0x87, reason: 'NOT_AUTHORIZED' },
    });
    const reserved = `$aws/things/${identity(0).thingName}/shadow/update/accepted`;
    await expect(t.publish(reserved, '{}', { qos: 1 })).rejects.toMatchObject({
      code: 'PUBLISH_REFUSED',
      data: { topic: reserved, reasonCode: 0x90, reason: 'TOPIC_NAME_INVALID' },
    });
    await t.publish(appTopics.telemetry(identity(0).thingName), '{"v":2}', { qos: 1 });
    expect(interrupted).toBe(false);
    await t.stop();
  });

  it('a second connection with its client id ends the first with DISCONNECT 0x8e (session taken over)', async () => {
    const first = await connected(transportOf(1, '5'));
    const lost = nextEvent(first, 'interrupted');
    const second = await connected(transportOf(1, '5'));
    const { error } = await lost;
    expect(error).toMatchObject({
      code: 'DISCONNECTED_BY_BROKER',
      data: { reasonCode: 0x8e, reason: 'SESSION_TAKEN_OVER' },
    });
    // Stop the first before it takes the client id back.
    await first.stop();
    await second.stop();
  });
});

describe('mqtt.js transport on the local IoT Core, MQTT 3.1.1 only', () => {
  it('a publish the policy denies closes the connection (3.1.1 has no PUBACK code); the publish never succeeds', async () => {
    const t = await connected(transportOf(0, '3.1.1', 1_000));
    const lost = nextEvent(t, 'interrupted');
    const pub = t.publish(appTopics.telemetry(identity(1).thingName), '{}', { qos: 1 });
    await lost;
    await expect(pub).rejects.toMatchObject({ code: 'PUBLISH_FAILED' });
    await t.stop();
  });
});
