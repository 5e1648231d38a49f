import { readFileSync } from 'node:fs';
import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreateKeysAndCertificateCommand,
  type CreateKeysAndCertificateCommandOutput,
  CreatePolicyCommand,
  CreateThingCommand,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import { appTopics, recommendedDevicePolicy } from '@pifleet/protocol';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

async function provision(thingName: string) {
  const { iot, info } = run;
  await iot.send(new CreateThingCommand({ thingName }));
  const cert = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
  await iot.send(
    new CreatePolicyCommand({
      policyName: `policy-${thingName}`,
      policyDocument: JSON.stringify(recommendedDevicePolicy(info.region, info.accountId)),
    }),
  );
  await iot.send(new AttachPolicyCommand({ policyName: `policy-${thingName}`, target: cert.certificateArn }));
  await iot.send(new AttachThingPrincipalCommand({ thingName, principal: cert.certificateArn }));
  return cert;
}

function connect(thingName: string, cert: CreateKeysAndCertificateCommandOutput) {
  return mqtt.connect({
    protocol: 'mqtts',
    host: run.info.mqtt.host,
    port: run.info.mqtt.port,
    clientId: thingName,
    ca: readFileSync(run.info.caFile),
    cert: cert.certificatePem as string,
    key: cert.keyPair?.PrivateKey as string,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
  });
}

describe('createLocalIotCore', () => {
  it('lets a provisioned device connect over mutual TLS and publish its telemetry with QoS 1', async () => {
    const cert = await provision('pi-e2e');
    const client = connect('pi-e2e', cert);
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
      client.once('close', () => reject(new Error('closed before CONNACK')));
    });
    await client.publishAsync(appTopics.telemetry('pi-e2e'), '{}', { qos: 1 });
    await client.endAsync();
  });

  it('refuses the same device once its certificate is INACTIVE', async () => {
    const cert = await provision('pi-off');
    await run.iot.send(new UpdateCertificateCommand({ certificateId: cert.certificateId, newStatus: 'INACTIVE' }));
    const client = connect('pi-off', cert);
    const outcome = await new Promise<string>((resolve) => {
      client.once('connect', () => resolve('connected'));
      client.once('error', (err) => resolve(`error: ${err.message}`));
      client.once('close', () => resolve('closed'));
    });
    expect(outcome).not.toBe('connected');
    client.end(true);
  });
});
