/**
 * Base error of @pifleet/device-agent. Every error this package throws is a AgentError (or a subclass
 * that sets `name`), with a stable string `code`, the standard `cause`, and domain data.
 */
export class AgentError extends Error {
  override name = 'AgentError';
  readonly code: string;
  readonly data: Readonly<Record<string, unknown>>;

  constructor(code: string, message: string, options: { cause?: unknown; data?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.data = Object.freeze({ ...(options.data ?? {}) });
  }
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

/** A Device Shadow request was rejected by the service (`data.code` is IoT's numeric code) or timed out. */
export class ShadowError extends AgentError {
  override name = 'ShadowError';
}
