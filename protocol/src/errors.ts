/** What a {@link CodedError} may carry beside its code and message. */
export interface CodedErrorOptions {
  /** The error that led to this one (the standard `Error.cause`). */
  readonly cause?: unknown;
  /** Domain data (which thing, which topic, which limit); copied and frozen. */
  readonly data?: Readonly<Record<string, unknown>>;
}

/**
 * An error with a stable string `code`, the standard `cause`, and frozen domain data: the base of
 * each package's own base error (`CloudError`, `AgentError`, `ProvisioningError`,
 * `SimulatorError`), which each set `name` and write down their package's code spelling. Callers
 * branch on `code` (or on `instanceof` a package's class), never on the message.
 */
export class CodedError extends Error {
  override name = 'CodedError';
  readonly code: string;
  readonly data: Readonly<Record<string, unknown>>;

  constructor(code: string, message: string, options: CodedErrorOptions = {}) {
    // `cause` is set only when given, so `'cause' in error` says whether there was one.
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.data = Object.freeze({ ...(options.data ?? {}) });
  }
}
