import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadOrCreateCa } from '@pifleet/cloud';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSimulatedDevice, parseAgentConfig, simulatedConfigInput } from '../../src/agents/simulated-device.js';
import { writeCredential } from '../helpers.js';

/** Simulated devices speak MQTT 5 by default, as a real Pi's agent does; 3.1.1 stays an option. */
let dir: string;
let files: { certFile: string; keyFile: string; caFile: string };
beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-sim-device-'));
  const ca = await loadOrCreateCa({ dir: path.join(dir, 'ca'), now: Date.now });
  const keys = await ca.createKeysAndCertificate();
  const write = (name: string, text: string) => writeCredential(dir, name, text);
  files = {
    certFile: write('cert.pem', keys.certificatePem),
    keyFile: write('key.pem', keys.privateKeyPem),
    caFile: ca.caFile,
  };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const options = () => ({ thingName: 'sim-proto', endpoint: '127.0.0.1', port: 1, ...files });

describe('simulated device MQTT version', () => {
  it.each([
    ['by default', {}, '5'],
    ['mqttProtocol 5', { mqttProtocol: '5' as const }, '5'],
    ['mqttProtocol 3.1.1', { mqttProtocol: '3.1.1' as const }, '3.1.1'],
  ])('%s → the agent config says %s, and its transport speaks it', async (_what, extra, protocol) => {
    const config = parseAgentConfig(simulatedConfigInput({ ...options(), ...extra }));
    expect(config.mqtt.protocol).toBe(protocol);
    // Nothing listens on port 1: the device starts connecting in the background; no broker needed
    // to see which client the transport built.
    const device = createSimulatedDevice({ config, seed: 1 });
    await device.start();
    try {
      expect(device.transport.protocol).toBe(protocol);
    } finally {
      await device.stop();
    }
  });
});
