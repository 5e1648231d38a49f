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
