import { EXIT } from '@pifleet/protocol';
import {
  CliError,
  ConflictError,
  CredentialsError,
  InputError,
  NotFoundError,
  TargetConfigError,
  UnavailableError,
} from '../errors.js';
import { type HintCommands, PLAIN_HINTS } from './hints.js';

/** What the command was doing, to word an error for the operator. */
export interface ErrorContext {
  readonly target: 'aws' | 'local';
  /** The local core's data directory, to name it in the "start it" hint. */
  readonly dataDir?: string;
  /** The thing the command is about, if one. */
  readonly thingName?: string;
  /** How hints spell commands so they run here (default: the installed names). */
  readonly hints?: HintCommands;
}

/** The error for a thing the registry does not have: exit 65, and how to see the things there are. */
export function thingNotFound(thingName: string, hints: HintCommands = PLAIN_HINTS, cause?: unknown): NotFoundError {
  return new NotFoundError(`thing ${thingName} not found`, {
    hint: hints.pifleet('things list'),
    ...(cause !== undefined ? { cause } : {}),
  });
}

const CREDENTIAL_REJECTIONS = new Set([
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'SignatureDoesNotMatch',
  'UnauthorizedException',
  'AccessDeniedException',
  'ForbiddenException',
  'ExpiredTokenException',
  'InvalidClientTokenId',
]);

/** The network error code of an error or of its causes (the SDK wraps socket errors; Node may aggregate them). */
export function networkCode(err: unknown, depth = 0): string | undefined {
  if (typeof err !== 'object' || err === null || depth > 4) return undefined;
  const e = err as { code?: unknown; cause?: unknown; errors?: unknown };
  if (typeof e.code === 'string' && /^E[A-Z_]+$/.test(e.code)) return e.code;
  if (Array.isArray(e.errors)) {
    for (const inner of e.errors) {
      const c = networkCode(inner, depth + 1);
      if (c) return c;
    }
  }
  return networkCode(e.cause, depth + 1);
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

/** Turns anything thrown while running a command into a one-line {@link CliError} with an exit code and a hint. */
export function toCliError(err: unknown, ctx: ErrorContext): CliError {
  if (err instanceof CliError) return err;
  const e = (typeof err === 'object' && err !== null ? err : { message: String(err) }) as {
    name?: string;
    message?: string;
  };
  const name = e.name ?? 'Error';
  const message = oneLine(e.message ?? String(err));
  const hints = ctx.hints ?? PLAIN_HINTS;
  const startHint =
    ctx.target === 'local'
      ? `is the local core running? start it with: ${hints.localCore} --data-dir ${ctx.dataDir ?? 'DATA_DIR'}`
      : 'check your network and AWS region';

  if (name === 'CredentialsProviderError' || /could not load credentials/i.test(message)) {
    return new CredentialsError(`no AWS credentials found: ${message}`, {
      cause: err,
      hint:
        ctx.target === 'local'
          ? 'the local core writes its credentials to DATA_DIR/credentials on first start'
          : 'configure credentials (aws configure, AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) or use --local DATA_DIR',
    });
  }
  if (CREDENTIAL_REJECTIONS.has(name)) {
    return new CredentialsError(`credentials rejected (${name}): ${message}`, {
      cause: err,
      hint: 'check that the credentials are valid and allowed the iot: actions this command needs',
    });
  }
  if (name === 'ResourceNotFoundException') {
    if (ctx.thingName !== undefined) {
      return thingNotFound(ctx.thingName, hints, err);
    }
    return new NotFoundError(`not found: ${message}`, { cause: err });
  }
  if (
    name === 'ConflictException' ||
    name === 'VersionConflictException' ||
    name === 'ConflictingResourceUpdateException'
  ) {
    return new ConflictError('CONFLICT', `conflict: ${message}`, {
      cause: err,
      hint: ctx.thingName
        ? `${hints.pifleet(`shadow get ${ctx.thingName}`)} shows the current version`
        : 'read the current state and retry',
    });
  }
  if (
    name === 'InvalidRequestException' ||
    name === 'ValidationException' ||
    name === 'MalformedCertificateException'
  ) {
    return new InputError(`request rejected (${name}): ${message}`, { cause: err });
  }
  if (name === 'ThrottlingException' || name === 'TooManyRequestsException' || name === 'LimitExceededException') {
    return new UnavailableError(`throttled by the control plane after retries (${name})`, {
      cause: err,
      hint: 'lower --concurrency or --rate and re-run; finished work is kept',
    });
  }
  if (name === 'ServiceUnavailableException' || name === 'InternalFailureException') {
    return new UnavailableError(`service unavailable (${name}): ${message}`, { cause: err, hint: 're-run later' });
  }
  if (/region is missing/i.test(message)) {
    return new TargetConfigError('no AWS region configured', {
      cause: err,
      hint: 'set AWS_REGION, pass --region, or use --local DATA_DIR',
    });
  }
  const code = networkCode(err);
  if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EHOSTUNREACH' || code === 'ETIMEDOUT') {
    return new UnavailableError(
      `cannot reach the ${ctx.target === 'local' ? 'local IoT Core' : 'AWS IoT endpoint'} (${code})`,
      {
        cause: err,
        hint: startHint,
      },
    );
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new UnavailableError(`cannot resolve the endpoint (${code})`, { cause: err, hint: startHint });
  }
  return new CliError('UNEXPECTED', `${name}: ${message}`, EXIT.unexpected, { cause: err });
}

/** The one line printed for an error: `pifleet: <message> (hint: <hint>)`. */
export function formatErrorLine(err: CliError): string {
  return `pifleet: ${oneLine(err.message)}${err.hint ? ` (hint: ${oneLine(err.hint)})` : ''}`;
}
