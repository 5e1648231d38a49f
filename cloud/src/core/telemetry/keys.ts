import type { TelemetryBatch } from '@pifleet/protocol';
import type { LatestValue, StoredReading } from '../../ports/telemetry-store.js';

/**
 * Storage keys shared by every telemetry store, so that all of them order readings the same way
 * and hand out interchangeable page tokens.
 *
 * A reading's sort key is `R#<ts>#<sensor>#<bootId>#<seq>#<index>` with `ts` and `seq` zero-padded
 * to 16 digits (every safe integer fits) and `index` to 5 (a batch holds at most 10,000 readings).
 * Byte order of the key is time order; the rest makes it unique and total, so a page boundary is
 * one key and the next page starts strictly after it. Sensor ids cannot contain `#`, and the
 * padded `seq` and `index` are fixed width, so a key names exactly one reading even when a
 * bootId contains `#`.
 */
export const READING_KEY_PREFIX = 'R#';
const TS_DIGITS = 16;
const SEQ_DIGITS = 16;
const INDEX_DIGITS = 5;
/** Sorts after every sensor id character (`[a-zA-Z0-9_.:-]`), closing a time range's upper bound. */
const AFTER_SENSOR = '~';

export function padNumber(n: number, digits: number): string {
  return String(n).padStart(digits, '0');
}

export function readingSortKey(ts: number, sensor: string, bootId: string, seq: number, index: number): string {
  return `${READING_KEY_PREFIX}${padNumber(ts, TS_DIGITS)}#${sensor}#${bootId}#${padNumber(seq, SEQ_DIGITS)}#${padNumber(index, INDEX_DIGITS)}`;
}

export function storedReadingKey(r: StoredReading): string {
  return readingSortKey(r.ts, r.sensor, r.bootId, r.seq, r.index);
}

/** Inclusive key bounds of the readings with `from <= ts <= to`. */
export function readingKeyRange(from: number, to: number): { readonly lower: string; readonly upper: string } {
  return {
    lower: `${READING_KEY_PREFIX}${padNumber(from, TS_DIGITS)}#`,
    upper: `${READING_KEY_PREFIX}${padNumber(to, TS_DIGITS)}#${AFTER_SENSOR}`,
  };
}

/** The key that marks a batch as stored: `B#<bootId>#<seq>`. */
export function batchMarkerKey(bootId: string, seq: number): string {
  return `B#${bootId}#${padNumber(seq, SEQ_DIGITS)}`;
}

/** Every reading of a batch as the stores keep it, in batch order. */
export function batchToStoredReadings(batch: TelemetryBatch): StoredReading[] {
  return batch.readings.map((r, index) => ({
    thingName: batch.thingName,
    sensor: r.sensor,
    ts: r.ts,
    metrics: r.metrics,
    bootId: batch.bootId,
    seq: batch.seq,
    index,
  }));
}

/**
 * The newest value of each (sensor, metric) inside one batch; on equal times the later reading
 * in the batch wins. Stores merge these into what they hold, keeping the newer time.
 */
export function latestValuesOf(batch: TelemetryBatch): LatestValue[] {
  const byKey = new Map<string, LatestValue>();
  for (const r of batch.readings) {
    for (const [metric, value] of Object.entries(r.metrics)) {
      const key = `${r.sensor}\u0000${metric}`;
      const seen = byKey.get(key);
      if (seen === undefined || r.ts >= seen.ts) byKey.set(key, { sensor: r.sensor, metric, value, ts: r.ts });
    }
  }
  return sortLatest([...byKey.values()]);
}

/** Orders latest values by sensor, then metric. */
export function sortLatest(values: LatestValue[]): LatestValue[] {
  return values.sort((a, b) => compareStrings(a.sensor, b.sensor) || compareStrings(a.metric, b.metric));
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** With a metric filter, a reading is returned only when it has that metric, and then with only that metric. */
export function projectMetric(reading: StoredReading, metric: string | undefined): StoredReading | undefined {
  if (metric === undefined) return reading;
  if (!Object.hasOwn(reading.metrics, metric)) return undefined;
  const value = reading.metrics[metric];
  if (value === undefined) return undefined;
  return { ...reading, metrics: { [metric]: value } };
}
