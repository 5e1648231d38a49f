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

export interface DeviceRegistry {
  describeThing(thingName: string): Promise<ThingRecord | undefined>;
  /** Creates a thing; an existing thing with the same name is not an error. */
  createThing(thingName: string, attributes: Readonly<Record<string, string>>): Promise<ThingRecord>;
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
