import { pino } from 'pino';
import { CloudError } from '../errors.js';
import { createLogger, type Logger } from '../logger.js';

/**
 * The light half of what Lambda handlers share: their environment's type, its configuration error,
 * the build-on-first-use wrapper and the logger. No AWS SDK client is imported here, so a handler
 * that needs none (the pre-provisioning hook, which IoT gives 5 seconds including a cold start)
 * loads without one. `aws-env.ts` re-exports all of it beside the telemetry store.
 */

export type Env = Readonly<Record<string, string | undefined>>;

export class HandlerConfigError extends CloudError {
  override name = 'HandlerConfigError';

  constructor(variable: string, problem: string) {
    super('HANDLER_CONFIG', `environment variable ${variable} ${problem}`, { data: { variable } });
  }
}

/** Builds the handler on first use and reuses it for later invocations of the same environment. */
export function lazyHandler<E, R>(build: () => (event: E) => Promise<R>): (event: E) => Promise<R> {
  let built: ((event: E) => Promise<R>) | undefined;
  return (event) => {
    built ??= build();
    return built(event);
  };
}

/** A logger for Lambda: JSON lines written synchronously to stdout (CloudWatch Logs). */
export function lambdaLogger(handler: string, env: Env): Logger {
  return createLogger({
    level: env.LOG_LEVEL ?? 'info',
    bindings: { handler },
    destination: pino.destination({ dest: 1, sync: true }),
  });
}
