/**
 * The payloads of fleet provisioning's MQTT API and of the pre-provisioning hook, as the AWS IoT
 * Developer Guide gives them ("Device provisioning MQTT API", "Pre-provisioning hooks"), shared by
 * the local core that answers them and the agent that sends them.
 *
 *   CreateKeysAndCertificate   request `{}`; accepted {@link CreateKeysAndCertificateResponse}
 *   CreateCertificateFromCsr   request {@link CreateCertificateFromCsrRequest}; accepted {@link CreateCertificateFromCsrResponse}
 *   RegisterThing              request {@link RegisterThingRequest}; accepted {@link RegisterThingResponse}
 *   every rejection            {@link ProvisioningErrorResponse}
 */

export interface CreateKeysAndCertificateResponse {
  readonly certificateId: string;
  readonly certificatePem: string;
  readonly privateKey: string;
  readonly certificateOwnershipToken: string;
}

export interface CreateCertificateFromCsrRequest {
  readonly certificateSigningRequest: string;
}

export interface CreateCertificateFromCsrResponse {
  readonly certificateId: string;
  readonly certificatePem: string;
  readonly certificateOwnershipToken: string;
}

export interface RegisterThingRequest {
  readonly certificateOwnershipToken: string;
  /** The template's parameters (strings only), which the pre-provisioning hook sees as well. */
  readonly parameters?: Readonly<Record<string, string>>;
}

export interface RegisterThingResponse {
  /** The template's `DeviceConfiguration`, evaluated (a map of strings; empty when it has none). */
  readonly deviceConfiguration: Readonly<Record<string, string>>;
  /** The thing the template created or found (absent when the template has no thing). */
  readonly thingName?: string;
}

/** A rejection on `…/rejected`, as the device SDK's `ErrorResponse` models it. */
export interface ProvisioningErrorResponse {
  readonly statusCode: number;
  readonly errorCode: string;
  readonly errorMessage: string;
}

/**
 * The error codes the local core answers with. AWS documents the response's shape, not its codes;
 * these are the local core's choice, named after the IoT API's exceptions where one fits. A device
 * should treat 4xx as final for the request it sent (except 429) and 429/5xx as retryable.
 */
export const PROVISIONING_ERROR_CODES = {
  /** 400: not UTF-8, not JSON, not an object, too deep, a missing or mistyped field. */
  invalidPayload: 'InvalidPayload',
  /** 400: a CSR that cannot be read or whose key is not allowed. */
  invalidCsr: 'InvalidCSR',
  /** 400: the certificate ownership token is unknown, used already or expired: ask for a new certificate. */
  invalidToken: 'InvalidCertificateOwnershipToken',
  /** 404: no provisioning template of that name. */
  templateNotFound: 'ResourceNotFound',
  /** 400: the template is disabled, or is not a fleet provisioning template. */
  invalidRequest: 'InvalidRequest',
  /** 403: the pre-provisioning hook denied the request, failed or did not answer in time. */
  accessDenied: 'AccessDenied',
  /** 400: the template could not be evaluated with these parameters, or a resource it names is missing. */
  registrationFailure: 'ResourceRegistrationFailure',
  /** 409: an existing resource conflicts with the template (an override setting of FAIL, another thing's certificate). */
  conflict: 'ConflictingResourceUpdate',
  /** 429: too many requests outstanding. */
  throttling: 'Throttling',
  /** 500: anything else. */
  internalFailure: 'InternalFailure',
} as const;

export type ProvisioningErrorCode = (typeof PROVISIONING_ERROR_CODES)[keyof typeof PROVISIONING_ERROR_CODES];

/** Whether a rejection may succeed if the same request is sent again later. */
export function isRetryableProvisioningError(error: Pick<ProvisioningErrorResponse, 'statusCode'>): boolean {
  return error.statusCode === 429 || error.statusCode >= 500;
}

/** What IoT sends the pre-provisioning hook (a Lambda in AWS, a function in the local core). */
export interface PreProvisioningHookEvent {
  readonly claimCertificateId: string;
  readonly certificateId: string;
  readonly certificatePem: string;
  readonly templateArn: string;
  readonly clientId: string;
  readonly parameters: Readonly<Record<string, string>>;
}

/** What the hook answers: provisioning goes on only with `allowProvisioning: true`. */
export interface PreProvisioningHookResult {
  readonly allowProvisioning: boolean;
  /** Added to (and replacing) the request's parameters before the template is evaluated. */
  readonly parameterOverrides?: Readonly<Record<string, string>>;
}

/** AWS: the hook must return within 5 seconds, or the request fails. */
export const PRE_PROVISIONING_HOOK_TIMEOUT_MS = 5_000;

/** RegisterThing's parameters: keys 0–2,048 characters, values 0–4,096 (the HTTP RegisterThing's constraints). */
export const REGISTER_THING_LIMITS = { maxKeyChars: 2048, maxValueChars: 4096 } as const;
