import { setTimeout as delay } from 'node:timers/promises';
import { exponentialBackoff } from '@pifleet/protocol';
import { createEmfMetrics, withMetrics } from '../adapters/emf-metrics.js';
import { PoisonBatchError, TelemetryStoreError } from '../core/telemetry/errors.js';
import { type IngestOutcome, ingestTelemetry } from '../core/telemetry/ingest.js';
import type { Logger } from '../logger.js';
import { type CloudMetrics, noMetrics } from '../ports/metrics.js';
import type { TelemetryStore } from '../ports/telemetry-store.js';
import { lambdaLogger, lazyHandler, telemetryStoreFromEnv } from './aws-env.js';

/**
 * Ingest handler: the telemetry rule's Lambda action → telemetry store.
 *
 * - Idempotent: the store drops a batch it already holds (`duplicate: true`, nothing written).
 * - Partial failures: the store retries unprocessed writes; a store failure that is left is
 *   retried here (`retry.attempts`, exponential delay), and if it persists the error is thrown,
 *   so Lambda retries the invocation (safe, idempotent) and then hands it to the function's
 *   on-failure destination; locally the rules engine runs the rule's error action.
 * - A poison message (not a valid batch, or a batch claiming another thing than its topic) throws
 *   {@link PoisonBatchError} at once, without retrying; it affects no other message.
 */
export interface IngestHandlerDeps {
  readonly store: TelemetryStore;
  readonly logger: Logger;
  readonly retry?: { readonly attempts?: number; readonly delayMs?: number };
  /** Waits between retries (default: a timer). */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Readings stored, batches deduplicated, poison batches, store failures, ingest lag (default: none). */
  readonly metrics?: CloudMetrics;
  /** Milliseconds since the epoch, for the ingest lag (default: `Date.now`). */
  readonly now?: () => number;
}

export type IngestHandler = (event: unknown) => Promise<IngestOutcome>;

export function createIngestHandler(deps: IngestHandlerDeps): IngestHandler {
  const attempts = Math.max(1, deps.retry?.attempts ?? 3);
  const delayMs = deps.retry?.delayMs ?? 100;
  const sleep = deps.sleep ?? ((ms: number) => delay(ms));
  const log = deps.logger.child({ component: 'ingest' });
  const metrics = deps.metrics ?? noMetrics;
  const now = deps.now ?? Date.now;

  return async (event) => {
    for (let attempt = 1; ; attempt++) {
      try {
        const outcome = await ingestTelemetry(event, deps.store);
        log.debug(
          {
            thingName: outcome.thingName,
            bootId: outcome.bootId,
            seq: outcome.seq,
            stored: outcome.stored,
            duplicate: outcome.duplicate,
          },
          outcome.duplicate ? 'duplicate batch dropped' : 'batch stored',
        );
        if (outcome.duplicate) metrics.add('BatchesDeduplicated', 1);
        else {
          metrics.add('BatchesStored', 1);
          metrics.add('ReadingsStored', outcome.stored);
          // A clock behind the agent's (or a replayed batch) gives no meaningful lag: never negative.
          metrics.add('IngestLag', Math.max(0, now() - outcome.sealedAt));
        }
        return outcome;
      } catch (err) {
        if (err instanceof PoisonBatchError) {
          log.warn({ issues: err.issues.slice(0, 20), issueCount: err.issues.length, ...err.data }, 'batch rejected');
          metrics.add('PoisonBatches', 1);
          throw err;
        }
        const retryable = err instanceof TelemetryStoreError && err.retryable;
        if (!retryable || attempt >= attempts) {
          log.error({ err, attempt }, 'batch not stored');
          metrics.add('StoreFailures', 1);
          throw err;
        }
        log.warn({ err, attempt }, 'store failed; retrying batch');
        await sleep(exponentialBackoff(attempt - 1, { baseMs: delayMs }));
      }
    }
  };
}

/**
 * AWS Lambda entry point: DynamoDB store from `TABLE_NAME`, built on the first invocation; the
 * metrics go to CloudWatch as EMF lines on stdout, flushed after every invocation (a poison batch
 * and a store failure too). No Powertools idempotency layer: the store already drops a batch it
 * holds, keyed on (thingName, bootId, seq), so a redelivery writes nothing and counts as deduplicated.
 */
export const handler: IngestHandler = lazyHandler(() => {
  const metrics = createEmfMetrics({ serviceName: 'ingest' });
  return withMetrics(
    metrics,
    createIngestHandler({
      store: telemetryStoreFromEnv(process.env),
      logger: lambdaLogger('ingest', process.env),
      metrics,
    }),
  );
});
