import { register as globalRegistry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  createPrometheusMetrics,
  histogramQuantile,
  INGEST_LAG_BUCKETS_SECONDS,
  prometheusName,
} from '../../src/adapters/prometheus-metrics.js';
import type { BrokerStats } from '../../src/broker/broker.js';
import { QUOTA_NAMES, type QuotaName } from '../../src/limits/quotas.js';
import { CLOUD_METRICS, type CloudMetricName } from '../../src/ports/metrics.js';
import type { RulesEngineStats } from '../../src/rules/engine.js';
import { parseExposition } from './prometheus-text.js';

/** The adapter on its own, with fakes of the counters it reads (the core's: test/app/metrics.test.ts). */

const scrape = async (m: ReturnType<typeof createPrometheusMetrics>) => parseExposition((await m.scrape()).body);

describe('metric names', () => {
  it.each([
    ['ReadingsStored', 'pifleet_readings_stored_total'],
    ['BatchesStored', 'pifleet_batches_stored_total'],
    ['BatchesDeduplicated', 'pifleet_batches_deduplicated_total'],
    ['PoisonBatches', 'pifleet_poison_batches_total'],
    ['StoreFailures', 'pifleet_store_failures_total'],
    ['IngestLag', 'pifleet_ingest_lag_seconds'],
    ['CommandsAccepted', 'pifleet_commands_accepted_total'],
    ['CommandsRejected', 'pifleet_commands_rejected_total'],
    ['CommandsConflicting', 'pifleet_commands_conflicting_total'],
    ['SilentDevices', 'pifleet_silent_devices'],
  ] as const)('%s is %s', (name, expected) => {
    expect(prometheusName(name)).toBe(expected);
  });

  it('names every metric of the port, each with its type and help in the exposition', async () => {
    const text = await scrape(createPrometheusMetrics({ processMetrics: false }));
    for (const name of Object.keys(CLOUD_METRICS) as CloudMetricName[]) {
      const family = prometheusName(name);
      const type =
        CLOUD_METRICS[name] === 'Milliseconds' ? 'histogram' : name === 'SilentDevices' ? 'gauge' : 'counter';
      expect(text.types.get(family), family).toBe(type);
      expect(text.help.get(family)?.length, family).toBeGreaterThan(10);
    }
  });
});

describe('what the handlers add', () => {
  it('counts, observes the lag in seconds and keeps the last silent-device count', async () => {
    const m = createPrometheusMetrics({ processMetrics: false });
    m.add('ReadingsStored', 5);
    m.add('ReadingsStored', 3);
    m.add('BatchesStored', 1);
    m.add('IngestLag', 40);
    m.add('IngestLag', 3_000);
    m.add('SilentDevices', 4);
    m.add('SilentDevices', 2);
    const text = await scrape(m);
    expect(text.value('pifleet_readings_stored_total')).toBe(8);
    expect(text.value('pifleet_batches_stored_total')).toBe(1);
    expect(text.value('pifleet_commands_accepted_total')).toBe(0);
    expect(text.value('pifleet_silent_devices')).toBe(2);
    expect(text.value('pifleet_ingest_lag_seconds_bucket', { le: '0.025' })).toBe(0);
    expect(text.value('pifleet_ingest_lag_seconds_bucket', { le: '0.05' })).toBe(1);
    expect(text.value('pifleet_ingest_lag_seconds_bucket', { le: '2.5' })).toBe(1);
    expect(text.value('pifleet_ingest_lag_seconds_bucket', { le: '5' })).toBe(2);
    expect(text.value('pifleet_ingest_lag_seconds_bucket', { le: '+Inf' })).toBe(2);
    expect(text.value('pifleet_ingest_lag_seconds_count')).toBe(2);
    expect(text.value('pifleet_ingest_lag_seconds_sum')).toBeCloseTo(3.04, 9);
    // 10 ms to 60 s, and +Inf.
    expect(text.series('pifleet_ingest_lag_seconds_bucket').map((s) => s.labels.le)).toEqual([
      ...INGEST_LAG_BUCKETS_SECONDS.map(String),
      '+Inf',
    ]);
  });

  it.each([
    ['a negative count', 'ReadingsStored', -1],
    ['NaN', 'ReadingsStored', Number.NaN],
    ['an infinite lag', 'IngestLag', Number.POSITIVE_INFINITY],
    ['a name the port does not have', '__proto__', 1],
  ] as const)('drops %s without throwing (a metric never breaks what it measures)', async (_, name, value) => {
    const m = createPrometheusMetrics({ processMetrics: false });
    m.add('ReadingsStored', 2);
    expect(() => m.add(name as CloudMetricName, value)).not.toThrow();
    const text = await scrape(m);
    expect(text.value('pifleet_readings_stored_total')).toBe(2);
    expect(text.value('pifleet_ingest_lag_seconds_count')).toBe(0);
  });

  it('keeps each core its own registry, and never uses the global one', async () => {
    const a = createPrometheusMetrics({ processMetrics: false });
    const b = createPrometheusMetrics({ processMetrics: false });
    a.add('CommandsAccepted', 1);
    expect((await scrape(a)).value('pifleet_commands_accepted_total')).toBe(1);
    expect((await scrape(b)).value('pifleet_commands_accepted_total')).toBe(0);
    expect(globalRegistry.getSingleMetric('pifleet_commands_accepted_total')).toBeUndefined();
  });
});

describe('what other parts count, read at scrape time', () => {
  function sources() {
    const broker: { stats: BrokerStats; queued: number } = {
      stats: {
        connections: 2,
        connects: 5,
        disconnects: { CONNECTION_LOST: 2, CLIENT_INITIATED_DISCONNECT: 1 },
        messagesReceived: 40,
        messagesDelivered: 12,
      },
      queued: 3,
    };
    const throttled = Object.fromEntries(QUOTA_NAMES.map((q) => [q, 0])) as Record<QuotaName, number>;
    throttled.topicFiltersPerSubscribe = 2;
    const rules: RulesEngineStats = {
      messages: 9,
      queued: 4,
      running: 1,
      backpressureWaits: 0,
      notAcknowledged: 1,
      rules: [
        {
          name: 'pifleet_telemetry_ingest',
          topicFilter: 'pifleet/+/telemetry',
          matched: 7,
          actions: { succeeded: 6, failed: 1 },
          errorActions: { succeeded: 1, failed: 0 },
        },
      ],
    };
    const metrics = createPrometheusMetrics({
      processMetrics: false,
      broker: { stats: () => broker.stats, queuedMessages: () => broker.queued },
      throttles: { snapshot: () => ({ ...throttled }) },
      rules: () => ({ stats: () => rules }),
    });
    return { metrics, broker, throttled };
  }

  it('exposes the broker, quota and rule counts as they are at the scrape', async () => {
    const { metrics, broker, throttled } = sources();
    let text = await scrape(metrics);
    expect(text.value('pifleet_mqtt_connections')).toBe(2);
    expect(text.value('pifleet_mqtt_connects_total')).toBe(5);
    expect(text.value('pifleet_mqtt_disconnects_total', { reason: 'CONNECTION_LOST' })).toBe(2);
    expect(text.value('pifleet_mqtt_disconnects_total', { reason: 'CLIENT_INITIATED_DISCONNECT' })).toBe(1);
    expect(text.value('pifleet_mqtt_messages_received_total')).toBe(40);
    expect(text.value('pifleet_mqtt_messages_delivered_total')).toBe(12);
    expect(text.value('pifleet_mqtt_queued_messages')).toBe(3);
    // Every quota, zeros included, so a dashboard sees a series before the first breach.
    expect(text.series('pifleet_quota_throttled_total')).toHaveLength(QUOTA_NAMES.length);
    expect(text.value('pifleet_quota_throttled_total', { quota: 'topicFiltersPerSubscribe' })).toBe(2);
    expect(text.value('pifleet_quota_throttled_total', { quota: 'clientIdBytes' })).toBe(0);
    const rule = 'pifleet_telemetry_ingest';
    expect(text.value('pifleet_rules_messages_total')).toBe(9);
    expect(text.value('pifleet_rule_matched_total', { rule })).toBe(7);
    expect(text.value('pifleet_rule_actions_total', { rule, outcome: 'succeeded' })).toBe(6);
    expect(text.value('pifleet_rule_actions_total', { rule, outcome: 'failed' })).toBe(1);
    expect(text.value('pifleet_rule_error_actions_total', { rule, outcome: 'succeeded' })).toBe(1);
    expect(text.value('pifleet_rules_not_acknowledged_total')).toBe(1);
    expect(text.value('pifleet_rules_jobs', { state: 'queued' })).toBe(4);
    expect(text.types.get('pifleet_mqtt_connects_total')).toBe('counter');
    expect(text.types.get('pifleet_mqtt_connections')).toBe('gauge');

    // The next scrape shows the sources' new values, not a sum with the last scrape's.
    broker.stats = { ...broker.stats, connects: 6, connections: 1 };
    throttled.topicFiltersPerSubscribe = 3;
    text = await scrape(metrics);
    expect(text.value('pifleet_mqtt_connects_total')).toBe(6);
    expect(text.value('pifleet_mqtt_connections')).toBe(1);
    expect(text.value('pifleet_quota_throttled_total', { quota: 'topicFiltersPerSubscribe' })).toBe(3);
  });

  it('sums the console summary from the same counters', async () => {
    const { metrics } = sources();
    metrics.add('ReadingsStored', 12);
    metrics.add('BatchesStored', 3);
    metrics.add('PoisonBatches', 1);
    metrics.add('CommandsConflicting', 1);
    for (const ms of [20, 30, 45, 60, 700]) metrics.add('IngestLag', ms);
    expect(await metrics.summary()).toEqual({
      readingsStored: 12,
      batchesStored: 3,
      batchesDeduplicated: 0,
      poisonBatches: 1,
      storeFailures: 0,
      // p50: rank 2.5 of 5 falls in (25 ms, 50 ms], which holds the 2nd and 3rd: 25 + 25 × 1.5/2.
      // p99: rank 4.95 falls in (500 ms, 1 s], which holds the 5th: 500 + 500 × 0.95.
      ingestLag: { count: 5, p50Ms: 44, p99Ms: 975 },
      commands: { accepted: 0, rejected: 0, conflicting: 1 },
      connections: 2,
      throttled: 2,
    });
  });

  it('answers an empty summary before anything happened, without sources', async () => {
    expect(await createPrometheusMetrics({ processMetrics: false }).summary()).toMatchObject({
      readingsStored: 0,
      ingestLag: { count: 0, p50Ms: null, p99Ms: null },
      connections: 0,
      throttled: 0,
    });
  });
});

describe('process metrics', () => {
  it("includes prom-client's process and Node.js metrics by default, in the Prometheus content type", async () => {
    const m = createPrometheusMetrics();
    const { contentType, body } = await m.scrape();
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = parseExposition(body);
    expect(text.types.get('process_cpu_user_seconds_total')).toBe('counter');
    expect(text.types.get('nodejs_heap_size_used_bytes')).toBe('gauge');
    expect(text.types.get('pifleet_readings_stored_total')).toBe('counter');
    // A second core shares the one process registry (one event-loop monitor per process).
    expect(
      parseExposition((await createPrometheusMetrics().scrape()).body).types.get('nodejs_eventloop_lag_p99_seconds'),
    ).toBe('gauge');
  });

  it('leaves them out when asked', async () => {
    const text = await scrape(createPrometheusMetrics({ processMetrics: false }));
    expect(text.types.has('process_cpu_user_seconds_total')).toBe(false);
  });
});

describe('histogramQuantile', () => {
  const b = (...pairs: [number, number][]) => pairs.map(([le, count]) => ({ le, count }));
  it.each([
    ['no observations', 0.5, b([1, 0], [Number.POSITIVE_INFINITY, 0]), undefined],
    ['within the first bucket, from 0', 0.5, b([1, 4], [2, 4], [Number.POSITIVE_INFINITY, 4]), 0.5],
    ['linear within its bucket', 0.75, b([1, 2], [2, 4], [Number.POSITIVE_INFINITY, 4]), 1.5],
    ['skipping empty buckets', 0.5, b([1, 0], [2, 0], [4, 2], [Number.POSITIVE_INFINITY, 2]), 3],
    ['the highest finite bound when it falls in +Inf', 0.99, b([1, 1], [Number.POSITIVE_INFINITY, 10]), 1],
    ['undefined for q outside 0–1', 1.5, b([1, 1], [Number.POSITIVE_INFINITY, 1]), undefined],
  ] as const)('%s', (_, q, buckets, expected) => {
    expect(histogramQuantile(q, buckets)).toBe(expected);
  });
});

describe('the exposition reader of these tests', () => {
  it('unescapes label values and refuses what is not the format', () => {
    const ok = parseExposition('# TYPE x counter\nx{a="q\\"\\\\\\n",b="2"} 3\n');
    expect(ok.value('x', { a: 'q"\\\n', b: '2' })).toBe(3);
    expect(() => parseExposition('x 1\n')).toThrow(/TYPE/);
    expect(() => parseExposition('# TYPE x counter\nx{a="1"} 1\nx{a="1"} 2\n')).toThrow(/twice/);
    expect(() => parseExposition('# TYPE x counter\nx{a="1} 1\n')).toThrow(/unterminated|malformed/);
    expect(() => parseExposition('# TYPE x counter\nx one\n')).toThrow(/value/);
  });
});
