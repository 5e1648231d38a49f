import { CodedError } from '@pifleet/protocol';

/**
 * Base error of @pifleet/device-agent. Every error this package throws is an AgentError (or a subclass
 * that sets `name`): a {@link CodedError} with a stable string `code`, the standard `cause`, and
 * frozen domain data.
 *
 * Codes are UPPER_SNAKE (`CONFIG_INVALID`, `SHADOW_TIMEOUT`, `HW_I2C_DISABLED`).
 */
export class AgentError extends CodedError {
  override name = 'AgentError';
}

/** The agent configuration is invalid; `issues` lists every problem with its path. Exit code 78. */
export class ConfigError extends AgentError {
  override name = 'ConfigError';
  readonly issues: readonly { readonly path: string; readonly message: string }[];

  constructor(issues: readonly { path: string; message: string }[], options: { cause?: unknown } = {}) {
    super('CONFIG_INVALID', `invalid configuration: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, {
      ...options,
      data: { issues },
    });
    this.issues = issues;
  }
}

/** An MQTT operation failed or timed out (transport failure, as opposed to a service rejection). */
export class TransportError extends AgentError {
  override name = 'TransportError';
}

/** The outbox database could not be opened, read or written. */
export class OutboxError extends AgentError {
  override name = 'OutboxError';
}

/**
 * A Device Shadow request failed. The base of {@link ShadowRejectedError} (the service answered
 * no) and {@link ShadowTimeoutError} (no answer in time); thrown as itself when the request never
 * got an answer for another reason (the connection was lost, the client was closed, the
 * subscription to the response topics failed).
 */
export class ShadowError extends AgentError {
  override name = 'ShadowError';
}

/**
 * The shadow service rejected a request (`/rejected`): `serviceCode` is IoT's numeric code (400
 * bad document, 404 no shadow, 409 version conflict, 413 too large, 429 throttled, …) and
 * `clientToken` the request's correlation token. A transport failure is never one of these.
 */
export class ShadowRejectedError extends ShadowError {
  override name = 'ShadowRejectedError';
  readonly serviceCode: number;
  readonly clientToken: string | undefined;

  constructor(
    operation: string,
    rejection: {
      readonly code: number;
      readonly message?: string | undefined;
      readonly clientToken?: string | undefined;
    },
    options: { cause?: unknown } = {},
  ) {
    super('SHADOW_REJECTED', `shadow ${operation} rejected: ${rejection.message ?? rejection.code}`, {
      ...options,
      data: { operation, code: rejection.code, clientToken: rejection.clientToken },
    });
    this.serviceCode = rejection.code;
    this.clientToken = rejection.clientToken;
  }
}

/** A shadow request got no answer within its timeout (on the injected clock). */
export class ShadowTimeoutError extends ShadowError {
  override name = 'ShadowTimeoutError';
  readonly timeoutMs: number;

  constructor(operation: string, timeoutMs: number) {
    super('SHADOW_TIMEOUT', `shadow ${operation} timed out`, { data: { operation, timeoutMs } });
    this.timeoutMs = timeoutMs;
  }
}
