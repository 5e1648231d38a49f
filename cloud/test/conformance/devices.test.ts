import {
  ForbiddenException,
  GetThingShadowCommand,
  PublishCommand,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import {
  appTopics,
  type IotPolicyDocument,
  type JsonObject,
  recommendedDevicePolicy,
  shadowTopics,
} from '@pifleet/protocol';
import { iot, mqtt } from 'aws-iot-device-sdk-v2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Core,
  closeQuietly,
  connectDevice,
  type Device,
  openShadowDevice,
  provisionThing,
  rawSubscribe,
  settle,
  startCore,
  within,
} from './harness.js';

/**
 * Devices and operators against the composed core: a device never sees another device's shadow
 * (its policy refuses the subscription, and even a permitted wildcard subscription receives only
 * what iot:Receive allows); the delta stream reaches the device for operator updates over HTTP;
 * the data plane's Publish reaches devices and the shadow service; last-will messages on shadow
 * topics are not shadow requests.
 */

let core: Core;
const opened: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  core = await startCore('conf-dev');
});
afterAll(async () => {
  for (const o of opened.reverse()) await o.close();
  await core?.stop();
});

const enc = new TextEncoder();
const dec = new TextDecoder();
const arn = (kind: string, rest: string) => `arn:aws:iot:${core.info.region}:${core.info.accountId}:${kind}/${rest}`;

async function connected(device: Device, clientId?: string) {
  const connection = await connectDevice(core, device, clientId === undefined ? {} : { clientId });
  opened.push({ close: () => closeQuietly(connection) });
  return connection;
}

/** A monitoring client allowed to subscribe to and receive every reserved `$aws/...` topic. */
async function monitor(name: string) {
  const policy: IotPolicyDocument = {
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client', name) },
      { Effect: 'Allow', Action: 'iot:Subscribe', Resource: arn('topicfilter', '$aws/*') },
      { Effect: 'Allow', Action: 'iot:Receive', Resource: arn('topic', '$aws/*') },
    ],
  };
  return connected(await provisionThing(core, name, { policy }));
}

describe('a device never sees another device shadow', () => {
  it('is refused a SUBSCRIBE to another thing shadow topics by the recommended policy', async () => {
    await provisionThing(core, 'iso-b');
    const a = await connected(await provisionThing(core, 'iso-a'));
    const b = shadowTopics('iso-b');
    for (const filter of [b.updateAccepted, b.updateDelta, b.getAccepted, '$aws/things/+/shadow/update/accepted']) {
      const sub = await rawSubscribe(a, filter);
      expect(sub.granted, filter).toBe(false);
    }
  });

  it('receives nothing of another shadow even on a permitted wildcard subscription', async () => {
    // A looser policy allows the wildcard SUBSCRIBE; iot:Receive is still the recommended one.
    const recommended = recommendedDevicePolicy(core.info.region, core.info.accountId);
    const loose: IotPolicyDocument = {
      ...recommended,
      Statement: [
        ...recommended.Statement,
        { Effect: 'Allow', Action: 'iot:Subscribe', Resource: arn('topicfilter', '$aws/things/*') },
      ],
    };
    const watcher = await connected(await provisionThing(core, 'iso-w', { policy: loose }));
    const all = await rawSubscribe(watcher, '$aws/things/+/shadow/#');
    expect(all.granted).toBe(true);

    const other = await openShadowDevice(core, await provisionThing(core, 'iso-o'), [undefined, 'cfg']);
    opened.push(other);
    expect((await settle(other.shadows.updateShadow({ thingName: 'iso-o', state: { desired: { x: 1 } } }))).ok).toBe(
      true,
    );
    expect(
      (
        await settle(
          other.shadows.updateNamedShadow({ thingName: 'iso-o', shadowName: 'cfg', state: { reported: {} } }),
        )
      ).ok,
    ).toBe(true);
    await other.eventsOf(undefined, 1);
    await core.data.send(
      new UpdateThingShadowCommand({ thingName: 'iso-o', payload: enc.encode('{"state":{"desired":{"x":2}}}') }),
    );
    await other.eventsOf(undefined, 2);

    // The watcher's own shadow traffic arrives on the same subscription, after the other's
    // (published earlier on the same broker), so anything leaked would already be here.
    const own = shadowTopics('iso-w');
    await within(
      watcher.publish(own.update, '{"state":{"reported":{"ok":true}}}', mqtt.QoS.AtLeastOnce),
      5_000,
      'puback',
    );
    await all.waitFor((m) => m.topic === own.updateDocuments);
    expect(all.messages.map((m) => m.topic)).toEqual([own.updateAccepted, own.updateDocuments]);
  });
});

describe('delta stream and data-plane operations reach the device', () => {
  it('delivers operator desired changes over HTTP to the device delta streams, classic and named', async () => {
    const device = await openShadowDevice(core, await provisionThing(core, 'dlt-1'), [undefined, 'config']);
    opened.push(device);
    await settle(device.shadows.updateShadow({ thingName: 'dlt-1', state: { reported: { led: false } } }));
    await core.data.send(
      new UpdateThingShadowCommand({ thingName: 'dlt-1', payload: enc.encode('{"state":{"desired":{"led":true}}}') }),
    );
    const classic = await device.deltas.get('')?.waitFor((d) => d.version === 2);
    expect(classic).toMatchObject({
      state: { led: true },
      version: 2,
      metadata: { led: { timestamp: expect.any(Number) } },
    });

    await core.data.send(
      new UpdateThingShadowCommand({
        thingName: 'dlt-1',
        shadowName: 'config',
        payload: enc.encode('{"state":{"desired":{"interval":{"seconds":30}}}}'),
      }),
    );
    const named = await device.deltas.get('config')?.waitFor((d) => d.version === 1);
    expect(named?.state).toEqual({ interval: { seconds: 30 } });
    // The device applies it and reports back: no further delta, and the documents show both states.
    const report = await settle(
      device.shadows.updateNamedShadow({
        thingName: 'dlt-1',
        shadowName: 'config',
        state: { reported: { interval: { seconds: 30 } } },
      }),
    );
    expect(report).toMatchObject({ ok: true, body: { version: 2 } });
    const events = await device.eventsOf('config', 2);
    expect(events.delta).toBeNull();
    expect(events.documents).toMatchObject({
      previous: { version: 1, state: { desired: { interval: { seconds: 30 } } } },
      current: {
        version: 2,
        state: { desired: { interval: { seconds: 30 } }, reported: { interval: { seconds: 30 } } },
      },
    });
  });

  it('Publish over HTTP: raw payload to a device topic, and a shadow request the service answers', async () => {
    const device = await provisionThing(core, 'pub-1');
    const connection = await connected(device);
    const commands = await rawSubscribe(connection, appTopics.commands('pub-1'));
    const answers = await rawSubscribe(connection, `${shadowTopics('pub-1').update}/+`);
    await core.data.send(
      new PublishCommand({ topic: appTopics.commands('pub-1'), qos: 1, payload: enc.encode('{"cmd":"blink"}') }),
    );
    expect((await commands.waitFor(() => true)).payload).toEqual({ cmd: 'blink' });

    await core.data.send(
      new PublishCommand({
        topic: shadowTopics('pub-1').update,
        payload: enc.encode('{"state":{"desired":{"fan":"on"}},"clientToken":"via-http-publish"}'),
      }),
    );
    const accepted = await answers.waitFor((m) => m.topic === shadowTopics('pub-1').updateAccepted);
    expect(accepted.payload).toMatchObject({ clientToken: 'via-http-publish', version: 1 });

    // A response topic is the shadow service's to publish (IoT Core lists it as Subscribe only).
    await expect(
      core.data.send(
        new PublishCommand({
          topic: shadowTopics('pub-1').updateAccepted,
          payload: enc.encode('{"state":{"desired":{"fan":"off"}},"clientToken":"fake"}'),
        }),
      ),
    ).rejects.toBeInstanceOf(ForbiddenException);
    const got = await core.data.send(new GetThingShadowCommand({ thingName: 'pub-1' }));
    const document = JSON.parse(dec.decode(got.payload)) as JsonObject;
    expect(document.version).toBe(1);
    expect(document.state).toEqual({ desired: { fan: 'on' }, delta: { fan: 'on' } });
  });
});

describe('last-will messages', () => {
  it('does not treat a will published on a shadow update topic as a shadow request', async () => {
    const device = await provisionThing(core, 'will-1');
    const topics = shadowTopics('will-1');
    const watch = await monitor('will-monitor');
    const requests = await rawSubscribe(watch, topics.update);

    const config = iot.AwsIotMqttConnectionConfigBuilder.new_mtls_builder(device.certPem, device.keyPem)
      .with_certificate_authority(core.caPem)
      .with_endpoint(core.info.mqtt.host)
      .with_port(core.info.mqtt.port)
      .with_client_id('will-1')
      .with_clean_session(true)
      .with_will(
        new mqtt.MqttWill(topics.update, mqtt.QoS.AtLeastOnce, '{"state":{"reported":{"online":false}}}', false),
      )
      .build();
    const first = new mqtt.MqttClient().new_connection(config);
    opened.push({ close: () => closeQuietly(first) });
    await within(first.connect(), 10_000, 'connect with will');

    // A second connection with the same client id takes the session over; the broker publishes
    // the first connection's will.
    const second = await connected(device);
    const will = await requests.waitFor(() => true);
    expect(will.payload).toEqual({ state: { reported: { online: false } } });

    const answers = await rawSubscribe(second, `${topics.update}/+`);
    await within(
      second.publish(topics.update, '{"state":{"reported":{"online":true}}}', mqtt.QoS.AtLeastOnce),
      5_000,
      'puback',
    );
    const accepted = await answers.waitFor((m) => m.topic === topics.updateAccepted);
    expect(accepted.payload).toMatchObject({ version: 1, state: { reported: { online: true } } });
    expect(answers.messages.filter((m) => m.topic === topics.updateRejected)).toEqual([]);
  });
});
