/**
 * The port between the cloud handlers and a metrics backend. In Lambda the adapter writes
 * CloudWatch Embedded Metric Format lines (`adapters/emf-metrics.ts`); in the local IoT Core it
 * feeds the Prometheus registry behind `GET /metrics` (`adapters/prometheus-metrics.ts`). The
 * names and units are fixed here so the CDK alarms, the dashboard, the console and both
 * adapters agree on them.
 */

/** CloudWatch namespace of every pifleet metric. */
export const METRICS_NAMESPACE = 'pifleet';

/** Each metric the handlers publish, with its CloudWatch unit. */
export const CLOUD_METRICS = {
  /** Readings written to the telemetry store (duplicates write none). */
  ReadingsStored: 'Count',
  /** Batches written to the telemetry store. */
  BatchesStored: 'Count',
  /** Batches the store already held (an at-least-once redelivery), dropped without a write. */
  BatchesDeduplicated: 'Count',
  /** Events that can never be stored (not a batch, or a batch claiming another thing). */
  PoisonBatches: 'Count',
  /** Batches the store refused after every retry (the rule's error action or Lambda's retry takes them). */
  StoreFailures: 'Count',
  /** Ingest lag of a stored batch: the agent sealed it → the store committed it. */
  IngestLag: 'Milliseconds',
  /** Desired-state writes the shadow accepted. */
  CommandsAccepted: 'Count',
  /** Desired-state writes refused as invalid (400) or too large (413). */
  CommandsRejected: 'Count',
  /** Conditional desired-state writes that met another shadow version (409). */
  CommandsConflicting: 'Count',
  /** Things that have been silent (no telemetry, or disconnected) for longer than the silence threshold. */
  SilentDevices: 'Count',
} as const;

export type CloudMetricName = keyof typeof CLOUD_METRICS;
export type CloudMetricUnit = (typeof CLOUD_METRICS)[CloudMetricName];

export interface CloudMetrics {
  /** Adds one observation: a count for `Count` metrics, a duration in ms for `Milliseconds` ones. */
  add(name: CloudMetricName, value: number): void;
}

/** A backend that drops everything (tests and callers that do not watch). */
export const noMetrics: CloudMetrics = { add() {} };
