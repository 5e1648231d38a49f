import { iotidentity } from 'aws-iot-device-sdk-v2';
import type { NativeMqttClient } from '../adapters/aws-iot-sdk.js';
import { modeledErrorOf, newServiceClient, serviceCaller } from '../adapters/sdk-request-response.js';
import type { Clock } from '../ports/clock.js';
import { type IdentityOperation, ProvisioningError, ProvisioningRejectedError } from './errors.js';
import { type IdentityPort, readCsrAnswer, readKeysAnswer, readRegisterAnswer, readRejection } from './port.js';

export interface SdkIdentityOptions {
  readonly native: NativeMqttClient;
  readonly requestTimeoutMs: number;
  readonly clock: Clock;
}

/** The service's rejection when the SDK carries its error body; a plain `ProvisioningError` for anything else. */
function wrap(operation: string, err: unknown): Error {
  if (err instanceof ProvisioningError) return err;
  const op = operation as IdentityOperation;
  const rejection = readRejection(modeledErrorOf(err));
  if (rejection) return new ProvisioningRejectedError(op, rejection, { cause: err });
  return new ProvisioningError('PROVISIONING_REQUEST_FAILED', `${operation} failed`, {
    cause: err,
    data: { operation },
  });
}

/**
 * Fleet provisioning over the device SDK's `iotidentity.IotIdentityClientv2` on the claim
 * connection (aws-crt, MQTT 5 or 3.1.1): the Pi's path. The SDK subscribes to each request's
 * accepted and rejected topics before it publishes, and keeps one request per topic in flight;
 * this adds the request timeout on the injected clock and maps the service's rejection to
 * `ProvisioningRejectedError`.
 */
export function createSdkIdentity(opts: SdkIdentityOptions): IdentityPort {
  const client = newServiceClient(iotidentity.IotIdentityClientv2, opts.native, opts.requestTimeoutMs);
  let closed = false;
  const call = serviceCaller({
    clock: opts.clock,
    requestTimeoutMs: opts.requestTimeoutMs,
    isClosed: () => closed,
    errors: {
      closed: (operation) =>
        new ProvisioningError('PROVISIONING_CLOSED', `${operation} after close()`, { data: { operation } }),
      timedOut: (operation) =>
        new ProvisioningError(
          'PROVISIONING_REQUEST_TIMEOUT',
          `${operation}: no answer within ${opts.requestTimeoutMs} ms`,
          {
            data: { operation, timeoutMs: opts.requestTimeoutMs },
          },
        ),
      wrap,
    },
  });
  return {
    async createCertificateFromCsr(certificateSigningRequest) {
      return readCsrAnswer(
        await call('CreateCertificateFromCsr', () => client.createCertificateFromCsr({ certificateSigningRequest })),
      );
    },
    async createKeysAndCertificate() {
      return readKeysAnswer(await call('CreateKeysAndCertificate', () => client.createKeysAndCertificate({})));
    },
    async registerThing(templateName, request) {
      return readRegisterAnswer(
        await call('RegisterThing', () =>
          client.registerThing({
            templateName,
            certificateOwnershipToken: request.certificateOwnershipToken,
            ...(request.parameters ? { parameters: { ...request.parameters } } : {}),
          }),
        ),
      );
    },
    close() {
      if (closed) return;
      closed = true;
      client.close();
    },
  };
}
