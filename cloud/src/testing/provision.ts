import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreateKeysAndCertificateCommand,
  CreatePolicyCommand,
  CreateThingCommand,
  type IoTClient,
} from '@aws-sdk/client-iot';
import { type IotPolicyDocument, recommendedDevicePolicy } from '@pifleet/protocol';
import type { LocalCoreInfo } from '../app/local-core.js';

/** A provisioned thing: its certificate and private key (PEM) as CreateKeysAndCertificate returned them. */
export interface ProvisionedThing {
  readonly thingName: string;
  readonly certificateArn: string;
  readonly certPem: string;
  readonly keyPem: string;
}

export interface ProvisionOptions {
  /** The policy document to create (default: the recommended device policy of the core's account). */
  readonly policy?: IotPolicyDocument;
  /** Default `pifleet-device-<thingName>`. */
  readonly policyName?: string;
  /** False: attach `policyName`, created before (by another thing's provisioning). Default true. */
  readonly createPolicy?: boolean;
}

/**
 * Provisions a thing the way the provisioning CLI does against AWS, through the real
 * `@aws-sdk/client-iot`: CreateThing, CreateKeysAndCertificate (active), CreatePolicy, AttachPolicy,
 * AttachThingPrincipal.
 */
export async function provisionThing(
  /** `info` names the account of the recommended policy; not needed with `policy` or `createPolicy: false`. */
  core: { readonly iot: IoTClient; readonly info?: Pick<LocalCoreInfo, 'region' | 'accountId'> },
  thingName: string,
  options: ProvisionOptions = {},
): Promise<ProvisionedThing> {
  const { iot, info } = core;
  await iot.send(new CreateThingCommand({ thingName }));
  const cert = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
  if (!cert.certificateArn || !cert.certificatePem || !cert.keyPair?.PrivateKey) {
    throw new Error(`CreateKeysAndCertificate for ${thingName} returned no certificate or key`);
  }
  const policyName = options.policyName ?? `pifleet-device-${thingName}`;
  if (options.createPolicy !== false) {
    const document = options.policy ?? (info && recommendedDevicePolicy(info.region, info.accountId));
    if (!document) throw new Error(`provisioning ${thingName}: no policy document and no account to make one for`);
    await iot.send(new CreatePolicyCommand({ policyName, policyDocument: JSON.stringify(document) }));
  }
  await iot.send(new AttachPolicyCommand({ policyName, target: cert.certificateArn }));
  await iot.send(new AttachThingPrincipalCommand({ thingName, principal: cert.certificateArn }));
  return {
    thingName,
    certificateArn: cert.certificateArn,
    certPem: cert.certificatePem,
    keyPem: cert.keyPair.PrivateKey,
  };
}
