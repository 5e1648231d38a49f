import { Metrics } from '@aws-lambda-powertools/metrics';
import { CloudError } from '../errors.js';
import { CLOUD_METRICS, type CloudMetricName, type CloudMetrics, METRICS_NAMESPACE } from '../ports/metrics.js';

/**
 * The metrics port for AWS Lambda: CloudWatch Embedded Metric Format (EMF) lines, serialized by
 * Powertools for AWS Lambda's `Metrics`. Lambda ships stdout to CloudWatch Logs, and CloudWatch
 * extracts the metrics from the lines itself: no PutMetricData call, no latency in the handler.
 *
 * Namespace {@link METRICS_NAMESPACE}; dimension `service` = the function's role (`ingest`,
 * `command`, …) plus any default dimensions; names and units from {@link CLOUD_METRICS}.
 *
 * Powertools is used to build and validate the EMF document (`serializeMetrics`), not to print
 * it: its `publishStoredMetrics` writes through a private `Console` on process.stdout that no
 * option redirects (its `logger` option only takes its warnings), so this adapter writes each
 * serialized document through `write` itself. The default `write` is what that Console does: one
 * line on process.stdout, raw, so Lambda's console prefix (time, request id, level) never breaks
 * the JSON.
 */

export interface EmfMetricsOptions {
  /** The `service` dimension: the function's role (`ingest`, `command`, …). */
  readonly serviceName: string;
  /** Where EMF lines go (default: the Lambda's stdout as Powertools writes them). */
  readonly write?: (line: string) => void;
  /** More dimensions on every metric (not `service`, not a metric name). */
  readonly defaultDimensions?: Readonly<Record<string, string>>;
}

export interface EmfMetrics extends CloudMetrics {
  /** Writes the stored metrics as EMF lines and clears them; writes nothing when nothing was added. */
  flush(): void;
}

/** A metrics setting Powertools would only warn about (and then publish a broken or mislabelled metric). */
export class EmfMetricsConfigError extends CloudError {
  override name = 'EmfMetricsConfigError';
}

/**
 * Values of one metric per EMF document. EMF allows 100, but Powertools publishes on its own (to its
 * private stdout Console, past `write`) the moment a metric holds 100 values, so a document never
 * gets there: 99 values each, the rest in the next document. Only the ingest lag has more than one
 * value, and only when one environment's invocations pile up before a flush; with `withMetrics`
 * that is one value per invocation.
 */
const VALUES_PER_DOCUMENT = 99;

/*
 * EMF's other limit, 100 metrics per document (Powertools again publishes by itself at 100), is out
 * of reach: the port has CLOUD_METRICS's ten names only. A metric list that reached it would have
 * to split documents by name as values are split above.
 */

/** Up to 29 dimensions per metric in Powertools (30 in EMF, one kept for `service`). */
const MAX_DEFAULT_DIMENSIONS = 28;

function checkOptions(options: EmfMetricsOptions): void {
  const problems: string[] = [];
  if (options.serviceName.trim() === '') problems.push('serviceName must not be empty');
  const dimensions = Object.entries(options.defaultDimensions ?? {});
  if (dimensions.length > MAX_DEFAULT_DIMENSIONS) {
    problems.push(`at most ${MAX_DEFAULT_DIMENSIONS} default dimensions (besides service)`);
  }
  for (const [key, value] of dimensions) {
    if (key.trim() === '' || value.trim() === '')
      problems.push(`dimension ${JSON.stringify(key)}: empty name or value`);
    else if (key === 'service') problems.push('dimension "service" is the serviceName');
    else if (Object.hasOwn(CLOUD_METRICS, key)) problems.push(`dimension ${JSON.stringify(key)} is a metric's name`);
  }
  if (problems.length > 0) {
    throw new EmfMetricsConfigError('METRICS_CONFIG', `bad EMF metrics settings: ${problems.join('; ')}`, {
      data: { problems },
    });
  }
}

function stdoutLine(line: string): void {
  process.stdout.write(`${line}\n`);
}

export function createEmfMetrics(options: EmfMetricsOptions): EmfMetrics {
  checkOptions(options);
  const write = options.write ?? stdoutLine;
  const powertools = new Metrics({
    namespace: METRICS_NAMESPACE,
    serviceName: options.serviceName,
    ...(options.defaultDimensions === undefined ? {} : { defaultDimensions: { ...options.defaultDimensions } }),
  });
  /*
   * Counts are summed until the flush, one value per name per document; durations keep one value
   * per observation. CloudWatch gives the same Sum either way, but a summed count keeps a document
   * one value long however often a handler counts (the silent-devices sweep may add 1 per thing:
   * a thousand values would be eleven documents), and its SampleCount then counts invocations.
   * A duration must stay one value per observation: the average and percentiles of the ingest
   * lag are over batches, and a sum of lags means nothing.
   */
  const counts = new Map<CloudMetricName, number>();
  const durations = new Map<CloudMetricName, number[]>();

  return {
    add(name, value) {
      // A NaN or infinite value serializes as null, and CloudWatch rejects the whole document:
      // one bad observation would lose every other metric of the invocation.
      if (!Number.isFinite(value)) return;
      if (CLOUD_METRICS[name] === 'Count') counts.set(name, (counts.get(name) ?? 0) + value);
      else {
        const values = durations.get(name);
        if (values === undefined) durations.set(name, [value]);
        else values.push(value);
      }
    },

    flush() {
      // Nothing counted, nothing written: no document without metrics (CloudWatch would extract
      // nothing from it), and Powertools' "No application metrics to publish" warning, which its
      // publishStoredMetrics prints on every empty flush, never comes up since this never calls it.
      if (counts.size === 0 && durations.size === 0) return;
      let pendingCounts = [...counts];
      const pendingDurations = [...durations];
      // Cleared before writing: a `write` that throws loses this flush's values instead of writing
      // them again with the next invocation's.
      counts.clear();
      durations.clear();
      try {
        do {
          for (const [name, value] of pendingCounts) powertools.addMetric(name, CLOUD_METRICS[name], value);
          pendingCounts = [];
          for (const [name, values] of pendingDurations) {
            for (const value of values.splice(0, VALUES_PER_DOCUMENT)) {
              powertools.addMetric(name, CLOUD_METRICS[name], value);
            }
          }
          const line = JSON.stringify(powertools.serializeMetrics());
          powertools.clearMetrics();
          write(line);
        } while (pendingDurations.some(([, values]) => values.length > 0));
      } finally {
        powertools.clearMetrics();
      }
    },
  };
}

/**
 * Wraps a Lambda handler so the metrics are flushed after every invocation, also when it throws.
 * Metrics never change the outcome: the handler's result or error is what Lambda gets, even if
 * the flush throws (a custom `write` failing). Otherwise an ingest whose batch is stored would be
 * retried, or a command whose desired state the shadow accepted would answer 5xx. The default
 * `write` cannot throw: a failing stdout reports asynchronously, on the stream.
 */
export function withMetrics<E, R>(metrics: EmfMetrics, handler: (event: E) => Promise<R>): (event: E) => Promise<R> {
  const flushQuietly = () => {
    try {
      metrics.flush();
    } catch {
      // Dropped on purpose (see above): the invocation's own outcome is the one to report.
    }
  };
  return async (event) => {
    try {
      return await handler(event);
    } finally {
      flushQuietly();
    }
  };
}
