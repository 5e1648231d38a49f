/**
 * Base error of @pifleet/provisioning. Every error this package throws is a ProvisioningError (or a subclass
 * that sets `name`), with a stable string `code`, the standard `cause`, and domain data.
 */
export class ProvisioningError extends Error {
  override name = 'ProvisioningError';
  readonly code: string;
  readonly data: Readonly<Record<string, unknown>>;

  constructor(code: string, message: string, options: { cause?: unknown; data?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.data = Object.freeze({ ...(options.data ?? {}) });
  }
}
