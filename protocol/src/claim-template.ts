import { certificateTopics, provisionTopics } from './fleet-provisioning-topics.js';
import { type IotPolicyDocument, RECOMMENDED_POLICY_NAME } from './policy.js';
import { isValidThingName } from './topics.js';

/**
 * pifleet's fleet-provisioning-by-claim template and the claim certificate's policy: the one file
 * set baked into an image carries a claim certificate that may do nothing but ask for a certificate
 * of its own and register it through this template, which names the thing after the Pi's serial
 * number, files it in a thing group and attaches the fleet's device policy.
 *
 * Shared by the CLI (`pifleet claims create` creates the template against the local core or AWS)
 * and the CDK stack (a `CfnProvisioningTemplate` from the same body), so both make the same thing.
 */

/** The template's name unless told otherwise (`pifleet claims create --template`). */
export const DEFAULT_CLAIM_TEMPLATE_NAME = 'pifleet-claim';

/** The thing group every claimed device lands in unless told otherwise. */
export const DEFAULT_CLAIMED_THING_GROUP = 'pifleet-claimed';

/** Things are named `<prefix><SerialNumber>`: `pi-10000000abcdef01`. */
export const DEFAULT_CLAIMED_THING_PREFIX = 'pi-';

/**
 * The template's parameters: the device facts the agent sends in RegisterThing (see the issue 20
 * contract for where a Pi reads them). The certificate ID is the pseudo parameter fleet
 * provisioning sets itself; a template may not declare it.
 */
export const CLAIM_TEMPLATE_PARAMETERS = {
  serialNumber: 'SerialNumber',
  model: 'Model',
  macAddress: 'MacAddress',
} as const;

const CERTIFICATE_ID = 'AWS::IoT::Certificate::Id';

export interface ClaimTemplateOptions {
  /** Default {@link DEFAULT_CLAIMED_THING_GROUP}. */
  readonly thingGroup?: string;
  /** The device policy attached to each device's certificate. Default `pifleet-device` (RECOMMENDED_POLICY_NAME). */
  readonly policyName?: string;
  /** Default {@link DEFAULT_CLAIMED_THING_PREFIX}. */
  readonly thingNamePrefix?: string;
}

/** The template body as JSON (what `templateBody` of CreateProvisioningTemplate holds, parsed). */
export interface ClaimTemplateBody {
  readonly Parameters: Readonly<Record<string, { readonly Type: 'String'; readonly Default?: string }>>;
  readonly Resources: Readonly<Record<string, unknown>>;
  readonly DeviceConfiguration: Readonly<Record<string, string>>;
}

/** Thing group names: 1–128 characters of `[a-zA-Z0-9:_-]` (CreateThingGroup). */
const THING_GROUP_PATTERN = /^[a-zA-Z0-9:_-]{1,128}$/;
/** Policy names: 1–128 characters of `[\w+=,.@-]` (CreatePolicy). */
const POLICY_NAME_PATTERN = /^[\w+=,.@-]{1,128}$/;
/**
 * A serial number is 16 hex digits on a Pi; the prefix leaves room for it and more within the
 * thing name's 128 characters, and uses the thing name's alphabet so that every name it makes is valid.
 */
const MAX_THING_NAME_PREFIX = 64;

function check(value: unknown, valid: boolean, what: string, rule: string): void {
  if (!valid) throw new TypeError(`invalid ${what} ${JSON.stringify(value)}: ${rule}`);
}

/**
 * The body of pifleet's provisioning template (a fleet provisioning template, to be created enabled):
 *
 * - parameters `SerialNumber` (required), `Model` (default "unknown"), `MacAddress` (default "");
 * - the thing `<prefix><SerialNumber>` with attributes serial, model (spaces as `_`) and mac, in
 *   the thing group;
 * - the certificate the device registers (`AWS::IoT::Certificate::Id`), made ACTIVE;
 * - the existing device policy, by name, attached to that certificate. The policy is scoped by
 *   `${iot:Connection.Thing.ThingName}`, so one policy serves every device and none needs its own.
 *
 * A Pi that is provisioned again (re-imaged: same serial, new certificate) finds its thing: the
 * attributes and groups are merged into it, so what an operator added to the thing stays.
 * The device configuration is empty: the agent needs only the thing name, which RegisterThing
 * answers with anyway.
 *
 * Throws a TypeError for an option IoT would refuse (so the CDK synth or the CLI fails at once).
 */
export function pifleetClaimTemplate(options: ClaimTemplateOptions = {}): ClaimTemplateBody {
  const thingGroup = options.thingGroup ?? DEFAULT_CLAIMED_THING_GROUP;
  const policyName = options.policyName ?? RECOMMENDED_POLICY_NAME;
  const prefix = options.thingNamePrefix ?? DEFAULT_CLAIMED_THING_PREFIX;
  check(
    thingGroup,
    THING_GROUP_PATTERN.test(thingGroup),
    'thing group name',
    'use 1-128 characters of a-z A-Z 0-9 : _ -',
  );
  check(
    policyName,
    POLICY_NAME_PATTERN.test(policyName),
    'policy name',
    'use 1-128 characters of a-z A-Z 0-9 _ + = , . @ -',
  );
  check(
    prefix,
    prefix === '' || (prefix.length <= MAX_THING_NAME_PREFIX && isValidThingName(prefix)),
    'thing name prefix',
    `use up to ${MAX_THING_NAME_PREFIX} characters of a-z A-Z 0-9 : _ -`,
  );
  const { serialNumber, model, macAddress } = CLAIM_TEMPLATE_PARAMETERS;
  return {
    Parameters: {
      [serialNumber]: { Type: 'String' },
      [model]: { Type: 'String', Default: 'unknown' },
      [macAddress]: { Type: 'String', Default: '' },
    },
    Resources: {
      thing: {
        Type: 'AWS::IoT::Thing',
        Properties: {
          ThingName: { 'Fn::Join': ['', [prefix, { Ref: serialNumber }]] },
          AttributePayload: {
            serial: { Ref: serialNumber },
            // A Pi's model has spaces ("Raspberry Pi 4 Model B Rev 1.4"), which an attribute value
            // may not (CreateThing: [a-zA-Z0-9_.,@/:#=[]-]); without a hook to clean it, every Pi
            // failed RegisterThing. The template language has no replace: split at spaces, join with _.
            model: { 'Fn::Join': ['_', { 'Fn::Split': [' ', { Ref: model }] }] },
            mac: { Ref: macAddress },
          },
          ThingGroups: [thingGroup],
        },
        OverrideSettings: { AttributePayload: 'MERGE', ThingGroups: 'MERGE' },
      },
      certificate: {
        Type: 'AWS::IoT::Certificate',
        Properties: { CertificateId: { Ref: CERTIFICATE_ID }, Status: 'ACTIVE' },
      },
      policy: {
        Type: 'AWS::IoT::Policy',
        Properties: { PolicyName: policyName },
      },
    },
    DeviceConfiguration: {},
  };
}

/** {@link pifleetClaimTemplate} as the string CreateProvisioningTemplate's `templateBody` takes. */
export function pifleetClaimTemplateBody(options: ClaimTemplateOptions = {}): string {
  return JSON.stringify(pifleetClaimTemplate(options));
}

/**
 * The client id a device connects with while it provisions starts with this (the agent and the
 * simulator use `pifleet-claim-<serial>`); the claim policy lets nothing else connect.
 */
export const CLAIM_CLIENT_ID_PREFIX = 'pifleet-claim-';

/** Where the claim policy's ARNs point: the parts, or a ready prefix such as `arn:aws:iot:eu-west-1:123456789012`. */
export type ClaimPolicyScope =
  | { readonly partition?: string; readonly region: string; readonly accountId: string }
  | { readonly arnPrefix: string };

export type ClaimPolicyOptions = ClaimPolicyScope & {
  /** The template the claim may register through. Default {@link DEFAULT_CLAIM_TEMPLATE_NAME}. */
  readonly templateName?: string;
};

/**
 * The claim certificate's policy, least privilege: connect, and publish, receive and subscribe on
 * the two certificate requests and this template's RegisterThing, each with its answers (`/*`:
 * `json`, `json/accepted`, `json/rejected`), and nothing else — no thing topics, no shadows, no jobs,
 * no other template. This is AWS's claim policy ("Provisioning by claim", AWS IoT Developer Guide)
 * with the ARNs spelled out.
 *
 * Connect is granted for client ids that start with {@link CLAIM_CLIENT_ID_PREFIX} only. The
 * device has no identity yet, only the claim certificate every device of the image shares, so no
 * policy variable can name its client id (`${iot:Connection.Thing.ThingName}` is empty: the claim
 * certificate is attached to no thing). AWS's example grants `*`, but IoT Core drops a connection
 * when another connects with its client id: with `*`, anyone holding a leaked claim certificate
 * (it is in every image) could connect as `pi-<serial>` again and again and keep that device off
 * the broker. With the prefix, a claim connection can only ever take over another claim connection.
 * Region and account are taken as given (a CDK token is a string too); the template name is checked.
 */
export function claimPolicyDocument(options: ClaimPolicyOptions): IotPolicyDocument {
  const templateName = options.templateName ?? DEFAULT_CLAIM_TEMPLATE_NAME;
  const prefix =
    'arnPrefix' in options
      ? options.arnPrefix.replace(/:$/, '')
      : `arn:${options.partition ?? 'aws'}:iot:${options.region}:${options.accountId}`;
  // Each request topic `…/json` as `…/*`: the request and its accepted and rejected answers.
  const topics = [
    certificateTopics.create.request,
    certificateTopics.createFromCsr.request,
    provisionTopics(templateName).request,
  ].map((request) => `${request.slice(0, request.lastIndexOf('/'))}/*`);
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'ConnectToProvision',
        Effect: 'Allow',
        Action: 'iot:Connect',
        Resource: `${prefix}:client/${CLAIM_CLIENT_ID_PREFIX}*`,
      },
      {
        Sid: 'ProvisioningRequests',
        Effect: 'Allow',
        Action: ['iot:Publish', 'iot:Receive'],
        Resource: topics.map((t) => `${prefix}:topic/${t}`),
      },
      {
        Sid: 'ProvisioningAnswers',
        Effect: 'Allow',
        Action: 'iot:Subscribe',
        Resource: topics.map((t) => `${prefix}:topicfilter/${t}`),
      },
    ],
  };
}
