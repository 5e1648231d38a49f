import type { IotPolicyDocument } from '@pifleet/protocol';

/**
 * The port between the registry (things, certificates, policies) and the MQTT broker.
 * The registry implements it; the broker uses it to authenticate and authorize every client.
 */

/** Certificate status values as the IoT control plane reports them. */
export type CertificateStatus =
  | 'ACTIVE'
  | 'INACTIVE'
  | 'REVOKED'
  | 'PENDING_TRANSFER'
  | 'REGISTER_ACTIVE'
  | 'REGISTER_INACTIVE'
  | 'PENDING_ACTIVATION';

export interface AttachedPolicy {
  readonly name: string;
  readonly document: IotPolicyDocument;
}

/** What the broker needs to know about the certificate a client presented. */
export interface DeviceIdentity {
  /** Lowercase hex SHA-256 of the certificate's DER encoding (AWS's certificateId). */
  readonly certificateId: string;
  /** `arn:aws:iot:{region}:{account}:cert/{certificateId}` */
  readonly certificateArn: string;
  readonly status: CertificateStatus;
  /** Things this certificate (principal) is attached to. */
  readonly thingNames: readonly string[];
  /** Policies attached to this certificate, with their current default version's document. */
  readonly policies: readonly AttachedPolicy[];
  /**
   * Registry facts of the attached things, by thing name: what `${iot:Connection.Thing.*}`
   * variables read and which thing-group policies apply. Absent = no facts (only names known).
   */
  readonly things?: ReadonlyMap<string, ThingFacts>;
}

/** What policy evaluation may know about one thing attached to a certificate. */
export interface ThingFacts {
  readonly attributes: Readonly<Record<string, string>>;
  readonly thingTypeName?: string;
  /**
   * Policies attached to the thing groups the thing is in, and to their ancestors. IoT Core applies
   * them only to a connection whose client id is this thing's name (the thing-policy-variable rule).
   */
  readonly groupPolicies: readonly AttachedPolicy[];
}

export interface IdentityDirectory {
  /** The identity of a certificate the registry holds, or undefined. Cheap enough to call per message. */
  identityOf(certificateId: string): DeviceIdentity | undefined;
  /**
   * Calls `listener(certificateId)` whenever something that can change a certificate's access
   * changes: its status, its policy or thing attachments, a policy's document, or its deletion.
   * Returns a function that removes the listener.
   */
  onIdentityChange(listener: (certificateId: string) => void): () => void;
}

/** The broker's TLS material, issued by the local CA. */
export interface ServerTlsMaterial {
  readonly caCertPem: string;
  readonly serverCertPem: string;
  readonly serverKeyPem: string;
}

/** Where the local IoT Core pretends to live, for ARNs and policy resources. */
export interface AccountContext {
  readonly region: string;
  readonly accountId: string;
}
