import { MQTT_PROTOCOLS } from '@pifleet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAwsIotTransport } from '../../src/adapters/aws-iot-sdk.js';
import { createIotShadowService } from '../../src/shadow/iot-shadow-v2.js';
import { describeShadowClientContract } from './shadow-contract.js';
import { type ShadowBroker, startShadowBroker } from './shadow-responder.js';
import { waitFor } from './tls-broker.js';

/**
 * The SDK's IotShadowClientv2 glue (`createIotShadowService`) over the device SDK transport, for
 * each protocol: `newFromMqtt5` on an MQTT 5 client (the agent's default) and `newFromMqtt311` on a
 * 3.1.1 connection, against a broker that answers shadow requests the way IoT Core does. One broker
 * per protocol, so that the two runs do not see each other's shadows.
 */
describe.each(MQTT_PROTOCOLS.map((protocol) => ({ protocol })))('MQTT $protocol', ({ protocol }) => {
  let fixture: ShadowBroker;
  beforeAll(async () => {
    fixture = await startShadowBroker('pi-shadow');
  });
  afterAll(() => fixture?.close());

  const connect = async (thing: string) => {
    const transport = createAwsIotTransport({ protocol, ...fixture.target(thing) });
    const connected = waitFor('connected', (done) => transport.on('connected', () => done(undefined)));
    transport.start();
    await connected;
    const native = transport.native();
    if (!native) throw new Error('no native client');
    return { transport, native };
  };

  it(`the shadow client runs on the SDK's MQTT ${protocol} client`, async () => {
    const { transport, native } = await connect('sc-native');
    expect(native.protocol).toBe(protocol);
    expect(protocol === '5' ? 'client' in native : 'connection' in native).toBe(true);
    await transport.stop();
  });

  describeShadowClientContract(
    `IotShadowClientv2 over the device SDK transport, MQTT ${protocol}`,
    () => fixture.responder,
    async (thing, requestTimeoutMs) => {
      const { transport, native } = await connect(thing);
      const shadow = createIotShadowService({ native, thingName: thing, requestTimeoutMs });
      return {
        shadow,
        close: async () => {
          shadow.close();
          await transport.stop();
        },
      };
    },
  );
});
