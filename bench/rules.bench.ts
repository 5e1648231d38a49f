/**
 * Rules engine throughput: the shipped rule definitions (rules/definitions.ts) on the local
 * core's broker bus (aedes behind mutual TLS), and telemetry ingest end to end through the
 * ingest rule and handler into SQLite.
 *
 *   npx -y pnpm@10 bench rules
 *   BENCH_BATCHES=4000 BENCH_READINGS=50 npx -y pnpm@10 bench rules
 *
 * Cases (every telemetry message is evaluated by the three rules on `pifleet/+/telemetry`; one
 * batch in 10 is over the alert threshold):
 * - `sql_only`: prepareMessage once + the three compiled rules, no bus, no actions (the SQL floor).
 * - `bus_noop_lambdas`: the shipped SQL through the engine on the bus, every action a no-op
 *   in-process handler: bus delivery, evaluation, queue and invoke.
 * - `bus_shipped_noop_ingest`: the shipped rules and actions (archive buffered per thing and flushed as gzip objects, alert
 *   republish, error sink) with a no-op ingest handler.
 * - `ingest_sqlite_inprocess`: everything real (ingest handler + SQLite store, archive, alerts),
 *   batches published in process.
 * - `ingest_sqlite_mqtt`: the same, batches published by an aws-iot-device-sdk-v2 client over mutual TLS with
 *   QoS 1 (policy checks off: this measures the pipeline, broker.bench measures policy cost).
 * Prints a table and writes bench/results/rules.json.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { iot, mqtt } from 'aws-iot-device-sdk-v2';
import { createSqliteTelemetryStore } from '../cloud/src/adapters/sqlite-telemetry-store.js';
import { type Broker, createBroker } from '../cloud/src/broker/index.js';
import { compileRule, prepareMessage } from '../cloud/src/core/iotsql/index.js';
import { createIngestHandler } from '../cloud/src/handlers/ingest.js';
import { createPresenceHandler } from '../cloud/src/handlers/presence.js';
import { silentLogger } from '../cloud/src/logger.js';
import type { IdentityDirectory } from '../cloud/src/ports/identity.js';
import { RULES, type RuleDefinition } from '../cloud/src/rules/definitions.js';
import { createRulesEngine, type RulesEngine } from '../cloud/src/rules/engine.js';
import { appTopicFilters, appTopics } from '../protocol/src/index.js';
import { createBenchPki } from './lib/pki.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const BATCHES = positive('BENCH_BATCHES', 2000);
const READINGS = positive('BENCH_READINGS', 50);
const THINGS = 20;
const WINDOW = 64;
const T0 = 1_700_000_000_000;
const TELEMETRY_RULES = RULES.filter((r) => r.sql.includes(`'${appTopicFilters.telemetry}'`)).length;

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  const n = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
  return n;
}

interface Message {
  readonly topic: string;
  readonly payload: Buffer;
}

/** Telemetry batches as devices publish them; every tenth has a reading over the alert threshold. */
function makeMessages(bootId: string): Message[] {
  return Array.from({ length: BATCHES }, (_, b) => {
    const thingName = `bench-${String(b % THINGS).padStart(3, '0')}`;
    const seq = Math.floor(b / THINGS) + 1;
    const readings = Array.from({ length: READINGS }, (_, i) => {
      const ts = T0 + b * READINGS * 100 + i * 100;
      const hot = b % 10 === 0 && i === 0;
      return i % 5 === 4
        ? { sensor: 'door', ts, metrics: { open: i % 2 === 0 } }
        : {
            sensor: 'bme280',
            ts,
            metrics: { temperature: hot ? 40 : 20 + (i % 7) / 10, humidity: 40, pressure: 1013.2 },
          };
    });
    const batch = { v: 1, thingName, bootId, seq, sealedAt: T0 + b * 10_000, readings };
    return { topic: appTopics.telemetry(thingName), payload: Buffer.from(JSON.stringify(batch)) };
  });
}

interface CaseResult {
  readonly messages: number;
  readonly seconds: number;
  readonly messagesPerSecond: number;
  readonly ruleEvaluationsPerSecond: number;
  readonly readingsStoredPerSecond?: number;
  readonly storedReadings?: number;
  readonly actions?: { readonly succeeded: number; readonly failed: number };
  readonly backpressureWaits?: number;
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}

function sqlOnly(messages: Message[]): CaseResult {
  const rules = RULES.map((r) => compileRule(r.sql)).filter((r) => r.topicFilter === appTopicFilters.telemetry);
  let matched = 0;
  const run = () => {
    for (const m of messages) {
      const msg = prepareMessage({ topic: m.topic, payload: m.payload, timestamp: T0 });
      for (const rule of rules) if (rule.evaluate(msg, { now: () => T0 }).matched) matched++;
    }
  };
  run(); // warm up
  const started = performance.now();
  run();
  const seconds = (performance.now() - started) / 1000;
  if (matched === 0) throw new Error('no rule matched');
  return {
    messages: messages.length,
    seconds: round(seconds),
    messagesPerSecond: Math.round(messages.length / seconds),
    ruleEvaluationsPerSecond: Math.round((messages.length * rules.length) / seconds),
  };
}

/** A bare identity directory: with policy checks off the broker only needs the port to exist. */
const noIdentities: IdentityDirectory = { identityOf: () => undefined, onIdentityChange: () => () => undefined };

async function publishInProcess(broker: Broker, messages: Message[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < messages.length) {
      const m = messages[next++] as Message;
      await broker.bus.publish(m.topic, m.payload, { qos: 1 });
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, worker));
}

async function publishOverMqtt(
  port: number,
  caCertPem: string,
  cert: { certPem: string; keyPem: string },
  messages: Message[],
): Promise<void> {
  const config = iot.AwsIotMqttConnectionConfigBuilder.new_mtls_builder(cert.certPem, cert.keyPem)
    .with_certificate_authority(caCertPem)
    .with_endpoint('127.0.0.1')
    .with_port(port)
    .with_client_id('bench-publisher')
    .with_clean_session(true)
    .with_keep_alive_seconds(60)
    .build();
  const connection = new mqtt.MqttClient().new_connection(config);
  await connection.connect();
  try {
    let next = 0;
    const worker = async () => {
      while (next < messages.length) {
        const m = messages[next++] as Message;
        await connection.publish(m.topic, m.payload, mqtt.QoS.AtLeastOnce);
      }
    };
    await Promise.all(Array.from({ length: WINDOW }, worker));
  } finally {
    await connection.disconnect();
  }
}

async function engineCase(options: {
  broker: Broker;
  dir: string;
  rules: readonly RuleDefinition[];
  realIngest: boolean;
  messages: Message[];
  publish: (messages: Message[]) => Promise<void>;
}): Promise<CaseResult> {
  const store = createSqliteTelemetryStore({ file: path.join(options.dir, 'telemetry.db') });
  await store.start();
  const noop = async () => undefined;
  const engine: RulesEngine = createRulesEngine({
    rules: options.rules,
    bus: options.broker.bus,
    handlers: options.realIngest
      ? {
          ingest: createIngestHandler({ store, logger: silentLogger() }),
          presence: createPresenceHandler({ store, logger: silentLogger() }),
        }
      : { ingest: noop, presence: noop },
    archiveDir: path.join(options.dir, 'archive'),
    logDir: path.join(options.dir, 'logs'),
    clock: { now: Date.now },
    logger: silentLogger(),
  });
  await engine.start();
  try {
    const started = performance.now();
    await options.publish(options.messages);
    await engine.idle();
    const seconds = (performance.now() - started) / 1000;
    const stats = engine.stats();
    const telemetryRules = stats.rules.filter((r) => r.topicFilter === appTopicFilters.telemetry);
    const actions = telemetryRules.reduce(
      (acc, r) => ({ succeeded: acc.succeeded + r.actions.succeeded, failed: acc.failed + r.actions.failed }),
      { succeeded: 0, failed: 0 },
    );
    if (actions.failed > 0) throw new Error(`${actions.failed} actions failed`);
    const storedReadings = options.realIngest ? await store.countReadings() : undefined;
    if (storedReadings !== undefined && storedReadings !== options.messages.length * READINGS) {
      throw new Error(`stored ${storedReadings} readings, expected ${options.messages.length * READINGS}`);
    }
    const n = options.messages.length;
    return {
      messages: n,
      seconds: round(seconds),
      messagesPerSecond: Math.round(n / seconds),
      ruleEvaluationsPerSecond: Math.round((n * telemetryRules.length) / seconds),
      ...(storedReadings === undefined
        ? {}
        : { storedReadings, readingsStoredPerSecond: Math.round(storedReadings / seconds) }),
      actions,
      backpressureWaits: stats.backpressureWaits,
    };
  } finally {
    await engine.stop();
    await store.stop();
  }
}

async function main(): Promise<void> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'pifleet-bench-rules-'));
  const results: Record<string, CaseResult> = {};
  const pki = await createBenchPki('ec');
  const device = await pki.issue('bench-publisher');
  const broker = createBroker({
    identities: noIdentities,
    tls: { caCertPem: pki.caCertPem, serverCertPem: pki.server.certPem, serverKeyPem: pki.server.keyPem },
    host: '127.0.0.1',
    port: 0,
    account: { region: 'us-east-1', accountId: '000000000000' },
    policyChecks: false,
    logger: silentLogger(),
  });
  const { port } = await broker.start();
  try {
    results.sql_only = sqlOnly(makeMessages('boot-sql'));

    const lambdasOnly = RULES.map((r) => ({ ...r, actions: [{ kind: 'lambda', handler: 'ingest' } as const] }));
    const dirOf = (name: string) => {
      const d = path.join(root, name);
      mkdirSync(d, { recursive: true });
      return d;
    };
    const inProcess = (messages: Message[]) => publishInProcess(broker, messages);
    results.bus_noop_lambdas = await engineCase({
      broker,
      dir: dirOf('noop'),
      rules: lambdasOnly,
      realIngest: false,
      messages: makeMessages('boot-noop'),
      publish: inProcess,
    });
    results.bus_shipped_noop_ingest = await engineCase({
      broker,
      dir: dirOf('shipped'),
      rules: RULES,
      realIngest: false,
      messages: makeMessages('boot-shipped'),
      publish: inProcess,
    });
    results.ingest_sqlite_inprocess = await engineCase({
      broker,
      dir: dirOf('sqlite-inprocess'),
      rules: RULES,
      realIngest: true,
      messages: makeMessages('boot-sqlite-in'),
      publish: inProcess,
    });
    results.ingest_sqlite_mqtt = await engineCase({
      broker,
      dir: dirOf('sqlite-mqtt'),
      rules: RULES,
      realIngest: true,
      messages: makeMessages('boot-sqlite-mqtt'),
      publish: (messages) => publishOverMqtt(port, pki.caCertPem, device, messages),
    });
  } finally {
    await broker.stop();
    rmSync(root, { recursive: true, force: true });
  }

  const doc = {
    batches: BATCHES,
    readingsPerBatch: READINGS,
    things: THINGS,
    telemetryRulesPerMessage: TELEMETRY_RULES,
    publishWindow: WINDOW,
    ...results,
  };
  mkdirSync(path.join(here, 'results'), { recursive: true });
  writeFileSync(path.join(here, 'results', 'rules.json'), `${JSON.stringify(doc, null, 2)}\n`);

  process.stdout.write(
    `rules: ${BATCHES} telemetry batches × ${READINGS} readings, ${TELEMETRY_RULES} rules per message\n`,
  );
  process.stdout.write('case                       msgs/s  rule evals/s  readings stored/s  backpressure\n');
  for (const [name, r] of Object.entries(results)) {
    process.stdout.write(
      `${name.padEnd(24)} ${String(r.messagesPerSecond).padStart(8)}  ${String(r.ruleEvaluationsPerSecond).padStart(12)}  ${String(r.readingsStoredPerSecond ?? '-').padStart(17)}  ${String(r.backpressureWaits ?? '-').padStart(12)}\n`,
    );
  }
}

await main();
