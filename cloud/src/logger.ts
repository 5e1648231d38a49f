import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';

export type { Logger };

/** Paths never logged in clear: keys, certificates, credentials and tokens. */
export const REDACT_PATHS = [
  'privateKey',
  'keyPem',
  'certificatePem',
  'secretAccessKey',
  'sessionToken',
  'token',
  'authorization',
  '*.privateKey',
  '*.keyPem',
  '*.secretAccessKey',
  '*.sessionToken',
  '*.authorization',
];

/**
 * Creates the package's root logger. Pass a destination to capture logs (tests parse them);
 * the default is stdout. Bindings become fields of every line (service, version, thing name).
 */
export function createLogger(
  options: { level?: string; bindings?: Record<string, unknown>; destination?: DestinationStream } = {},
): Logger {
  const opts: LoggerOptions = {
    level: options.level ?? 'info',
    base: { service: '@pifleet/cloud', ...(options.bindings ?? {}) },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  return options.destination ? pino(opts, options.destination) : pino(opts);
}

/** A logger that discards everything (for tests and library callers that pass none). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
