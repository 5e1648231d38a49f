import type { Issue } from '@pifleet/protocol';
import { CloudError } from '../../errors.js';

/** The telemetry backend failed (network, throttling past retries, disk). Retrying the same call is safe. */
export class TelemetryStoreError extends CloudError {
  override name = 'TelemetryStoreError';
  readonly retryable: boolean;

  constructor(message: string, options: { cause?: unknown; data?: Record<string, unknown>; retryable?: boolean } = {}) {
    super('TELEMETRY_STORE_FAILED', message, options);
    this.retryable = options.retryable ?? true;
  }
}

/** A `nextToken` that this store did not issue for this query. */
export class InvalidPageTokenError extends CloudError {
  override name = 'InvalidPageTokenError';

  constructor(reason: string) {
    super('INVALID_PAGE_TOKEN', `invalid nextToken: ${reason}`, { data: { reason } });
  }
}

/**
 * A message the ingest handler can never store (not a valid telemetry batch). Thrown so the
 * message goes to the error path — the local rules engine's error action, Lambda's on-failure
 * destination in AWS — and never blocks the messages after it. Retrying it cannot help.
 */
export class PoisonBatchError extends CloudError {
  override name = 'PoisonBatchError';
  readonly issues: readonly Issue[];

  constructor(issues: readonly Issue[], data: Record<string, unknown> = {}) {
    super('POISON_BATCH', `telemetry batch rejected: ${issues.length} problem(s)`, {
      data: { ...data, issues },
    });
    this.issues = issues;
  }
}

/** A presence event the presence handler cannot record. */
export class InvalidPresenceEventError extends CloudError {
  override name = 'InvalidPresenceEventError';
  readonly issues: readonly Issue[];

  constructor(issues: readonly Issue[]) {
    super('INVALID_PRESENCE_EVENT', `presence event rejected: ${issues.length} problem(s)`, { data: { issues } });
    this.issues = issues;
  }
}

/** A store query the port does not allow (limit out of range, `from` after `to`). */
export class InvalidTelemetryQueryError extends CloudError {
  override name = 'InvalidTelemetryQueryError';

  constructor(message: string, data: Record<string, unknown> = {}) {
    super('INVALID_TELEMETRY_QUERY', message, { data });
  }
}
