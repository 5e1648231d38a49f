import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AwsIotTransport, createAwsIotTransport } from '../../src/adapters/aws-iot-sdk.js';
import { contractOptions, describeTransportContract } from './contract.js';
import { makePki, startTlsBroker, type TestPki } from './tls-broker.js';

let pki: TestPki;
beforeAll(async () => {
  pki = await makePki('pi-test');
});
afterAll(() => pki?.cleanup());

const make = (port: number, clientId: string, extra: { will?: boolean } = {}): AwsIotTransport =>
  createAwsIotTransport({ protocol: '3.1.1', ...contractOptions(pki, port, clientId, extra) });

describeTransportContract('aws-iot-device-sdk-v2 transport', () => pki, make);

describe('aws-iot-device-sdk-v2 transport', () => {
  it('releases its native client on stop()', async () => {
    const broker = await startTlsBroker(pki);
    const t = make(broker.port, 'pi-native');
    const connected = new Promise<void>((resolve) => t.on('connected', () => resolve()));
    t.start();
    await connected;
    expect(t.native()).toBeDefined();
    await t.stop();
    expect(t.native()).toBeUndefined();
    await broker.close();
  });
});
