/**
 * The one logging policy of every pifleet package, as plain pino options (no pino import here:
 * the protocol package does no I/O). Each package's `createLogger` passes these to pino.
 */

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

export interface LoggerSettings {
  readonly level?: string;
  /** Fields of every line (service, version, thing name). */
  readonly bindings?: Record<string, unknown>;
}

/** pino options: level (default info), `service` plus the bindings as base fields, redaction. */
export function loggerOptions(service: string, settings: LoggerSettings = {}) {
  return {
    level: settings.level ?? 'info',
    base: { service, ...(settings.bindings ?? {}) },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
}
