import { CreateThingCommand } from '@aws-sdk/client-iot';
import {
  ForbiddenException,
  GetThingShadowCommand,
  InvalidRequestException,
  PublishCommand,
  RequestEntityTooLargeException,
} from '@aws-sdk/client-iot-data-plane';
import {
  appTopics,
  LIMITS,
  presenceTopics,
  shadowTopics,
  TELEMETRY_VERSION,
  type TelemetryBatch,
} from '@pifleet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BusMessage } from '../../src/broker/index.js';
import { type Core, startCore, within } from './harness.js';

/**
 * The IoT data plane's Publish, through the real `@aws-sdk/client-iot-data-plane` client, obeys
 * what IoT Core enforces on any publisher: reserved topics only where the Developer Guide lists
 * Publish (403 ForbiddenException otherwise: the operator's credentials cannot forge presence
 * events, shadow responses or `$SYS`), 128 KB per message (413 RequestEntityTooLargeException),
 * and valid topics (400 InvalidRequestException).
 */

let core: Core;
const seen: BusMessage[] = [];
const enc = new TextEncoder();

beforeAll(async () => {
  core = await startCore('publish');
  const { bus } = core.core.services.broker;
  for (const filter of ['#', '$aws/events/#', '$aws/things/#', '$SYS/#']) {
    await bus.subscribe(filter, (m) => {
      seen.push(m);
    });
  }
});
afterAll(async () => {
  await core?.stop();
});

function batch(thingName: string, seq: number, readings: number): TelemetryBatch {
  return {
    v: TELEMETRY_VERSION,
    thingName,
    bootId: 'boot-0001',
    seq,
    sealedAt: 1_700_000_000_000,
    readings: Array.from({ length: readings }, (_, i) => ({
      sensor: 'bme280',
      ts: 1_700_000_000_000 + i,
      metrics: { temperature: 21.5, humidity: 40.25 },
    })),
  };
}

/** Sends a Publish and returns what the SDK threw (or undefined). */
async function publishError(input: ConstructorParameters<typeof PublishCommand>[0]): Promise<unknown> {
  try {
    await core.data.send(new PublishCommand(input));
    return undefined;
  } catch (err) {
    return err;
  }
}

describe('data-plane Publish', () => {
  it.each([
    ['a presence connected event', presenceTopics.connected('pi-forged')],
    ['a presence disconnected event', presenceTopics.disconnected('pi-forged')],
    ['a registry event', '$aws/events/thing/pi-forged/created'],
    ['a shadow update/accepted response', shadowTopics('pi-forged').updateAccepted],
    ['a shadow delta', shadowTopics('pi-forged').updateDelta],
    ['the $SYS tree', '$SYS/broker/clients/connected'],
    ['any other $ topic', '$pifleet/anything'],
  ])('refuses %s with 403 ForbiddenException and publishes nothing', async (_what, topic) => {
    const forged = JSON.stringify({
      clientId: 'pi-forged',
      timestamp: Date.now(),
      eventType: 'connected',
      sessionIdentifier: 'forged-session',
      principalIdentifier: 'forged',
      versionNumber: 99,
      ipAddress: '203.0.113.66',
    });
    const err = await publishError({ topic, qos: 1, payload: enc.encode(forged) });
    expect(err).toBeInstanceOf(ForbiddenException);
    expect(err).toMatchObject({ $metadata: { httpStatusCode: 403 } });
    expect((err as Error).message).toContain(`Topic ${topic} is reserved`);
    expect(seen.filter((m) => m.topic === topic)).toEqual([]);
  });

  it('leaves the connectivity record alone when a forged presence event is refused', async () => {
    await publishError({
      topic: presenceTopics.connected('pi-conn'),
      payload: enc.encode(
        JSON.stringify({
          clientId: 'pi-conn',
          timestamp: Date.now(),
          eventType: 'connected',
          ipAddress: '203.0.113.9',
        }),
      ),
    });
    await core.core.services.rules.idle();
    expect(await core.core.services.telemetry.getConnectivity('pi-conn')).toBeUndefined();
  });

  it('accepts a shadow request topic, which the shadow service then handles', async () => {
    const thingName = 'pub-shadow';
    await core.iot.send(new CreateThingCommand({ thingName }));
    const { bus } = core.core.services.broker;
    let answered: () => void = () => undefined;
    const accepted = new Promise<void>((resolve) => {
      answered = resolve;
    });
    const unsubscribe = await bus.subscribe(shadowTopics(thingName).updateAccepted, () => answered());
    try {
      await core.data.send(
        new PublishCommand({
          topic: shadowTopics(thingName).update,
          payload: enc.encode('{"state":{"desired":{"fan":"on"}}}'),
        }),
      );
      await within(accepted, 5_000, 'update/accepted');
    } finally {
      await unsubscribe();
    }
    const got = await core.data.send(new GetThingShadowCommand({ thingName }));
    expect(JSON.parse(new TextDecoder().decode(got.payload))).toMatchObject({ state: { desired: { fan: 'on' } } });
  });

  it('accepts a payload of exactly 128 KB', async () => {
    const topic = 'lab/exact';
    await core.data.send(new PublishCommand({ topic, payload: new Uint8Array(LIMITS.maxMessageBytes).fill(0x20) }));
    expect(seen.filter((m) => m.topic === topic).map((m) => m.payload.length)).toEqual([LIMITS.maxMessageBytes]);
  });

  it('refuses 200 KB with 413 RequestEntityTooLargeException', async () => {
    const topic = 'lab/big';
    const err = await publishError({ topic, payload: new Uint8Array(200 * 1024).fill(0x20) });
    expect(err).toBeInstanceOf(RequestEntityTooLargeException);
    expect(err).toMatchObject({ $metadata: { httpStatusCode: 413 } });
    expect(seen.filter((m) => m.topic === topic)).toEqual([]);
  });

  it('stores none of a 10,000-reading batch over 128 KB, and a valid batch after it once', async () => {
    const thing = 'pi-bulk';
    const big = enc.encode(JSON.stringify(batch(thing, 1, 10_000)));
    expect(big.byteLength).toBeGreaterThan(LIMITS.maxMessageBytes);
    const err = await publishError({ topic: appTopics.telemetry(thing), qos: 1, payload: big });
    expect(err).toBeInstanceOf(RequestEntityTooLargeException);

    await core.data.send(
      new PublishCommand({
        topic: appTopics.telemetry(thing),
        qos: 1,
        payload: enc.encode(JSON.stringify(batch(thing, 2, 3))),
      }),
    );
    await core.core.services.rules.idle();
    expect(await core.core.services.telemetry.countReadings(thing)).toBe(3);
  });

  it.each([
    ['a wildcard', 'lab/+/x'],
    ['a multi-level wildcard', 'lab/#'],
    ['more than 256 bytes', `lab/${'x'.repeat(253)}`],
    ['more than seven slashes', 'a/b/c/d/e/f/g/h/i'],
  ])('refuses a topic with %s with 400 InvalidRequestException', async (_what, topic) => {
    const err = await publishError({ topic, payload: enc.encode('{}') });
    expect(err).toBeInstanceOf(InvalidRequestException);
    expect(err).toMatchObject({ $metadata: { httpStatusCode: 400 } });
  });

  it('refuses QoS 2 with 400 InvalidRequestException', async () => {
    const err = await publishError({ topic: 'lab/qos', qos: 2, payload: enc.encode('{}') });
    expect(err).toBeInstanceOf(InvalidRequestException);
  });
});
