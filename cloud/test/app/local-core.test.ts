import { UpdateCertificateCommand } from '@aws-sdk/client-iot';
import { appTopics } from '@pifleet/protocol';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalIotCore } from '../../src/app/local-core.js';
import { loadLocalCoreConfig } from '../../src/config/local-core.js';
import { sdkClients } from '../../src/testing/in-process-core.js';
import { type ProvisionedThing, provisionThing } from '../../src/testing/provision.js';
import { thingMqttOptions } from '../../src/testing/thing-mqtt.js';
import { type RunningCore, removeDir, startCore, tempDir } from '../http/harness.js';

/** The composed core: a certificate from the control plane opens an mTLS MQTT session on its broker. */

let dir: string;
let run: RunningCore;

beforeAll(async () => {
  dir = tempDir('local-core');
  run = await startCore(dir);
});
afterAll(async () => {
  await run?.stop();
  removeDir(dir);
});

/** A provisioned thing's MQTT client over mutual TLS. */
const connect = (thing: ProvisionedThing) => mqtt.connect(thingMqttOptions(run.info, thing));

describe('createLocalIotCore', () => {
  it('lets a provisioned device connect over mutual TLS and publish its telemetry with QoS 1', async () => {
    const client = connect(await provisionThing(run, 'pi-e2e'));
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
      client.once('close', () => reject(new Error('closed before CONNACK')));
    });
    await client.publishAsync(appTopics.telemetry('pi-e2e'), '{}', { qos: 1 });
    await client.endAsync();
  });

  it('refuses the same device once its certificate is INACTIVE', async () => {
    const thing = await provisionThing(run, 'pi-off');
    const certificateId = thing.certificateArn.slice(thing.certificateArn.lastIndexOf('/') + 1);
    await run.iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'INACTIVE' }));
    const client = connect(thing);
    const outcome = await new Promise<string>((resolve) => {
      client.once('connect', () => resolve('connected'));
      client.once('error', (err) => resolve(`error: ${err.message}`));
      client.once('close', () => resolve('closed'));
    });
    expect(outcome).not.toBe('connected');
    client.end(true);
  });
});

describe('--persistent-session-expiry', () => {
  it('caps the session expiry the broker grants an MQTT 5 persistent session', async () => {
    const own = tempDir('session-expiry');
    const parsed = loadLocalCoreConfig(
      ['--data-dir', own, '--mqtt-port', '0', '--http-port', '0', '--persistent-session-expiry', '120'],
      {},
    );
    if (parsed.help || parsed.version) throw new Error('unexpected help or version');
    const core = createLocalIotCore({ config: parsed.config });
    const info = await core.start();
    const { iot, data } = sdkClients(info);
    try {
      const thing = await provisionThing({ iot, info }, 'pi-expiry');
      // Asks for IoT Core's 7-day maximum; the CONNACK says what the session really gets.
      const client = mqtt.connect({
        ...thingMqttOptions(info, thing),
        protocolVersion: 5,
        clean: false,
        properties: { sessionExpiryInterval: 604_800 },
      });
      const connack = await new Promise<mqtt.IConnackPacket>((resolve, reject) => {
        client.once('connect', resolve);
        client.once('error', reject);
        client.once('close', () => reject(new Error('closed before CONNACK')));
      });
      await client.endAsync();
      expect(connack.properties?.sessionExpiryInterval).toBe(120);
    } finally {
      iot.destroy();
      data.destroy();
      await core.stop();
      removeDir(own);
    }
  });
});
