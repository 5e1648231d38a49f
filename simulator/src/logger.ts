import { type LoggerSettings, loggerOptions } from '@pifleet/protocol';
import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger };

/**
 * Creates the package's root logger with the shared policy (`loggerOptions` in @pifleet/protocol).
 * Pass a destination to capture logs (tests parse them); the default is stdout.
 */
export function createLogger(options: LoggerSettings & { destination?: DestinationStream } = {}): Logger {
  const opts = loggerOptions('@pifleet/simulator', options);
  return options.destination ? pino(opts, options.destination) : pino(opts);
}

/** A logger that discards everything (for tests and library callers that pass none). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
