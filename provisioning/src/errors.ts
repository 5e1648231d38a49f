import { CodedError, EXIT } from '@pifleet/protocol';

/**
 * Base error of @pifleet/provisioning. Every error this package throws is a ProvisioningError (or a subclass
 * that sets `name`): a {@link CodedError} with a stable string `code`, the standard `cause`, and
 * frozen domain data.
 *
 * Codes are UPPER_SNAKE (`INPUT_INVALID`, `NOT_FOUND`, `CREDENTIALS`).
 */
export class ProvisioningError extends CodedError {
  override name = 'ProvisioningError';
}

/**
 * An error the `pifleet` CLI reports to an operator: one line, a process exit code from `EXIT`
 * (`@pifleet/protocol`) and, where one helps, a hint naming the next thing to try.
 */
export class CliError extends ProvisioningError {
  override name = 'CliError';
  readonly exitCode: number;
  readonly hint: string | undefined;

  constructor(
    code: string,
    message: string,
    exitCode: number,
    options: { hint?: string; cause?: unknown; data?: Record<string, unknown> } = {},
  ) {
    super(code, message, options);
    this.exitCode = exitCode;
    this.hint = options.hint;
  }
}

type CliErrorOptions = { hint?: string; cause?: unknown; data?: Record<string, unknown> };

/** Wrong command-line usage (exit 64). */
export class UsageError extends CliError {
  override name = 'UsageError';
  constructor(message: string, options: CliErrorOptions = {}) {
    super('USAGE', message, EXIT.usage, options);
  }
}

/** Malformed input: a bad thing name, attribute, desired value or CSR (exit 65). */
export class InputError extends CliError {
  override name = 'InputError';
  constructor(message: string, options: CliErrorOptions = {}) {
    super('INPUT_INVALID', message, EXIT.dataError, options);
  }
}

/** A thing, certificate or shadow the command names does not exist (exit 65). */
export class NotFoundError extends CliError {
  override name = 'NotFoundError';
  constructor(message: string, options: CliErrorOptions = {}) {
    super('NOT_FOUND', message, EXIT.dataError, options);
  }
}

/** The state of the registry or the bundle directory conflicts with the command (exit 65). */
export class ConflictError extends CliError {
  override name = 'ConflictError';
  constructor(code: string, message: string, options: CliErrorOptions = {}) {
    super(code, message, EXIT.dataError, options);
  }
}

/** The control plane, data plane or local IoT Core cannot be reached or keeps throttling (exit 69). */
export class UnavailableError extends CliError {
  override name = 'UnavailableError';
  constructor(message: string, options: CliErrorOptions = {}) {
    super('UNAVAILABLE', message, EXIT.unavailable, options);
  }
}

/** Missing, invalid or insufficient credentials (exit 77). */
export class CredentialsError extends CliError {
  override name = 'CredentialsError';
  constructor(message: string, options: CliErrorOptions = {}) {
    super('CREDENTIALS', message, EXIT.noPermission, options);
  }
}

/** The target configuration is invalid: no region, a data directory that is not a local core's (exit 78). */
export class TargetConfigError extends CliError {
  override name = 'TargetConfigError';
  constructor(message: string, options: CliErrorOptions = {}) {
    super('CONFIG', message, EXIT.config, options);
  }
}

/** The command was interrupted (SIGINT or an abort signal); what finished is in the journal (exit 130). */
export class InterruptedError extends CliError {
  override name = 'InterruptedError';
  constructor(message: string, options: CliErrorOptions = {}) {
    super('INTERRUPTED', message, EXIT.interrupted, options);
  }
}
