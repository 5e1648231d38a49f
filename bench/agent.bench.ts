/**
 * Device agent benchmark (issue 6, issue 14):
 * 1. Outbox write throughput with the durability settings the agent uses (SQLite WAL,
 *    synchronous=FULL by default, NORMAL for comparison): sealed batches/s and readings/s,
 *    for realistic batches (50 readings) and the worst case (1 reading per batch).
 * 2. The reading journal (every sampled reading persisted before its batch is sealed): time per
 *    journal write at readingSync normal / full / off, time per seal (store the batch, delete its
 *    journal rows) and per acknowledgement at synchronous=FULL, WAL bytes written per reading, and
 *    the fsyncs each step issues, counted with strace on a child process (the figure that carries
 *    over to an SD card, whose fsync costs milliseconds).
 * 3. The SQLite binding's own cost per call, on `:memory:` (no I/O).
 * 4. Bytes on the wire per reading, telemetry batch v1 and v2 side by side, at 1, 10, 50 (the agent's
 *    default for these 5 sensors at 1 Hz: sealed by age every 10 s), 100 and 500 readings per
 *    message, as MQTT PUBLISH packets (payload + fixed header + topic + packet id), plus a TLS
 *    1.2/1.3 AES-GCM record overhead estimate of 29 bytes per message (one record per small
 *    publish), and each row's ratio to one v1 reading per message of the same readings (the issue 21
 *    target: ≤ 0.25×). Two sets of readings: the 5 sensors above, and the fleet run's device (one
 *    BME280 at 1 Hz, batches of 10).
 *
 *   npx -y pnpm@10 bench agent
 * Writes bench/results/agent.json. Talks to nothing but a temp directory.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Batcher, type SealedBatch, sealBatch, type TelemetryEncoding } from '../device-agent/src/core/batcher.js';
import { type JournalEntry, openOutbox, type ReadingSync } from '../device-agent/src/outbox/outbox.js';
import { appTopics, decodeTelemetryBatch, type Reading, utf8Length } from '../protocol/src/index.js';

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

/**
 * The fleet run's device (`pifleet-sim fleet --sensors 1`): one BME280 at 1 Hz, its values rounded
 * as the driver rounds them (temperature 0.01 °C, humidity 0.001 %RH, pressure 0.0001 hPa).
 */
function bme280Reading(i: number, t0: number): Reading {
  const round = (v: number, digits: number) => Math.round(v * 10 ** digits) / 10 ** digits;
  return {
    sensor: 'env',
    ts: t0 + i * 1000,
    metrics: {
      temperature: round(21 + Math.sin(i / 30) * 2 + (i % 7) / 100, 2),
      humidity: round(43 + Math.cos(i / 40) * 3 + (i % 5) / 300, 3),
      pressure: round(1013 + i / 900 + (i % 3) / 7, 4),
    },
  };
}

/** Batches of `size` readings as the agent seals them (its default encoding unless `encoding` says). */
function batchesOf(
  size: number,
  count: number,
  encoding?: TelemetryEncoding,
  make: (i: number, t0: number) => Reading = reading,
): SealedBatch[] {
  const b = new Batcher({
    thingName: 'pi-bench-01',
    bootId: '6f1c1d8e-2a4b-4c33-9d2e-0b7c5e1f9a10',
    limits: { maxReadings: size, maxBytes: 120 * 1024, maxAgeMs: 3_600_000 },
    ...(encoding === undefined ? {} : { encoding }),
  });
  const out: SealedBatch[] = [];
  const t0 = 1_767_225_600_000;
  for (let i = 0; out.length < count; i++) out.push(...b.add(make(i, t0), t0 + i));
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

const BOOT = '6f1c1d8e-2a4b-4c33-9d2e-0b7c5e1f9a10';
const T0 = 1_767_225_600_000;
const entry = (seq: number, i: number): JournalEntry => {
  const r = reading(i, T0);
  const json = JSON.stringify(r);
  return { bootId: BOOT, seq, reading: r, json, bytes: utf8Length(json) };
};

/**
 * The agent's write pattern: every reading journaled as it is sampled, every `perBatch` readings a
 * seal (the batch stored, its journal rows deleted, one transaction) and its acknowledgement.
 */
function journalCost(readingSync: ReadingSync, perBatch = 50) {
  const file = path.join(dir, `journal-${readingSync}.db`);
  const { outbox } = openOutbox({ path: file, maxBytes: 4 * 1024 ** 3, synchronous: 'full', readingSync });
  let journalNs = 0n;
  let sealNs = 0n;
  let ackNs = 0n;
  let readings = 0;
  let batches = 0;
  const deadline = process.hrtime.bigint() + BigInt(seconds * 1e9);
  while (process.hrtime.bigint() < deadline || batches === 0) {
    const seq = batches + 1;
    const open: Reading[] = [];
    for (let k = 0; k < perBatch; k++) {
      const e = entry(seq, readings);
      const t = process.hrtime.bigint();
      outbox.journal(e);
      journalNs += process.hrtime.bigint() - t;
      open.push(e.reading);
      readings += 1;
    }
    const batch = sealBatch({ thingName: 'pi-bench-01', bootId: BOOT, seq, readings: open, now: T0 + readings });
    let t = process.hrtime.bigint();
    const { id } = outbox.put(batch);
    sealNs += process.hrtime.bigint() - t;
    t = process.hrtime.bigint();
    outbox.ack(id);
    ackNs += process.hrtime.bigint() - t;
    batches += 1;
  }
  outbox.close();
  const us = (ns: bigint, n: number) => Number((Number(ns) / 1e3 / n).toFixed(1));
  return {
    readingSync,
    readingsPerBatch: perBatch,
    readings,
    usPerJournalWrite: us(journalNs, readings),
    usPerSeal: us(sealNs, batches),
    usPerAck: us(ackNs, batches),
    maxReadingsPerS: Math.round(readings / (Number(journalNs + sealNs + ackNs) / 1e9 || 1)),
  };
}

/**
 * The SQLite binding's own cost per outbox call: the agent's write pattern (journal 50 readings,
 * seal, read the next batches and the stats, acknowledge) on `:memory:`, so no I/O is timed. This
 * is what compared node:sqlite with better-sqlite3 12 and 13 (README, Benchmarks): on a file, the
 * fsyncs dominate every step but the journal write.
 */
function bindingCost(perBatch = 50) {
  const { outbox } = openOutbox({
    path: ':memory:',
    maxBytes: 4 * 1024 ** 3,
    synchronous: 'normal',
    readingSync: 'off',
  });
  let journalNs = 0n;
  let sealNs = 0n;
  let readNs = 0n;
  let ackNs = 0n;
  let readings = 0;
  let batches = 0;
  const deadline = process.hrtime.bigint() + BigInt(seconds * 1e9);
  while (process.hrtime.bigint() < deadline || batches === 0) {
    const seq = batches + 1;
    const open: Reading[] = [];
    for (let k = 0; k < perBatch; k++) {
      const e = entry(seq, readings);
      const t = process.hrtime.bigint();
      outbox.journal(e);
      journalNs += process.hrtime.bigint() - t;
      open.push(e.reading);
      readings += 1;
    }
    const batch = sealBatch({ thingName: 'pi-bench-01', bootId: BOOT, seq, readings: open, now: T0 + readings });
    let t = process.hrtime.bigint();
    const { id } = outbox.put(batch);
    sealNs += process.hrtime.bigint() - t;
    t = process.hrtime.bigint();
    outbox.next(4);
    outbox.stats();
    readNs += process.hrtime.bigint() - t;
    t = process.hrtime.bigint();
    outbox.ack(id);
    ackNs += process.hrtime.bigint() - t;
    batches += 1;
  }
  outbox.close();
  const us = (ns: bigint, n: number) => Number((Number(ns) / 1e3 / n).toFixed(2));
  return {
    usPerJournalWrite: us(journalNs, readings),
    usPerSeal: us(sealNs, batches),
    usPerNextAndStats: us(readNs, batches),
    usPerAck: us(ackNs, batches),
  };
}

/** WAL bytes one journal write adds: a page (4096) plus its frame header, whatever the reading's size. */
function walBytesPerReading() {
  const file = path.join(dir, 'journal-wal.db');
  const { outbox } = openOutbox({ path: file, maxBytes: 4 * 1024 ** 3, synchronous: 'full', readingSync: 'normal' });
  // One seal first, so the connection is in its journal mode (automatic checkpoints off) and the WAL exists.
  outbox.journal(entry(1, 0));
  outbox.put(sealBatch({ thingName: 'pi-bench-01', bootId: BOOT, seq: 1, readings: [reading(0, T0)], now: T0 }));
  outbox.journal(entry(2, 1));
  const before = statSync(`${file}-wal`).size;
  const n = 1000;
  for (let i = 0; i < n; i++) outbox.journal(entry(2, i + 2));
  const after = statSync(`${file}-wal`).size;
  outbox.close();
  const json = entry(2, 0).bytes;
  return { readingJsonBytes: json, walBytesPerReading: Math.round((after - before) / n) };
}

/**
 * fsync/fdatasync calls per step, counted by strace on a child running the step (`--probe`); the
 * baseline (open and close alone) is subtracted. Undefined without strace.
 */
function fsyncCounts() {
  const probe = (readingSync: ReadingSync, phase: 'base' | 'journal' | 'batches') => {
    const out = path.join(dir, `strace-${readingSync}-${phase}.txt`);
    const r = spawnSync(
      'strace',
      [
        '-f',
        '-qq',
        '-e',
        'trace=fsync,fdatasync',
        '-o',
        out,
        process.execPath,
        '--import',
        'tsx',
        '--conditions=@pifleet/source',
        fileURLToPath(import.meta.url),
        '--probe',
        readingSync,
        phase,
        path.join(dir, `probe-${readingSync}-${phase}.db`),
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    if (r.error || r.status !== 0) return undefined;
    return readFileSync(out, 'utf8')
      .split('\n')
      .filter((l) => /\b(fsync|fdatasync)\(/.test(l)).length;
  };
  const rows: Record<string, unknown>[] = [];
  for (const readingSync of ['normal', 'full', 'off'] as const) {
    const base = probe(readingSync, 'base');
    const journal = probe(readingSync, 'journal');
    const batches = probe(readingSync, 'batches');
    if (base === undefined || journal === undefined || batches === undefined) return undefined;
    rows.push({
      readingSync,
      fsyncsPerReading: Number(((journal - base) / PROBE_READINGS).toFixed(3)),
      // Each batch: its readings journaled, the seal, the acknowledgement (checkpoints included).
      fsyncsPerBatchOf50: Number(((batches - base - (journal - base)) / (PROBE_READINGS / 50)).toFixed(2)),
    });
  }
  return rows;
}

const PROBE_READINGS = 1000;

/** The child side of {@link fsyncCounts}. */
function runProbe(readingSync: ReadingSync, phase: string, file: string) {
  const { outbox } = openOutbox({ path: file, maxBytes: 4 * 1024 ** 3, synchronous: 'full', readingSync });
  // Every phase starts the same way (the WAL created by a first seal), so `base` cancels it out.
  outbox.put(sealBatch({ thingName: 'pi-bench-01', bootId: BOOT, seq: 1, readings: [reading(0, T0)], now: T0 }));
  if (phase === 'journal') {
    for (let i = 0; i < PROBE_READINGS; i++) outbox.journal(entry(2, i));
  } else if (phase === 'batches') {
    for (let b = 0; b < PROBE_READINGS / 50; b++) {
      const seq = b + 2;
      const open: Reading[] = [];
      for (let k = 0; k < 50; k++) {
        const e = entry(seq, b * 50 + k);
        outbox.journal(e);
        open.push(e.reading);
      }
      const { id } = outbox.put(sealBatch({ thingName: 'pi-bench-01', bootId: BOOT, seq, readings: open, now: T0 }));
      outbox.ack(id);
    }
  }
  // Not closed: closing checkpoints, which the agent does not do per batch either.
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
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
  const fixtures = [
    ['5 sensors', reading],
    ['1 bme280', bme280Reading],
  ] as const;
  for (const [fixture, make] of fixtures) {
    let v1Single = 0;
    for (const encoding of ['v1', 'v2'] as const) {
      for (const size of [1, 10, 50, 100, 500]) {
        const batches = batchesOf(size, 20, encoding, make);
        const payload = batches.reduce((n, b) => n + b.bytes, 0);
        const readings = batches.reduce((n, b) => n + b.readings, 0);
        const mqtt = batches.reduce((n, b) => n + publishPacket(b.bytes), 0);
        const mqttPerReading = mqtt / readings;
        if (encoding === 'v1' && size === 1) v1Single = mqttPerReading;
        rows.push({
          fixture,
          encoding,
          readingsPerMessage: size,
          payloadBytesPerReading: Number((payload / readings).toFixed(1)),
          mqttBytesPerReading: Number(mqttPerReading.toFixed(1)),
          mqttPlusTlsAndPubackBytesPerReading: Number(
            ((mqtt + batches.length * (tls * 2 + pubackBytes)) / readings).toFixed(1),
          ),
          vsOneV1ReadingPerMessage: Number((mqttPerReading / v1Single).toFixed(3)),
          messagesPer1000Readings: Math.ceil(1000 / size),
        });
      }
    }
  }
  // Sanity: the largest batch the agent sends stays under IoT Core's limit and decodes, in both encodings.
  const maxBatch = (['v1', 'v2'] as const).map((encoding) => {
    const big = batchesOf(10_000, 1, encoding)[0];
    const decoded = big ? decodeTelemetryBatch(big.json) : undefined;
    return { encoding, readings: big?.readings, bytes: big?.bytes, underLimitAndValid: decoded?.ok ?? false };
  });
  return {
    topic,
    tlsRecordOverheadEstimate: tls,
    rows,
    maxBatch,
  };
}

const probeAt = process.argv.indexOf('--probe');
if (probeAt >= 0) {
  const [sync, phase, file] = process.argv.slice(probeAt + 1);
  runProbe((sync ?? 'normal') as ReadingSync, phase ?? 'base', file ?? path.join(dir, 'probe.db'));
}

const results = {
  node: process.version,
  binding: bindingCost(),
  journal: {
    perStep: [journalCost('normal'), journalCost('full'), journalCost('off')],
    wal: walBytesPerReading(),
    fsyncs: fsyncCounts() ?? 'strace not available',
  },
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
console.table(results.journal.perStep);
console.log('binding cost (:memory:)', results.binding);
console.table(results.journal.fsyncs);
console.log(results.journal.wal);
console.table(results.outbox);
console.table(results.wire.rows);
mkdirSync(path.join(here, 'results'), { recursive: true });
writeFileSync(path.join(here, 'results', 'agent.json'), `${JSON.stringify(results, null, 2)}\n`);
