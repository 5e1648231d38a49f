import { CloudError } from '../../errors.js';

/** The shadow's version is not the one the request expected (IoT's ConflictException, 409). */
export class ShadowVersionConflictError extends CloudError {
  override name = 'ShadowVersionConflictError';

  constructor(thingName: string, expectedVersion: number | undefined, cause?: unknown) {
    super('SHADOW_VERSION_CONFLICT', `the shadow of ${thingName} is not at version ${expectedVersion ?? '?'}`, {
      cause,
      data: { thingName, expectedVersion },
    });
  }
}

/**
 * The shadow service refused the update itself (IoT's InvalidRequestException or
 * RequestEntityTooLargeException): the document breaks one of its limits (depth, size). Client error.
 */
export class ShadowUpdateRejectedError extends CloudError {
  override name = 'ShadowUpdateRejectedError';
  readonly status: 400 | 413;

  constructor(status: 400 | 413, message: string, cause?: unknown) {
    super('SHADOW_UPDATE_REJECTED', message, { cause, data: { status } });
    this.status = status;
  }
}

/** IoT (data plane or registry) is unavailable or throttling; the client may retry. */
export class UpstreamUnavailableError extends CloudError {
  override name = 'UpstreamUnavailableError';

  constructor(service: string, message: string, cause?: unknown) {
    super('UPSTREAM_UNAVAILABLE', `${service}: ${message}`, { cause, data: { service } });
  }
}
