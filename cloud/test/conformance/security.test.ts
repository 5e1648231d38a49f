import path from 'node:path';
import { UpdateCertificateCommand } from '@aws-sdk/client-iot';
import { appTopics, LIMITS } from '@pifleet/protocol';
import { mqtt } from 'aws-iot-device-sdk-v2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certificateIdOf, loadOrCreateCa } from '../../src/ca/local-ca.js';
import { removeDir, tempDir } from '../../src/testing/in-process-core.js';
import { type Core, closeQuietly, connectDevice, type Device, provisionThing, startCore, within } from './harness.js';

/**
 * Issue 3's negative cases end to end: the composed local core (registry, CA, broker with IoT
 * policies), certificates issued by its control plane through the real `@aws-sdk/client-iot`, and
 * the real device SDK (MQTT 3.1.1 over mutual TLS) as the client.
 */

let dir: string;
let core: Core;

beforeAll(async () => {
  dir = tempDir('security');
  core = await startCore('security-core');
});

afterAll(async () => {
  await core?.stop();
  removeDir(dir);
});

/** Resolves when the broker drops the connection. */
function interrupted(connection: mqtt.MqttClientConnection): Promise<void> {
  return new Promise((resolve) => connection.once('interrupt', () => resolve()));
}

async function setStatus(device: Device, newStatus: 'ACTIVE' | 'INACTIVE' | 'REVOKED'): Promise<void> {
  await core.iot.send(new UpdateCertificateCommand({ certificateId: certificateIdOf(device.certPem), newStatus }));
}

describe('local IoT Core security with the device SDK', () => {
  it('lets a device publish its own telemetry and disconnects it for publishing as another thing', async () => {
    const a = await provisionThing(core, 'sec-a');
    await provisionThing(core, 'sec-b');
    const connection = await connectDevice(core, a);
    try {
      await within(
        connection.publish(appTopics.telemetry('sec-a'), '{"ok":true}', mqtt.QoS.AtLeastOnce),
        10_000,
        'own publish acknowledged',
      );
      const dropped = interrupted(connection);
      void connection.publish(appTopics.telemetry('sec-b'), '{"spoof":true}', mqtt.QoS.AtLeastOnce).catch(() => {});
      await within(dropped, 10_000, 'connection closed after a denied publish');
    } finally {
      await closeQuietly(connection);
    }
  });

  it('refuses a certificate from a CA the core does not know', async () => {
    const foreign = await loadOrCreateCa({ dir: path.join(dir, 'foreign-ca'), now: Date.now });
    const issued = await foreign.createKeysAndCertificate();
    const stranger: Device = {
      thingName: 'sec-stranger',
      certPem: issued.certificatePem,
      keyPem: issued.privateKeyPem,
    };
    await expect(connectDevice(core, stranger)).rejects.toThrow();
  });

  it.each(['INACTIVE', 'REVOKED'] as const)('refuses an %s certificate', async (status) => {
    const device = await provisionThing(core, `sec-${status.toLowerCase()}`);
    await closeQuietly(await connectDevice(core, device)); // accepted while ACTIVE
    await setStatus(device, status);
    await expect(connectDevice(core, device)).rejects.toThrow();
  });

  it('closes an open session when its certificate becomes INACTIVE', async () => {
    const device = await provisionThing(core, 'sec-live');
    const connection = await connectDevice(core, device);
    try {
      const dropped = interrupted(connection);
      await setStatus(device, 'INACTIVE');
      await within(dropped, 10_000, 'session closed after UpdateCertificate INACTIVE');
    } finally {
      await closeQuietly(connection);
    }
  });

  it('disconnects a device that publishes more than 128 KB', async () => {
    const device = await provisionThing(core, 'sec-big');
    const connection = await connectDevice(core, device);
    try {
      const dropped = interrupted(connection);
      const payload = Buffer.alloc(LIMITS.maxMessageBytes + 1, 0x61);
      void connection.publish(appTopics.telemetry('sec-big'), payload, mqtt.QoS.AtLeastOnce).catch(() => {});
      await within(dropped, 10_000, 'connection closed after an oversize publish');
    } finally {
      await closeQuietly(connection);
    }
  });
});
