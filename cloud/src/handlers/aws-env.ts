import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { createDynamoDbTelemetryStore } from '../adapters/dynamodb-telemetry-store.js';
import type { TelemetryStore } from '../ports/telemetry-store.js';
import { type Env, HandlerConfigError } from './lambda-env.js';

export { type Env, HandlerConfigError, lambdaLogger, lazyHandler } from './lambda-env.js';

/**
 * What the handlers need when AWS Lambda runs them: dependencies built from the function's
 * environment, once per execution environment, on the first invocation (so importing a handler
 * module does no I/O and needs no environment — the local IoT Core imports the same modules and
 * uses their `create…Handler` factories instead).
 *
 * Environment: `TABLE_NAME` (required), `RETENTION_DAYS` (optional TTL for readings),
 * `LOG_LEVEL` (default info). Region and credentials come from the Lambda runtime as usual. The
 * store built from it (DynamoDB) is here; the rest is in `lambda-env.ts`, which needs no AWS SDK.
 */
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
