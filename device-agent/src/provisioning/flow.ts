import { type BackoffSchedule, exponentialBackoff, PROVISIONING_ERROR_CODES } from '@pifleet/protocol';
import type { Logger } from '../logger.js';
import { type Clock, sleep, withTimeout } from '../ports/clock.js';
import { ProvisioningError, ProvisioningRejectedError, ProvisioningTimeoutError } from './errors.js';
import type { DeviceKeyMaker } from './keys.js';
import type { IdentityPort } from './port.js';

export type ProvisioningMethod = 'csr' | 'create-keys';

/** The device's new identity: what the agent writes (key, certificate) and runs as (thing name). */
export interface ProvisionedIdentity {
  readonly thingName: string;
  readonly certificateId: string;
  readonly certificatePem: string;
  readonly privateKeyPem: string;
  readonly deviceConfiguration: Readonly<Record<string, string>>;
}

export interface ProvisionFlowDeps {
  readonly identity: IdentityPort;
  readonly makeKey: DeviceKeyMaker;
  readonly clock: Clock;
  /** In [0, 1): the backoff's jitter. */
  readonly random: () => number;
  readonly log: Logger;
  /** When the flow gives up (on `clock`), with a {@link ProvisioningTimeoutError}. */
  readonly deadline: number;
  /** The whole time allowed, for the timeout's message. */
  readonly timeoutMs: number;
}

export interface ProvisionFlowRequest {
  readonly method: ProvisioningMethod;
  readonly templateName: string;
  readonly parameters: Readonly<Record<string, string>>;
}

/**
 * Waits between retries: 1 s doubling to 30 s, full jitter, so that an image's devices that boot
 * together (a batch flashed and powered on at once) do not ask in lock step.
 */
export const PROVISIONING_RETRY: BackoffSchedule = { baseMs: 1_000, capMs: 30_000, floorMs: 200 };

/** A certificate and the token that lets this connection register it. */
interface Issued {
  readonly certificateId: string;
  readonly certificatePem: string;
  readonly privateKeyPem: string;
  readonly token: string;
}

/** RegisterThing refused the token (unknown, used, or older than its hour): only a new certificate helps. */
const isTokenRefused = (err: unknown) =>
  err instanceof ProvisioningRejectedError && err.errorCode === PROVISIONING_ERROR_CODES.invalidToken;

/** Whether another try of the same request may succeed: no answer, or a 429/5xx rejection. */
const isRetryable = (err: unknown) =>
  err instanceof ProvisioningRejectedError ? err.retryable : err instanceof ProvisioningError;

/**
 * Provisioning by claim, over an {@link IdentityPort}: a certificate (CreateCertificateFromCsr with
 * a key made here, or CreateKeysAndCertificate), then RegisterThing with the template's parameters,
 * which activates it and names the thing. Nothing is written here: the caller stores the result.
 *
 * Each request is sent again after a backoff while it gets no answer or a retryable rejection
 * (429, 5xx). A refused ownership token (expired, or consumed by a RegisterThing whose answer was
 * lost) starts over with a new certificate; the one left behind stays PENDING_ACTIVATION and the
 * service deletes it. Any other rejection is final and thrown as is (the hook's 403, a 400). Past
 * `deadline` the flow throws a {@link ProvisioningTimeoutError} naming the step and the last failure.
 */
export async function provisionIdentity(
  deps: ProvisionFlowDeps,
  request: ProvisionFlowRequest,
): Promise<ProvisionedIdentity> {
  const { identity, clock, log } = deps;
  let retries = 0;
  let lastError: Error | undefined;

  /** Waits the next backoff, or throws the timeout when the deadline comes first. */
  const pause = async (step: string, err: Error) => {
    lastError = err;
    const waitMs = exponentialBackoff(retries, PROVISIONING_RETRY, deps.random);
    retries += 1;
    const left = deps.deadline - clock.now();
    if (left <= waitMs) {
      if (left > 0) await sleep(clock, left);
      throw new ProvisioningTimeoutError(deps.timeoutMs, step, lastError);
    }
    log.warn({ err, step, retryInMs: waitMs, retries }, 'provisioning request failed; retrying');
    await sleep(clock, waitMs);
  };

  /** `attempt` until it succeeds, with a pause after each retryable failure; others are thrown. */
  const retrying = async <T>(step: string, attempt: () => Promise<T>): Promise<T> => {
    for (;;) {
      if (clock.now() >= deps.deadline) throw new ProvisioningTimeoutError(deps.timeoutMs, step, lastError);
      try {
        // The request's own timeout may outlast the deadline: the deadline is the one that holds.
        return await withTimeout(
          clock,
          deps.deadline - clock.now(),
          attempt(),
          () => new ProvisioningTimeoutError(deps.timeoutMs, step, lastError),
        );
      } catch (err) {
        if (err instanceof ProvisioningTimeoutError) throw err;
        if (!isRetryable(err)) throw err;
        await pause(step, err as Error);
      }
    }
  };

  const issue = (): Promise<Issued> =>
    retrying(request.method === 'csr' ? 'CreateCertificateFromCsr' : 'CreateKeysAndCertificate', async () => {
      if (request.method === 'create-keys') {
        const out = await identity.createKeysAndCertificate();
        return { ...out, privateKeyPem: out.privateKey, token: out.certificateOwnershipToken };
      }
      const serial = request.parameters.SerialNumber;
      const key = await deps.makeKey({ commonName: serial ?? 'pifleet-device' });
      const out = await identity.createCertificateFromCsr(key.csrPem);
      return { ...out, privateKeyPem: key.privateKeyPem, token: out.certificateOwnershipToken };
    });

  for (;;) {
    const issued = await issue();
    log.info({ certificateId: issued.certificateId, method: request.method }, 'certificate issued');
    try {
      const registered = await retrying('RegisterThing', () =>
        identity.registerThing(request.templateName, {
          certificateOwnershipToken: issued.token,
          parameters: request.parameters,
        }),
      );
      const { thingName } = registered;
      if (thingName === undefined)
        throw new ProvisioningError('PROVISIONING_BAD_ANSWER', 'RegisterThing named no thing');
      log.info({ thingName, certificateId: issued.certificateId }, 'thing registered');
      return {
        thingName,
        certificateId: issued.certificateId,
        certificatePem: issued.certificatePem,
        privateKeyPem: issued.privateKeyPem,
        deviceConfiguration: registered.deviceConfiguration,
      };
    } catch (err) {
      if (!isTokenRefused(err)) throw err;
      log.warn({ err, certificateId: issued.certificateId }, 'ownership token refused; asking for a new certificate');
      await pause('RegisterThing', err as Error);
    }
  }
}
