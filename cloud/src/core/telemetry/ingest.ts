import {
  decodeTelemetryBatch,
  type Issue,
  type TelemetryBatch,
  type Validation,
  validateAnyTelemetryBatch,
} from '@pifleet/protocol';
import type { PutBatchResult, TelemetryStore } from '../../ports/telemetry-store.js';
import { PoisonBatchError } from './errors.js';

/**
 * The ingest handler's logic. Its event is what the telemetry rule's Lambda action delivers:
 * the rule's SELECT output, `SELECT *, topic(2) AS topicThing FROM 'pifleet/+/telemetry'`,
 * i.e. the batch with one extra field naming the thing from the topic (which the device policy
 * ties to the publishing connection).
 */

/** The field the ingest rule adds to the batch; not part of the batch itself. */
export const TOPIC_THING_FIELD = 'topicThing';

export interface IngestOutcome extends PutBatchResult {
  readonly thingName: string;
  readonly bootId: string;
  readonly seq: number;
  readonly readings: number;
  /** When the agent sealed the batch, ms since the epoch (the start of the ingest lag). */
  readonly sealedAt: number;
}

/**
 * Turns a rule event into a valid batch, or every reason it is not one. Accepts the JSON object
 * the Lambda action sends, and also a JSON string or bytes (a payload that reached the handler
 * without the rule having parsed it). Either telemetry version: a v2 batch (per-sensor groups) comes
 * back expanded into v1's readings, so the stores see one shape.
 */
export function decodeIngestEvent(event: unknown): Validation<TelemetryBatch> & { readonly topicThing?: string } {
  if (typeof event === 'string' || event instanceof Uint8Array) return decodeTelemetryBatch(event);
  if (typeof event !== 'object' || event === null || Array.isArray(event)) {
    return { ok: false, issues: [{ path: '$', message: 'expected a telemetry batch object' }] };
  }
  const { [TOPIC_THING_FIELD]: topicThing, ...rest } = event as Record<string, unknown>;
  const checked = validateAnyTelemetryBatch(rest);
  if (topicThing === undefined) return checked;
  if (typeof topicThing !== 'string') {
    const issue: Issue = { path: TOPIC_THING_FIELD, message: 'must be a string (the thing name from the topic)' };
    return { ok: false, issues: checked.ok ? [issue] : [...checked.issues, issue] };
  }
  if (checked.ok && checked.value.thingName !== topicThing) {
    return {
      ok: false,
      topicThing,
      issues: [
        { path: 'thingName', message: `does not match the thing of the topic it was published on (${topicThing})` },
      ],
    };
  }
  return { ...checked, topicThing };
}

/**
 * Validates and stores one batch. Throws {@link PoisonBatchError} for an event that can never be
 * stored, and the store's `TelemetryStoreError` when storage fails (calling again is safe: the
 * store is idempotent on the batch identity).
 */
export async function ingestTelemetry(event: unknown, store: TelemetryStore): Promise<IngestOutcome> {
  const decoded = decodeIngestEvent(event);
  if (!decoded.ok) {
    throw new PoisonBatchError(
      decoded.issues,
      decoded.topicThing === undefined ? {} : { topicThing: decoded.topicThing },
    );
  }
  const batch = decoded.value;
  const result = await store.putBatch(batch);
  return {
    thingName: batch.thingName,
    bootId: batch.bootId,
    seq: batch.seq,
    sealedAt: batch.sealedAt,
    readings: batch.readings.length,
    ...result,
  };
}
