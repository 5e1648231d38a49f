/**
 * IoT SQL engine throughput: rule evaluations per second for the rules pifleet ships, against
 * realistic telemetry batches. Pure CPU, no I/O besides writing bench/results/iotsql.json.
 *
 *   npx tsx --conditions=@pifleet/source bench/iotsql.bench.ts [--seconds 1]
 *
 * Imports the engine by path: the workspace root does not depend on @pifleet/cloud.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type CompiledRule,
  compileRule,
  compileTemplate,
  type IotMessage,
  prepareMessage,
  serializeOutput,
} from '../cloud/src/core/iotsql/index.js';
import { appTopicFilters, appTopics, appTopicTemplate, presenceTopics } from '../protocol/src/index.js';

const secondsArg = process.argv.indexOf('--seconds');
const SECONDS = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 1;

const TELEMETRY = `'${appTopicFilters.telemetry}'`;
const RULES = {
  ingest: `SELECT *, topic(2) AS thingName, timestamp() AS receivedAt FROM ${TELEMETRY}`,
  archive: `SELECT *, topic(2) AS topicThing FROM ${TELEMETRY}`,
  alert: `SELECT topic(2) AS thingName, bootId, seq,
      (SELECT r.sensor AS sensor, r.ts AS ts, r.metrics.temperature AS temperature
         FROM readings AS r WHERE r.metrics.temperature > 30) AS breaches,
      timestamp() AS detectedAt
    FROM ${TELEMETRY}
    WHERE EXISTS (SELECT * FROM readings AS r WHERE r.metrics.temperature > 30)`,
  alertFirstReading: `SELECT topic(2) AS thingName, get(get(readings, 0), 'metrics').temperature AS temperature
    FROM ${TELEMETRY} WHERE get(get(readings, 0), 'metrics').temperature > 30`,
  presence: `SELECT *, topic(4) AS eventType, topic(5) AS thingName FROM '${presenceTopics.allFilter}'`,
} as const;

function batch(readings: number, hot: boolean): Uint8Array {
  const body = {
    v: 1,
    thingName: 'pi-0001',
    bootId: '3f0c2a1e-5b7d-4c1a-9e0f-1234567890ab',
    seq: 4711,
    sealedAt: 1_700_000_010_000,
    readings: Array.from({ length: readings }, (_, i) => ({
      sensor: i % 2 === 0 ? 'bme280' : 'ds18b20',
      ts: 1_700_000_000_000 + i * 1000,
      metrics: {
        temperature: hot && i === readings - 1 ? 31.25 : 21.5 + (i % 7) / 10,
        ...(i % 2 === 0 ? { humidity: 40.2, pressure: 1013.25 } : {}),
      },
    })),
  };
  return new TextEncoder().encode(JSON.stringify(body));
}

const topic = appTopics.telemetry('pi-0001');
const message = (payload: Uint8Array): IotMessage => ({
  topic,
  payload,
  clientId: 'pi-0001',
  timestamp: 1_700_000_011_000,
});

interface Result {
  case: string;
  payloadBytes: number;
  evalsPerSec: number;
  usPerEval: number;
  matched: boolean;
}

function measure(name: string, payloadBytes: number, fn: () => boolean): Result {
  // warm up until the JIT settles
  const warmEnd = performance.now() + Math.min(300, SECONDS * 300);
  while (performance.now() < warmEnd) for (let i = 0; i < 100; i++) fn();
  let n = 0;
  let matched = false;
  const start = performance.now();
  const end = start + SECONDS * 1000;
  let now = start;
  while (now < end) {
    for (let i = 0; i < 200; i++) matched = fn();
    n += 200;
    now = performance.now();
  }
  const elapsed = (now - start) / 1000;
  return {
    case: name,
    payloadBytes,
    evalsPerSec: Math.round(n / elapsed),
    usPerEval: Number(((elapsed / n) * 1e6).toFixed(2)),
    matched,
  };
}

const compiled = Object.fromEntries(Object.entries(RULES).map(([k, sql]) => [k, compileRule(sql)])) as Record<
  keyof typeof RULES,
  CompiledRule
>;
const results: Result[] = [];

for (const [readings, hot] of [
  [1, true],
  [10, true],
  [10, false],
  [100, true],
] as const) {
  const payload = batch(readings, hot);
  const label = `${readings} reading${readings === 1 ? '' : 's'}${hot ? ', hot' : ''}`;
  const prepared = prepareMessage(message(payload));
  for (const name of ['ingest', 'archive', 'alert', 'alertFirstReading'] as const) {
    const rule = compiled[name];
    results.push(measure(`${name} (${label}, prepared)`, payload.byteLength, () => rule.evaluate(prepared).matched));
  }
  results.push(
    measure(`decode + ingest (${label})`, payload.byteLength, () => compiled.ingest.evaluate(message(payload)).matched),
  );
  const shipped = [compiled.ingest, compiled.archive, compiled.alert, compiled.presence];
  results.push(
    measure(`decode + all shipped rules + serialize (${label})`, payload.byteLength, () => {
      const msg = prepareMessage(message(payload));
      let any = false;
      for (const rule of shipped) {
        const r = rule.evaluate(msg);
        if (r.matched) {
          serializeOutput(r.output);
          any = true;
        }
      }
      return any;
    }),
  );
}

const presencePayload = new TextEncoder().encode(
  JSON.stringify({
    clientId: 'pi-0001',
    timestamp: 1_700_000_000_000,
    eventType: 'connected',
    sessionIdentifier: '00000000-0000-0000-0000-000000000000',
    principalIdentifier: '12345678901234567890123456789012',
    ipAddress: '127.0.0.1',
    versionNumber: 0,
  }),
);
const presenceMsg = { topic: presenceTopics.connected('pi-0001'), payload: presencePayload };
results.push(
  measure('decode + presence', presencePayload.byteLength, () => compiled.presence.evaluate(presenceMsg).matched),
);
const miss = prepareMessage(message(batch(10, true)));
results.push(measure('presence on a telemetry topic (FROM miss)', 0, () => compiled.presence.evaluate(miss).matched));
const alertTopic = appTopicTemplate('alerts', 'topic(2)');
const template = compileTemplate(alertTopic);
const tmplMsg = prepareMessage(message(batch(1, true)));
results.push(measure(`template ${alertTopic}`, 0, () => template.render(tmplMsg).length > 0));
results.push(measure('compileRule(alert)', RULES.alert.length, () => compileRule(RULES.alert).topicFilter.length > 0));

console.table(
  results.map((r) => ({
    case: r.case,
    bytes: r.payloadBytes,
    'evals/s': r.evalsPerSec.toLocaleString('en-US'),
    'µs/eval': r.usPerEval,
    matched: r.matched,
  })),
);

const here = path.dirname(fileURLToPath(import.meta.url));
mkdirSync(path.join(here, 'results'), { recursive: true });
const out = path.join(here, 'results', 'iotsql.json');
writeFileSync(
  out,
  `${JSON.stringify(
    {
      benchmark: 'iotsql',
      date: new Date().toISOString(),
      node: process.version,
      cpu: os.cpus()[0]?.model ?? 'unknown',
      cpus: os.cpus().length,
      secondsPerCase: SECONDS,
      rules: RULES,
      // keyed by case so bench/run.ts prints one readable row per number
      results: Object.fromEntries(
        results.map((r) => [
          r.case,
          { evalsPerSec: r.evalsPerSec, usPerEval: r.usPerEval, payloadBytes: r.payloadBytes },
        ]),
      ),
    },
    null,
    2,
  )}\n`,
);
console.log(`wrote ${path.relative(process.cwd(), out)}`);
