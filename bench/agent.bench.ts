/**
 * Device agent benchmark (issue 6):
 * 1. Outbox write throughput with the durability settings the agent uses (SQLite WAL,
 *    synchronous=FULL by default, NORMAL for comparison): sealed batches/s and readings/s,
 *    for realistic batches (50 readings) and the worst case (1 reading per batch).
 * 2. Bytes on the wire per reading: batched (the agent's default limits) vs one message per reading,
 *    as MQTT PUBLISH packets (payload + fixed header + topic + packet id), plus a TLS 1.2/1.3
 *    AES-GCM record overhead estimate of 29 bytes per message (one record per small publish).
 *
 *   npx -y pnpm@10 bench agent
 * Writes bench/results/agent.json. Talks to nothing but a temp directory.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Batcher, type SealedBatch } from '../device-agent/src/core/batcher.js';
import { openOutbox } from '../device-agent/src/outbox/outbox.js';
import { appTopics, encodeTelemetryBatch, type Reading } from '../protocol/src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-agent-bench-'));
const seconds = Number(process.env.BENCH_SECONDS ?? 3);

const sensors = ['env', 'light', 'door', 'soil', 'air'];
function reading(i: number, t0: number): Reading {
  const sensor = sensors[i % sensors.length] ?? 'env';
  const ts = t0 + i * 200;
  switch (sensor) {
    case 'env':
      return { sensor, ts, metrics: { temperature: 21.37 + (i % 7) / 10, humidity: 43.12, pressure: 1013.25 } };
    case 'light':
      return { sensor, ts, metrics: { illuminance: 312.5 + (i % 11) } };
    case 'door':
      return { sensor, ts, metrics: { state: i % 2 === 0, count: i } };
    default:
      return { sensor, ts, metrics: { volts: 1.2345 + (i % 13) / 1000 } };
  }
}

function batchesOf(size: number, count: number): SealedBatch[] {
  const b = new Batcher({
    thingName: 'pi-bench-01',
    bootId: '6f1c1d8e-2a4b-4c33-9d2e-0b7c5e1f9a10',
    limits: { maxReadings: size, maxBytes: 120 * 1024, maxAgeMs: 3_600_000 },
  });
  const out: SealedBatch[] = [];
  const t0 = 1_767_225_600_000;
  for (let i = 0; out.length < count; i++) out.push(...b.add(reading(i, t0), t0 + i));
  return out;
}

function outboxThroughput(sync: 'full' | 'normal', perBatch: number) {
  const file = path.join(dir, `outbox-${sync}-${perBatch}.db`);
  const { outbox } = openOutbox({ path: file, maxBytes: 4 * 1024 ** 3, synchronous: sync });
  const pool = batchesOf(perBatch, 200);
  let puts = 0;
  const started = process.hrtime.bigint();
  const deadline = started + BigInt(seconds * 1e9);
  while (process.hrtime.bigint() < deadline) {
    const b = pool[puts % pool.length] as SealedBatch;
    outbox.put(b);
    puts += 1;
  }
  const elapsedS = Number(process.hrtime.bigint() - started) / 1e9;
  outbox.close();
  return {
    synchronous: sync,
    readingsPerBatch: perBatch,
    batchesPerS: Math.round(puts / elapsedS),
    readingsPerS: Math.round((puts * perBatch) / elapsedS),
    msPerPut: Number(((elapsedS * 1000) / puts).toFixed(3)),
  };
}

function wireBytes() {
  const topic = appTopics.telemetry('pi-bench-01');
  const topicBytes = Buffer.byteLength(topic);
  const tls = 29;
  const publishPacket = (payload: number) => {
    const variable = 2 + topicBytes + 2 + payload; // topic length + topic + packet id + payload
    const lengthBytes = variable < 128 ? 1 : variable < 16_384 ? 2 : variable < 2_097_152 ? 3 : 4;
    return 1 + lengthBytes + variable;
  };
  const pubackBytes = 4;
  const rows: Record<string, unknown>[] = [];
  for (const size of [1, 10, 100, 500]) {
    const batches = batchesOf(size, 20);
    const payload = batches.reduce((n, b) => n + b.bytes, 0);
    const readings = batches.reduce((n, b) => n + b.readings, 0);
    const mqtt = batches.reduce((n, b) => n + publishPacket(b.bytes), 0);
    rows.push({
      readingsPerMessage: size,
      payloadBytesPerReading: Number((payload / readings).toFixed(1)),
      mqttBytesPerReading: Number((mqtt / readings).toFixed(1)),
      mqttPlusTlsAndPubackBytesPerReading: Number(
        ((mqtt + batches.length * (tls * 2 + pubackBytes)) / readings).toFixed(1),
      ),
      messagesPer1000Readings: Math.ceil(1000 / size),
    });
  }
  // Sanity: the largest batch the agent sends stays under IoT Core's limit.
  const big = batchesOf(10_000, 1)[0];
  const encodedOk = big ? encodeTelemetryBatch(JSON.parse(big.json)).ok : false;
  return {
    topic,
    tlsRecordOverheadEstimate: tls,
    rows,
    maxBatch: { readings: big?.readings, bytes: big?.bytes, underLimit: encodedOk },
  };
}

const results = {
  outbox: [
    outboxThroughput('full', 50),
    outboxThroughput('normal', 50),
    outboxThroughput('full', 1),
    outboxThroughput('normal', 1),
  ],
  wire: wireBytes(),
  storage: {
    filesystem: os.tmpdir(),
    note: 'tmp directory of the bench machine; an SD card on a Pi fsyncs far slower',
  },
};
rmSync(dir, { recursive: true, force: true });
console.table(results.outbox);
console.table(results.wire.rows);
mkdirSync(path.join(here, 'results'), { recursive: true });
writeFileSync(path.join(here, 'results', 'agent.json'), `${JSON.stringify(results, null, 2)}\n`);
