import path from 'node:path';
import { type MqttProtocol, provisionTopics } from '@pifleet/protocol';
import { InputError, UsageError } from '../errors.js';
import { BUNDLE_FILES } from './bundle.js';

/**
 * A claim bundle: the one file set baked into every image of a fleet provisioned by claim. It
 * holds the claim certificate and key every device of the image shares, the CA to trust, and an
 * agent config with a `provisioning` section and no thing name: on first boot the agent asks for
 * a certificate of its own with the claim certificate, registers through the template, writes its
 * certificate and key where `certFile`/`keyFile` say, and sets `thingName` in the config.
 * Pure: names, paths and the config's content.
 */
export const CLAIM_BUNDLE_FILES = {
  claimCertificate: 'claim.pem.crt',
  claimPrivateKey: 'claim.pem.key',
  ca: BUNDLE_FILES.ca,
  agentConfig: BUNDLE_FILES.agentConfig,
  unit: BUNDLE_FILES.unit,
} as const;

/** Where claim bundles go without `--out` (under `.pifleet/`, git-ignored: a bundle holds a private key). */
export const DEFAULT_CLAIMS_DIR = '.pifleet/claims';

/** The payload version AWS documents for the pre-provisioning hook (ProvisioningHook.payloadVersion). */
export const HOOK_PAYLOAD_VERSION = '2020-04-01';

/** A provisioning template name, or exit 65 with the rule (the pattern of CreateProvisioningTemplate). */
export function parseTemplateName(raw: string): string {
  try {
    provisionTopics(raw);
  } catch {
    throw new InputError(`invalid provisioning template name ${JSON.stringify(raw)}`, {
      hint: 'use 1-36 characters of a-z A-Z 0-9 _ -',
    });
  }
  return raw;
}

/** The claim certificate's policy is named after its template: it grants that template's topics only. */
export function claimPolicyName(templateName: string): string {
  return `${templateName}-claim-policy`;
}

const LAMBDA_ARN = /^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[\w-]{1,64}(:[\w$-]{1,128})?$/;
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;

/** `--hook-arn`: a Lambda function's ARN (the pre-provisioning hook IoT invokes). */
export function parseHookArn(raw: string): string {
  if (!LAMBDA_ARN.test(raw)) {
    throw new UsageError(`--hook-arn ${JSON.stringify(raw)} is not a Lambda function ARN`, {
      hint: 'arn:aws:lambda:REGION:ACCOUNT:function:NAME (locally: ...:function:pifleet-provisioning-hook)',
    });
  }
  return raw;
}

/** `--role-arn`: the IAM role IoT assumes to create things and attach policies when a device registers. */
export function parseProvisioningRoleArn(raw: string): string {
  if (!ROLE_ARN.test(raw)) {
    throw new UsageError(`--role-arn ${JSON.stringify(raw)} is not an IAM role ARN`, {
      hint: 'arn:aws:iam::ACCOUNT:role/NAME: the role IoT assumes to provision (the stack output ProvisioningRoleArn)',
    });
  }
  return raw;
}

/**
 * The role ARN a template on the local core is created with: the local core checks only its
 * length (20–2,048 characters) and provisions with its own registry, so any name of the account does.
 */
export function localProvisioningRoleArn(accountId: string): string {
  return `arn:aws:iam::${accountId}:role/pifleet-local-provisioning`;
}

/** `arn:PARTITION:iot:REGION:ACCOUNT` of an IoT resource's ARN (the prefix the claim policy's ARNs take). */
export function iotArnPrefix(arn: string): { readonly prefix: string; readonly accountId: string } | undefined {
  const m = /^(arn:aws[a-z-]*:iot:[a-z0-9-]+:([^:]+)):.+$/.exec(arn);
  if (!m?.[1] || !m[2]) return undefined;
  return { prefix: m[1], accountId: m[2] };
}

export interface ClaimAgentConfigOptions {
  readonly templateName: string;
  readonly endpoint: string;
  readonly port: number;
  readonly mqttProtocol: MqttProtocol;
  /** Where the bundle's files will be on the device; the device's own certificate and key go there too. */
  readonly installDir: string;
  readonly outboxPath?: string;
}

/**
 * The agent config of a claim bundle (device-agent's `agentConfigSchema` input): no `thingName`
 * (RegisterThing answers it), `certFile`/`keyFile` where the device's own certificate and key
 * will be written, the claim files in `provisioning`, method and parameters left to the agent's
 * defaults (a CSR made on the device; the Pi's serial, model and MAC address).
 */
export function buildClaimAgentConfig(o: ClaimAgentConfigOptions): Record<string, unknown> {
  const file = (name: string) => path.posix.join(o.installDir, name);
  return {
    endpoint: o.endpoint,
    port: o.port,
    certFile: file(BUNDLE_FILES.certificate),
    keyFile: file(BUNDLE_FILES.privateKey),
    caFile: file(CLAIM_BUNDLE_FILES.ca),
    mqtt: { protocol: o.mqttProtocol },
    ...(o.outboxPath !== undefined ? { outbox: { path: o.outboxPath } } : {}),
    sensors: [],
    outputs: [],
    provisioning: {
      templateName: o.templateName,
      claimCertFile: file(CLAIM_BUNDLE_FILES.claimCertificate),
      claimKeyFile: file(CLAIM_BUNDLE_FILES.claimPrivateKey),
    },
  };
}

export function renderClaimAgentConfig(o: ClaimAgentConfigOptions): string {
  return `${JSON.stringify(buildClaimAgentConfig(o), null, 2)}\n`;
}
