import type { HealthReport, LogLevel, OutboxReport, ReportedState, SensorReport } from '@pifleet/protocol';
import type { BatchLimits } from './batcher.js';
import type { TelemetryBlocked } from './publish-refusal.js';
import type { RejectedPatch } from './reconciler.js';

export interface ReportedInput {
  readonly agentVersion: string;
  readonly bootId: string;
  readonly startedAt: number;
  readonly now: number;
  readonly sensors: Readonly<Record<string, SensorReport>>;
  readonly outputs: Readonly<Record<string, boolean>>;
  readonly batch: BatchLimits;
  readonly logLevel: LogLevel;
  readonly outbox: OutboxReport;
  /**
   * Why the broker refuses the telemetry topic, while it does; `null` clears an earlier report
   * (the shadow merges, so an absent key would leave it standing); undefined leaves it out.
   */
  readonly telemetry?: TelemetryBlocked | null;
  /** Requests refused for a quota since start; reported once any is not zero. */
  readonly throttled?: ThrottledReport;
  /**
   * A health sample the shadow has not accepted yet; undefined leaves `health` out and the shadow
   * keeps the one it has (a report between two samples does not repeat it).
   */
  readonly health?: HealthReport | undefined;
}

export type ThrottledReport = NonNullable<ReportedState['throttled']>;

/**
 * The `state.reported` document: what the agent actually runs with. `rejected` is included only
 * when it changed (a patch: a path set to null clears it; null clears them all); `telemetry` while
 * the broker refuses the telemetry topic, and as `null` until the report that clears it is accepted.
 */
export function buildReported(input: ReportedInput, rejected?: RejectedPatch): ReportedState {
  const sampling: Record<string, number> = {};
  for (const [id, s] of Object.entries(input.sensors)) sampling[id] = s.intervalMs;
  const reported: ReportedState = {
    agent: {
      version: input.agentVersion,
      bootId: input.bootId,
      startedAt: input.startedAt,
      uptimeS: Math.max(0, Math.round((input.now - input.startedAt) / 1000)),
    },
    sensors: { ...input.sensors },
    outputs: { ...input.outputs },
    sampling,
    batch: { maxReadings: input.batch.maxReadings, maxBytes: input.batch.maxBytes, maxAgeMs: input.batch.maxAgeMs },
    logLevel: input.logLevel,
    outbox: { ...input.outbox },
  };
  if (input.telemetry !== undefined) {
    reported.telemetry = input.telemetry === null ? null : { ...input.telemetry };
  }
  const t = input.throttled;
  if (t && (t.publishes > 0 || t.unacknowledged > 0 || t.connects > 0 || t.shadow > 0)) reported.throttled = { ...t };
  if (input.health) reported.health = structuredClone(input.health);
  if (rejected !== undefined) {
    // The schema types rejected entries as non-null; a null entry is the shadow's way to delete a key.
    (reported as { rejected?: unknown }).rejected = rejected;
  }
  return reported;
}
