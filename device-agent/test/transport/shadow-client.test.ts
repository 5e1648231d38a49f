import { afterAll, beforeAll } from 'vitest';
import { createAwsIotTransport } from '../../src/adapters/aws-iot-sdk.js';
import { createIotShadowService } from '../../src/shadow/iot-shadow-v2.js';
import { describeShadowClientContract } from './shadow-contract.js';
import { type ShadowBroker, startShadowBroker } from './shadow-responder.js';
import { waitFor } from './tls-broker.js';

/**
 * The SDK's IotShadowClientv2 glue (`createIotShadowService`) over the device SDK transport (MQTT
 * 3.1.1), against a broker that answers shadow requests the way IoT Core does.
 */
let fixture: ShadowBroker;
beforeAll(async () => {
  fixture = await startShadowBroker('pi-shadow');
});
afterAll(() => fixture?.close());

describeShadowClientContract(
  'IotShadowClientv2 over the device SDK transport',
  () => fixture.responder,
  async (thing, requestTimeoutMs) => {
    const transport = createAwsIotTransport({
      protocol: '3.1.1',
      ...fixture.target(thing),
    });
    const connected = waitFor('connected', (done) => transport.on('connected', () => done(undefined)));
    transport.start();
    await connected;
    const native = transport.native();
    if (!native) throw new Error('no native client');
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
