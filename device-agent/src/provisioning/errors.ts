import { isRetryableProvisioningError, type ProvisioningErrorResponse } from '@pifleet/protocol';
import { AgentError } from '../errors.js';

/**
 * Fleet provisioning failed. Thrown as itself when a request never got an answer (the connection
 * was lost, no answer within the request timeout, the client was closed, an answer that is not
 * the service's); {@link ProvisioningRejectedError} when the service said no.
 */
export class ProvisioningError extends AgentError {
  override name = 'ProvisioningError';
}

/** The operations of fleet provisioning's MQTT API, as logs and errors name them. */
export type IdentityOperation = 'CreateCertificateFromCsr' | 'CreateKeysAndCertificate' | 'RegisterThing';

/**
 * The service answered on `/rejected`: its `statusCode`, `errorCode` and `errorMessage` as sent. 429
 * and 5xx may succeed later ({@link retryable}); any other 4xx is final for the request sent.
 */
export class ProvisioningRejectedError extends ProvisioningError {
  override name = 'ProvisioningRejectedError';
  readonly operation: IdentityOperation;
  readonly statusCode: number;
  readonly errorCode: string;
  readonly errorMessage: string;
  /** The template parameters a refused RegisterThing carried, when the caller knows them (for the operator's hint). */
  parametersSent: Readonly<Record<string, string>> | undefined;

  constructor(operation: IdentityOperation, rejection: ProvisioningErrorResponse, options: { cause?: unknown } = {}) {
    super('PROVISIONING_REJECTED', `${operation} rejected: ${rejection.errorCode}: ${rejection.errorMessage}`, {
      ...options,
      data: { operation, ...rejection },
    });
    this.operation = operation;
    this.statusCode = rejection.statusCode;
    this.errorCode = rejection.errorCode;
    this.errorMessage = rejection.errorMessage;
  }

  get retryable(): boolean {
    return isRetryableProvisioningError(this);
  }
}

/** Provisioning did not finish within its time (`provisioning.timeoutSeconds`); `lastError` says what failed last. */
export class ProvisioningTimeoutError extends ProvisioningError {
  override name = 'ProvisioningTimeoutError';
  constructor(timeoutMs: number, step: string, lastError: Error | undefined) {
    super(
      'PROVISIONING_TIMEOUT',
      `provisioning did not finish within ${Math.round(timeoutMs / 1000)} s (${step}${lastError ? `; last failure: ${lastError.message}` : ''})`,
      { ...(lastError ? { cause: lastError } : {}), data: { timeoutMs, step } },
    );
  }
}

/** What to look at after a final rejection: for RegisterThing, the parameters sent (the hook judges them). */
export function rejectionHint(err: ProvisioningRejectedError): string {
  if (err.operation !== 'RegisterThing') return 'check the claim certificate, its policy and the CSR';
  const sent = err.parametersSent;
  if (sent && sent.SerialNumber === undefined)
    return 'no SerialNumber was sent (this device has no Serial line in /proc/cpuinfo): set provisioning.parameters.SerialNumber, or --param SerialNumber=...';
  const shown = sent
    ? Object.entries(sent)
        .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
        .join(' ')
    : '';
  return `check the template and its pre-provisioning hook${shown ? `; the parameters sent: ${shown}` : ''} (provisioning.parameters and --param override them)`;
}
