import type { IotPolicyDocument } from '@pifleet/protocol';

/**
 * The IoT control-plane operations the CLI uses (things, certificates, policies). The AWS SDK
 * adapter implements it for AWS IoT Core and the local IoT Core alike. "Not found" is a value
 * (`undefined`/`false`), never an exception; other failures throw the SDK's error.
 */

export interface ThingRecord {
  readonly thingName: string;
  readonly thingArn?: string;
  readonly attributes: Readonly<Record<string, string>>;
  readonly version?: number;
  readonly thingTypeName?: string;
}

/** A thing type as the CLI needs it: does it exist, may new things have it. */
export interface ThingTypeRecord {
  readonly thingTypeName: string;
  readonly deprecated: boolean;
}

export interface ThingGroupRecord {
  readonly thingGroupName: string;
  readonly thingGroupArn: string;
  readonly parentGroupName?: string;
  readonly description?: string;
  /** Ancestors from the root down to the parent. */
  readonly path: readonly string[];
  readonly attributes: Readonly<Record<string, string>>;
}

/**
 * Thing types and static thing groups (AWS IoT's registry). "Not found" is a value here too:
 * `undefined` or `false`.
 */
export interface ThingGroupRegistry {
  describeThingType(thingTypeName: string): Promise<ThingTypeRecord | undefined>;
  /** Creates a thing type without properties; an existing one is not an error. */
  createThingType(thingTypeName: string): Promise<void>;
  /** Gives an existing thing a thing type (UpdateThing). */
  setThingType(thingName: string, thingTypeName: string): Promise<void>;

  describeThingGroup(thingGroupName: string): Promise<ThingGroupRecord | undefined>;
  /** Creates a group (under `parentGroupName`); the same group again is not an error. */
  createThingGroup(
    thingGroupName: string,
    options: { parentGroupName?: string; description?: string },
  ): Promise<ThingGroupRecord>;
  /** Group names: every group, or the children of `parentGroup` (all descendants with `recursive`). */
  listThingGroups(options: { parentGroup?: string; recursive?: boolean }): Promise<string[]>;
  /** Returns false when there was no such group. */
  deleteThingGroup(thingGroupName: string): Promise<boolean>;
  addThingToThingGroup(thingGroupName: string, thingName: string): Promise<void>;
  removeThingFromThingGroup(thingGroupName: string, thingName: string): Promise<void>;
  listThingsInThingGroup(thingGroupName: string, recursive: boolean): Promise<string[]>;
  /** Names of the groups a thing is directly in (empty when the thing does not exist). */
  listThingGroupsForThing(thingName: string): Promise<string[]>;
}

export interface CertificateRecord {
  readonly certificateId: string;
  readonly certificateArn: string;
  readonly status: string;
  readonly creationDate?: Date;
  readonly certificatePem?: string;
}

export interface IssuedCertificate {
  readonly certificateId: string;
  readonly certificateArn: string;
  readonly certificatePem: string;
  /** Present for CreateKeysAndCertificate; absent when the device made the key (CSR). */
  readonly privateKeyPem?: string;
}

export interface ThingPage {
  readonly things: readonly ThingRecord[];
  readonly nextToken?: string;
}

export interface DeviceRegistry extends ThingGroupRegistry {
  describeThing(thingName: string): Promise<ThingRecord | undefined>;
  /** Creates a thing; an existing thing with the same name is not an error. */
  createThing(
    thingName: string,
    attributes: Readonly<Record<string, string>>,
    thingTypeName?: string,
  ): Promise<ThingRecord>;
  /** Merges attributes into a thing's. */
  updateThingAttributes(thingName: string, attributes: Readonly<Record<string, string>>): Promise<void>;
  /** Returns false when the thing did not exist. */
  deleteThing(thingName: string): Promise<boolean>;
  listThings(page: { maxResults?: number; nextToken?: string }): Promise<ThingPage>;
  /** Principal ARNs attached to a thing (empty when the thing does not exist). */
  listThingPrincipals(thingName: string): Promise<string[]>;
  attachThingPrincipal(thingName: string, principalArn: string): Promise<void>;
  /** Returns false when there was nothing to detach. */
  detachThingPrincipal(thingName: string, principalArn: string): Promise<boolean>;

  createKeysAndCertificate(): Promise<IssuedCertificate>;
  createCertificateFromCsr(csrPem: string): Promise<IssuedCertificate>;
  describeCertificate(certificateId: string): Promise<CertificateRecord | undefined>;
  setCertificateStatus(certificateId: string, status: 'ACTIVE' | 'INACTIVE'): Promise<void>;
  /** Returns false when the certificate did not exist. */
  deleteCertificate(certificateId: string): Promise<boolean>;

  /** The policy's current document, or undefined. */
  getPolicy(policyName: string): Promise<IotPolicyDocument | undefined>;
  /** Creates a policy; an existing policy with the same name is not an error. */
  createPolicy(policyName: string, document: IotPolicyDocument): Promise<void>;
  attachPolicy(policyName: string, targetArn: string): Promise<void>;
  detachPolicy(policyName: string, targetArn: string): Promise<void>;
  listAttachedPolicies(targetArn: string): Promise<string[]>;

  /** The account's endpoint address of this type (`iot:Data-ATS` for devices). */
  describeEndpoint(endpointType: string): Promise<string>;
}
