import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { pino } from 'pino';
import { createDynamoDbTelemetryStore } from '../adapters/dynamodb-telemetry-store.js';
import { CloudError } from '../errors.js';
import { createLogger, type Logger } from '../logger.js';
import type { TelemetryStore } from '../ports/telemetry-store.js';

/**
 * What the handlers need when AWS Lambda runs them: dependencies built from the function's
 * environment, once per execution environment, on the first invocation (so importing a handler
 * module does no I/O and needs no environment — the local IoT Core imports the same modules and
 * uses their `create…Handler` factories instead).
 *
 * Environment: `TABLE_NAME` (required), `RETENTION_DAYS` (optional TTL for readings),
 * `LOG_LEVEL` (default info). Region and credentials come from the Lambda runtime as usual.
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

export function telemetryStoreFromEnv(env: Env): TelemetryStore {
  const tableName = env.TABLE_NAME;
  if (tableName === undefined || tableName === '') throw new HandlerConfigError('TABLE_NAME', 'is not set');
  const retention = env.RETENTION_DAYS;
  let retentionDays: number | undefined;
  if (retention !== undefined && retention !== '') {
    retentionDays = Number(retention);
    if (!Number.isFinite(retentionDays) || retentionDays <= 0) {
      throw new HandlerConfigError('RETENTION_DAYS', 'must be a positive number of days');
    }
  }
  return createDynamoDbTelemetryStore({
    client: new DynamoDBClient({}),
    tableName,
    ...(retentionDays === undefined ? {} : { retentionDays }),
  });
}

/** A logger for Lambda: JSON lines written synchronously to stdout (CloudWatch Logs). */
export function lambdaLogger(handler: string, env: Env): Logger {
  return createLogger({
    level: env.LOG_LEVEL ?? 'info',
    bindings: { handler },
    destination: pino.destination({ dest: 1, sync: true }),
  });
}
