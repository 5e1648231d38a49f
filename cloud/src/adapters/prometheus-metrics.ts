import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Broker } from '../broker/broker.js';
import type { ThrottleCounters } from '../limits/counters.js';
import { CLOUD_METRICS, type CloudMetricName, type CloudMetrics, METRICS_NAMESPACE } from '../ports/metrics.js';
import type { RulesEngine } from '../rules/engine.js';

/**
 * The metrics port for the local IoT Core, on prom-client: what the handlers count, plus what the
 * broker, the quota counters and the rules engine already count (read when Prometheus scrapes), in
 * one registry per core and the Prometheus text format behind `GET /metrics` (http/metrics-routes.ts).
 *
 * Names: a `Count` metric of the port is the counter `pifleet_<snake_case>_total`, a `Milliseconds`
 * metric the histogram `pifleet_<snake_case>_seconds` (observed in seconds, Prometheus's base unit).
 * SilentDevices is the exception: the number of things silent now is a level, not an event count,
 * so it is the gauge `pifleet_silent_devices` holding the last value added.
 *
 * Never prom-client's global registry: tests run several cores in one process, and each core's
 * counters must start at zero and stay its own.
 */

export interface PrometheusMetricsDeps {
  /** Connections, connects, disconnects by reason, messages received and delivered, queued deliveries. */
  readonly broker?: Pick<Broker, 'stats' | 'queuedMessages'>;
  /** Breaches per quota since start. */
  readonly throttles?: Pick<ThrottleCounters, 'snapshot'>;
  /**
   * The rules engine's counters, asked at each scrape. A function: the engine is built after the
   * handlers that count into this adapter.
   */
  readonly rules?: () => Pick<RulesEngine, 'stats'>;
  /** prom-client's process and Node.js metrics (default true). */
  readonly processMetrics?: boolean;
}

/** The text exposition of every metric and the content type Prometheus expects with it. */
export interface MetricsExposition {
  readonly contentType: string;
  readonly body: string;
}

/** The console's compact view of the metrics (`GET /console/api/metrics`). */
export interface MetricsSummary {
  readonly readingsStored: number;
  readonly batchesStored: number;
  readonly batchesDeduplicated: number;
  readonly poisonBatches: number;
  readonly storeFailures: number;
  /**
   * Ingest lag of the stored batches: how many, and p50/p99 in ms estimated from the histogram's
   * buckets as Prometheus's histogram_quantile does (null before the first batch).
   */
  readonly ingestLag: { readonly count: number; readonly p50Ms: number | null; readonly p99Ms: number | null };
  readonly commands: { readonly accepted: number; readonly rejected: number; readonly conflicting: number };
  /** MQTT connections open now (0 without a broker). */
  readonly connections: number;
  /** Quota breaches since start, every quota together. */
  readonly throttled: number;
}

export interface PrometheusMetrics extends CloudMetrics {
  scrape(): Promise<MetricsExposition>;
  summary(): Promise<MetricsSummary>;
}

/** Ingest lag buckets (seconds): 10 ms on a quiet core up to a minute of a backlog draining after an outage. */
export const INGEST_LAG_BUCKETS_SECONDS: readonly number[] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Port metrics that are levels (a gauge set to the last value), not event counts. */
const LEVELS: ReadonlySet<CloudMetricName> = new Set(['SilentDevices']);

/** Each port metric's HELP line; a metric added to the port without one fails to compile. */
const HELP: Readonly<Record<CloudMetricName, string>> = {
  ReadingsStored: 'Readings written to the telemetry store (duplicates write none).',
  BatchesStored: 'Telemetry batches written to the telemetry store.',
  BatchesDeduplicated: 'Telemetry batches the store already held (redeliveries), dropped without a write.',
  PoisonBatches: 'Events that can never be stored (not a batch, or a batch claiming another thing).',
  StoreFailures: 'Telemetry batches the store refused after every retry.',
  IngestLag: 'Ingest lag of a stored batch: the agent sealed it, then the store committed it.',
  CommandsAccepted: 'Desired-state writes the shadow accepted.',
  CommandsRejected: 'Desired-state writes refused as invalid (400) or too large (413).',
  CommandsConflicting: 'Conditional desired-state writes that met another shadow version (409).',
  SilentDevices: 'Things silent for longer than the silence threshold, as last counted.',
};

/** `ReadingsStored` → `readings_stored`. */
export function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c, i: number) => `${i === 0 ? '' : '_'}${c.toLowerCase()}`);
}

/** The Prometheus name of a port metric (see the module comment). */
export function prometheusName(name: CloudMetricName): string {
  const base = `${METRICS_NAMESPACE}_${snakeCase(name)}`;
  const unit = CLOUD_METRICS[name];
  switch (unit) {
    case 'Count':
      return LEVELS.has(name) ? base : `${base}_total`;
    case 'Milliseconds':
      return `${base}_seconds`;
    default: {
      const unknown: never = unit;
      throw new TypeError(`no Prometheus name for unit ${String(unknown)}`);
    }
  }
}

/** One cumulative bucket of a histogram: observations ≤ `le` (the last one's `le` is Infinity). */
export interface CumulativeBucket {
  readonly le: number;
  readonly count: number;
}

/**
 * The `q` quantile (0–1) of a histogram, as Prometheus's histogram_quantile estimates it: linear
 * within the bucket the rank falls in, from 0 for the first; a rank in the +Inf bucket answers the
 * highest finite bound (nothing better is known). Undefined with no observations.
 */
export function histogramQuantile(q: number, buckets: readonly CumulativeBucket[]): number | undefined {
  const total = buckets.at(-1)?.count ?? 0;
  if (total === 0 || !(q >= 0 && q <= 1)) return undefined;
  const rank = q * total;
  let lowerBound = 0;
  let below = 0;
  for (const bucket of buckets) {
    if (bucket.count >= rank && bucket.count > below) {
      if (bucket.le === Number.POSITIVE_INFINITY) return lowerBound;
      return lowerBound + ((bucket.le - lowerBound) * (rank - below)) / (bucket.count - below);
    }
    lowerBound = bucket.le;
    below = bucket.count;
  }
  return lowerBound;
}

/**
 * prom-client's default metrics start an event-loop delay monitor (a 10 ms timer) and a GC
 * observer that nothing can stop; collected per core, every core a test suite starts would leave
 * one running. They describe the process, not the core, so one registry per process holds them and
 * each core's exposition includes it.
 */
let processRegistry: Registry | undefined;
function processMetrics(): Registry {
  if (processRegistry === undefined) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export function createPrometheusMetrics(deps: PrometheusMetricsDeps = {}): PrometheusMetrics {
  const registry = new Registry();
  const registers = [registry];
  const ns = METRICS_NAMESPACE;

  // ---- the port's metrics: counted as the handlers add them ----------------------------------

  const counters = new Map<CloudMetricName, Counter>();
  const levels = new Map<CloudMetricName, Gauge>();
  const durations = new Map<CloudMetricName, Histogram>();
  for (const name of Object.keys(CLOUD_METRICS) as CloudMetricName[]) {
    const spec = { name: prometheusName(name), help: HELP[name], registers };
    if (CLOUD_METRICS[name] === 'Milliseconds') {
      // The port has one duration, the ingest lag; its buckets would do for another of its kind.
      durations.set(name, new Histogram({ ...spec, buckets: [...INGEST_LAG_BUCKETS_SECONDS] }));
    } else if (LEVELS.has(name)) levels.set(name, new Gauge(spec));
    else counters.set(name, new Counter(spec));
  }

  // ---- what other parts count: read at scrape time -----------------------------------------

  const { broker, throttles, rules } = deps;
  if (broker !== undefined) {
    new Gauge({
      name: `${ns}_mqtt_connections`,
      help: 'MQTT client connections open now.',
      registers,
      collect() {
        this.set(broker.stats().connections);
      },
    });
    scrapedCounter(`${ns}_mqtt_connects_total`, 'MQTT connections accepted (CONNACK sent).', [], () => [
      [{}, broker.stats().connects],
    ]);
    scrapedCounter(
      `${ns}_mqtt_disconnects_total`,
      "MQTT connections ended, by IoT Core's disconnect reason.",
      ['reason'],
      () => Object.entries(broker.stats().disconnects).map(([reason, n]) => [{ reason }, n ?? 0]),
    );
    scrapedCounter(
      `${ns}_mqtt_messages_received_total`,
      'PUBLISH packets from clients that passed every check and went onto the bus.',
      [],
      () => [[{}, broker.stats().messagesReceived]],
    );
    scrapedCounter(
      `${ns}_mqtt_messages_delivered_total`,
      'Messages handed to client connections after their iot:Receive check.',
      [],
      () => [[{}, broker.stats().messagesDelivered]],
    );
    new Gauge({
      name: `${ns}_mqtt_queued_messages`,
      help: "Messages waiting for one of the broker bus's in-flight slots.",
      registers,
      collect() {
        this.set(broker.queuedMessages());
      },
    });
  }
  if (throttles !== undefined) {
    scrapedCounter(`${ns}_quota_throttled_total`, 'Breaches of each IoT Core quota since start.', ['quota'], () =>
      Object.entries(throttles.snapshot()).map(([quota, n]) => [{ quota }, n]),
    );
  }
  if (rules !== undefined) {
    const stats = () => rules().stats();
    scrapedCounter(
      `${ns}_rules_messages_total`,
      'Messages delivered to the rules engine, once per FROM filter they matched.',
      [],
      () => [[{}, stats().messages]],
    );
    scrapedCounter(
      `${ns}_rule_matched_total`,
      'Messages whose topic matched the rule and whose WHERE was true.',
      ['rule'],
      () => stats().rules.map((r) => [{ rule: r.name }, r.matched]),
    );
    scrapedCounter(
      `${ns}_rule_actions_total`,
      "Runs of each rule's actions, by outcome (a failure runs the error action).",
      ['rule', 'outcome'],
      () =>
        stats().rules.flatMap((r) => [
          [{ rule: r.name, outcome: 'succeeded' }, r.actions.succeeded],
          [{ rule: r.name, outcome: 'failed' }, r.actions.failed],
        ]),
    );
    scrapedCounter(
      `${ns}_rule_error_actions_total`,
      "Runs of each rule's error action, by outcome.",
      ['rule', 'outcome'],
      () =>
        stats().rules.flatMap((r) => [
          [{ rule: r.name, outcome: 'succeeded' }, r.errorActions.succeeded],
          [{ rule: r.name, outcome: 'failed' }, r.errorActions.failed],
        ]),
    );
    scrapedCounter(
      `${ns}_rules_not_acknowledged_total`,
      'Client messages left unacknowledged because an action failed transiently (the device sends them again).',
      [],
      () => [[{}, stats().notAcknowledged]],
    );
    new Gauge({
      name: `${ns}_rules_jobs`,
      help: 'Rule × message jobs now, by state.',
      labelNames: ['state'],
      registers,
      collect() {
        const s = stats();
        this.set({ state: 'queued' }, s.queued);
        this.set({ state: 'running' }, s.running);
      },
    });
  }

  /**
   * A counter whose values another part keeps: each scrape sets it to them. Counters, not gauges,
   * so `rate()` reads them right; the sources only grow while the core runs.
   */
  function scrapedCounter(
    name: string,
    help: string,
    labelNames: readonly string[],
    read: () => readonly (readonly [Record<string, string>, number])[],
  ): void {
    new Counter({
      name,
      help,
      labelNames: [...labelNames],
      registers,
      collect() {
        const values = read();
        this.reset();
        for (const [labels, value] of values) this.inc(labels, value);
      },
    });
  }

  const exposed = deps.processMetrics === false ? registry : Registry.merge([registry, processMetrics()]);

  async function counterValue(name: CloudMetricName): Promise<number> {
    const metric = counters.get(name);
    return metric === undefined ? 0 : ((await metric.get()).values[0]?.value ?? 0);
  }

  return {
    add(name, value) {
      // A metric must never break what it measures: a value no backend can take is dropped.
      if (!Number.isFinite(value) || value < 0) return;
      counters.get(name)?.inc(value);
      durations.get(name)?.observe(value / 1000);
      levels.get(name)?.set(value);
    },

    async scrape() {
      return { contentType: exposed.contentType, body: await exposed.metrics() };
    },

    async summary() {
      const buckets: CumulativeBucket[] = [];
      let count = 0;
      const lag = durations.get('IngestLag');
      const lagName = prometheusName('IngestLag');
      for (const v of lag === undefined ? [] : (await lag.get()).values) {
        if (v.metricName === `${lagName}_bucket`) {
          const le = v.labels.le;
          buckets.push({ le: le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), count: v.value });
        } else if (v.metricName === `${lagName}_count`) count = v.value;
      }
      const ms = (q: number) => {
        const s = histogramQuantile(q, buckets);
        return s === undefined ? null : Math.round(s * 1000);
      };
      let throttled = 0;
      for (const n of Object.values(throttles?.snapshot() ?? {})) throttled += n;
      return {
        readingsStored: await counterValue('ReadingsStored'),
        batchesStored: await counterValue('BatchesStored'),
        batchesDeduplicated: await counterValue('BatchesDeduplicated'),
        poisonBatches: await counterValue('PoisonBatches'),
        storeFailures: await counterValue('StoreFailures'),
        ingestLag: { count, p50Ms: ms(0.5), p99Ms: ms(0.99) },
        commands: {
          accepted: await counterValue('CommandsAccepted'),
          rejected: await counterValue('CommandsRejected'),
          conflicting: await counterValue('CommandsConflicting'),
        },
        connections: broker?.stats().connections ?? 0,
        throttled,
      };
    },
  };
}
