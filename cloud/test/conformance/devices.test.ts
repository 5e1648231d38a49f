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
  MQTT_PROTOCOLS,
  type MqttProtocol,
  recommendedDevicePolicy,
  shadowTopics,
} from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import {
  type ConnectOptions,
  type Core,
  connectDevice,
  coreForFile,
  type Device,
  deniedSubscribeCode,
  openShadowDevice,
  provisionThing,
  rawSubscribe,
  settle,
} from './harness.js';

/**
 * Devices and operators against the composed core: a device never sees another device's shadow
 * (its policy refuses the subscription, and even a permitted wildcard subscription receives only
 * what iot:Receive allows); the delta stream reaches the device for operator updates over HTTP;
 * the data plane's Publish reaches devices and the shadow service; last-will messages on shadow
 * topics are not shadow requests. Every case runs with the device on MQTT 3.1.1 and on MQTT 5.
 */

let core: Core;
const { opened, arn } = coreForFile('conf-dev', (started) => {
  core = started;
});

/** A thing name per protocol, so both runs share one core without sharing a thing. */
const named = (protocol: MqttProtocol, base: string) => `${base}-${protocol === '5' ? 'v5' : 'v3'}`;

const enc = new TextEncoder();
const dec = new TextDecoder();

async function connected(protocol: MqttProtocol, device: Device, options: ConnectOptions = {}) {
  const client = await connectDevice(core, device, protocol, options);
  opened.push(client);
  return client;
}

/** A monitoring client allowed to subscribe to and receive every reserved `$aws/...` topic. */
async function monitor(protocol: MqttProtocol, name: string) {
  const policy: IotPolicyDocument = {
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client', name) },
      { Effect: 'Allow', Action: 'iot:Subscribe', Resource: arn('topicfilter', '$aws/*') },
      { Effect: 'Allow', Action: 'iot:Receive', Resource: arn('topic', '$aws/*') },
    ],
  };
  return connected(protocol, await provisionThing(core, name, { policy }));
}

describe.each(MQTT_PROTOCOLS)('device over MQTT %s', (protocol) => {
  const n = (base: string) => named(protocol, base);

  describe('a device never sees another device shadow', () => {
    it('is refused a SUBSCRIBE to another thing shadow topics by the recommended policy', async () => {
      await provisionThing(core, n('iso-b'));
      const a = await connected(protocol, await provisionThing(core, n('iso-a')));
      const b = shadowTopics(n('iso-b'));
      for (const filter of [b.updateAccepted, b.updateDelta, b.getAccepted, '$aws/things/+/shadow/update/accepted']) {
        const sub = await rawSubscribe(a, filter);
        expect(sub.code, filter).toBe(deniedSubscribeCode(protocol));
      }
    });

    it('receives nothing of another shadow even on a permitted wildcard subscription', async () => {
      // A looser policy allows the wildcard SUBSCRIBE; iot:Receive is still the recommended one.
      const recommended = recommendedDevicePolicy(core.info.region, core.info.accountId);
      // (Its Subscribe statement widened in place: one more statement would pass IoT's 2,048 characters.)
      const loose: IotPolicyDocument = {
        ...recommended,
        Statement: recommended.Statement.map((s) =>
          s.Action === 'iot:Subscribe' ? { ...s, Resource: arn('topicfilter', '$aws/things/*') } : s,
        ),
      };
      const watcher = await connected(protocol, await provisionThing(core, n('iso-w'), { policy: loose }));
      const all = await rawSubscribe(watcher, '$aws/things/+/shadow/#');
      expect(all.granted).toBe(true);

      const other = await openShadowDevice(core, await provisionThing(core, n('iso-o')), [undefined, 'cfg'], protocol);
      opened.push(other);
      expect(
        (await settle(other.shadows.updateShadow({ thingName: n('iso-o'), state: { desired: { x: 1 } } }))).ok,
      ).toBe(true);
      expect(
        (
          await settle(
            other.shadows.updateNamedShadow({ thingName: n('iso-o'), shadowName: 'cfg', state: { reported: {} } }),
          )
        ).ok,
      ).toBe(true);
      await other.eventsOf(undefined, 1);
      await core.data.send(
        new UpdateThingShadowCommand({ thingName: n('iso-o'), payload: enc.encode('{"state":{"desired":{"x":2}}}') }),
      );
      await other.eventsOf(undefined, 2);

      // The watcher's own shadow traffic arrives on the same subscription, after the other's
      // (published earlier on the same broker), so anything leaked would already be here.
      const own = shadowTopics(n('iso-w'));
      await watcher.publish(own.update, '{"state":{"reported":{"ok":true}}}');
      await all.waitFor((m) => m.topic === own.updateDocuments);
      // Its own request comes back too: the recommended policy lets a thing receive all of its own
      // $aws/things/{thing}/ topics (one grant, to stay within IoT's 2,048 characters).
      expect(all.messages.map((m) => m.topic)).toEqual([own.update, own.updateAccepted, own.updateDocuments]);
    });
  });

  describe('delta stream and data-plane operations reach the device', () => {
    it('delivers operator desired changes over HTTP to the device delta streams, classic and named', async () => {
      const device = await openShadowDevice(
        core,
        await provisionThing(core, n('dlt-1')),
        [undefined, 'config'],
        protocol,
      );
      opened.push(device);
      await settle(device.shadows.updateShadow({ thingName: n('dlt-1'), state: { reported: { led: false } } }));
      await core.data.send(
        new UpdateThingShadowCommand({
          thingName: n('dlt-1'),
          payload: enc.encode('{"state":{"desired":{"led":true}}}'),
        }),
      );
      const classic = await device.deltas.get('')?.waitFor((d) => d.version === 2);
      expect(classic).toMatchObject({
        state: { led: true },
        version: 2,
        metadata: { led: { timestamp: expect.any(Number) } },
      });

      await core.data.send(
        new UpdateThingShadowCommand({
          thingName: n('dlt-1'),
          shadowName: 'config',
          payload: enc.encode('{"state":{"desired":{"interval":{"seconds":30}}}}'),
        }),
      );
      const named = await device.deltas.get('config')?.waitFor((d) => d.version === 1);
      expect(named?.state).toEqual({ interval: { seconds: 30 } });
      // The device applies it and reports back: no further delta, and the documents show both states.
      const report = await settle(
        device.shadows.updateNamedShadow({
          thingName: n('dlt-1'),
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
      const device = await provisionThing(core, n('pub-1'));
      const client = await connected(protocol, device);
      const commands = await rawSubscribe(client, appTopics.commands(n('pub-1')));
      const answers = await rawSubscribe(client, `${shadowTopics(n('pub-1')).update}/+`);
      await core.data.send(
        new PublishCommand({ topic: appTopics.commands(n('pub-1')), qos: 1, payload: enc.encode('{"cmd":"blink"}') }),
      );
      expect((await commands.waitFor(() => true)).payload).toEqual({ cmd: 'blink' });

      await core.data.send(
        new PublishCommand({
          topic: shadowTopics(n('pub-1')).update,
          payload: enc.encode('{"state":{"desired":{"fan":"on"}},"clientToken":"via-http-publish"}'),
        }),
      );
      const accepted = await answers.waitFor((m) => m.topic === shadowTopics(n('pub-1')).updateAccepted);
      expect(accepted.payload).toMatchObject({ clientToken: 'via-http-publish', version: 1 });

      // A response topic is the shadow service's to publish (IoT Core lists it as Subscribe only).
      await expect(
        core.data.send(
          new PublishCommand({
            topic: shadowTopics(n('pub-1')).updateAccepted,
            payload: enc.encode('{"state":{"desired":{"fan":"off"}},"clientToken":"fake"}'),
          }),
        ),
      ).rejects.toBeInstanceOf(ForbiddenException);
      const got = await core.data.send(new GetThingShadowCommand({ thingName: n('pub-1') }));
      const document = JSON.parse(dec.decode(got.payload)) as JsonObject;
      expect(document.version).toBe(1);
      expect(document.state).toEqual({ desired: { fan: 'on' }, delta: { fan: 'on' } });
    });
  });

  describe('last-will messages', () => {
    it('does not treat a will published on a shadow update topic as a shadow request', async () => {
      const device = await provisionThing(core, n('will-1'));
      const topics = shadowTopics(n('will-1'));
      const watch = await monitor(protocol, n('will-monitor'));
      const requests = await rawSubscribe(watch, topics.update);

      // A session with a will; a second connection with the same client id takes it over, and the
      // broker publishes the first connection's will.
      await connected(protocol, device, {
        will: { topic: topics.update, payload: '{"state":{"reported":{"online":false}}}' },
      });
      const second = await connected(protocol, device);
      const will = await requests.waitFor(() => true);
      expect(will.payload).toEqual({ state: { reported: { online: false } } });

      const answers = await rawSubscribe(second, `${topics.update}/+`);
      await second.publish(topics.update, '{"state":{"reported":{"online":true}}}');
      const accepted = await answers.waitFor((m) => m.topic === topics.updateAccepted);
      expect(accepted.payload).toMatchObject({ version: 1, state: { reported: { online: true } } });
      expect(answers.messages.filter((m) => m.topic === topics.updateRejected)).toEqual([]);
    });
  });
});
