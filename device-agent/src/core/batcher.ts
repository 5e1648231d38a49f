import {
  batchEnvelopeBytes,
  encodeTelemetryBatch,
  encodeTelemetryBatchV2,
  LIMITS,
  type Reading,
  readingWireBytes,
  TELEMETRY_V2,
  TELEMETRY_VERSION,
  type TelemetryBatch,
  toTelemetryBatchV2,
  utf8Length,
} from '@pifleet/protocol';
import { AgentError } from '../errors.js';

/**
 * The telemetry batch format the agent publishes: `v2` (per-sensor groups, metric names once, times
 * as offsets; about a third of v1's bytes at 50 readings a batch) unless a cloud's rules still read
 * v1's `readings[]` (`telemetry.encoding: v1`). The cloud accepts both.
 */
export type TelemetryEncoding = 'v1' | 'v2';
export const DEFAULT_TELEMETRY_ENCODING: TelemetryEncoding = 'v2';

export interface BatchLimits {
  readonly maxReadings: number;
  readonly maxBytes: number;
  readonly maxAgeMs: number;
}

/** A batch ready for the outbox: identity, counts and the exact bytes that go on the wire. */
export interface SealedBatch {
  readonly bootId: string;
  readonly seq: number;
  readonly sealedAt: number;
  readonly readings: number;
  readonly json: string;
  readonly bytes: number;
}

/** Largest `sealedAt` we size for (13 digits lasts until the year 2286). */
const MAX_TS = 9_999_999_999_999;

/**
 * Collects readings into telemetry batches bounded by count, encoded bytes and age.
 * Pure: time comes in as arguments; the caller schedules a timer for {@link deadline}.
 *
 * The byte bound is on the encoding that is published, never an estimate below it: in v1 each
 * reading's exact encoded size plus the envelope sized for the largest timestamp; in v2 an upper
 * bound kept as readings arrive ({@link V2Size}). So a sealed batch is never larger than `maxBytes`
 * (and never larger than IoT Core's 128 KB, even for a single reading above `maxBytes`, which is
 * sealed on its own).
 */
export class Batcher {
  readonly #thingName: string;
  readonly #bootId: string;
  readonly #encoding: TelemetryEncoding;
  #limits: BatchLimits;
  #seq: number;
  #open: Reading[] = [];
  #openWireBytes = 0;
  readonly #v2: V2Size | undefined;
  #openedAt: number | undefined;
  #oversizeDropped = 0;

  constructor(opts: {
    thingName: string;
    bootId: string;
    limits: BatchLimits;
    nextSeq?: number;
    encoding?: TelemetryEncoding;
  }) {
    this.#thingName = opts.thingName;
    this.#bootId = opts.bootId;
    this.#limits = opts.limits;
    this.#seq = opts.nextSeq ?? 1;
    this.#encoding = opts.encoding ?? DEFAULT_TELEMETRY_ENCODING;
    this.#v2 = this.#encoding === 'v2' ? new V2Size() : undefined;
  }

  get encoding(): TelemetryEncoding {
    return this.#encoding;
  }

  get limits(): BatchLimits {
    return this.#limits;
  }

  /** Readings waiting in the open batch. */
  get pending(): number {
    return this.#open.length;
  }

  /** Readings dropped because a single reading alone exceeds IoT Core's message limit. */
  get oversizeDropped(): number {
    return this.#oversizeDropped;
  }

  /** The sequence number the next sealed batch gets. */
  get nextSeq(): number {
    return this.#seq;
  }

  /** When the open batch must be sealed by age, or undefined when it is empty. */
  deadline(): number | undefined {
    return this.#openedAt === undefined ? undefined : this.#openedAt + this.#limits.maxAgeMs;
  }

  /** The envelope's size only changes with `seq`: computed once per batch, not per reading. */
  #envelopeCache: { seq: number; bytes: number } | undefined;

  #envelope(): number {
    if (this.#envelopeCache?.seq !== this.#seq) {
      this.#envelopeCache = {
        seq: this.#seq,
        bytes:
          this.#v2 === undefined
            ? batchEnvelopeBytes(this.#thingName, this.#bootId, this.#seq, MAX_TS)
            : V2Size.envelope(this.#thingName, this.#bootId, this.#seq, MAX_TS),
      };
    }
    return this.#envelopeCache.bytes;
  }

  /** Encoded size (v2: its upper bound) of the open batch plus `extra` bytes that a reading adds. */
  #sizeWith(extra: number): number {
    // v1: each reading's wire size counts its comma; the last reading has none.
    if (this.#v2 === undefined) return this.#envelope() + this.#openWireBytes + extra - 1;
    return this.#envelope() + this.#v2.bytes + extra;
  }

  /** What adding `reading` grows the open batch by: v1 its wire size, v2 the growth of the bound. */
  #growth(reading: Reading, wireBytes: number | undefined): number {
    if (this.#v2 === undefined) return wireBytes ?? readingWireBytes(reading);
    return this.#v2.growth(reading);
  }

  /**
   * Adds a reading; returns the batches it caused to be sealed (0, 1 or 2), oldest first.
   * Afterwards the reading is in the open batch (`nextSeq`) exactly when `pending > 0`: otherwise it
   * was sealed in the last returned batch, or dropped as oversize. `wireBytes` is its
   * {@link readingWireBytes}, when the caller has already encoded it (v1 uses it; v2 sizes the
   * reading in its own encoding and ignores it).
   */
  add(reading: Reading, now: number, wireBytes?: number): SealedBatch[] {
    const sealed: SealedBatch[] = [];
    let grows = this.#growth(reading, wireBytes);
    const cap = Math.min(this.#limits.maxBytes, LIMITS.maxMessageBytes);
    if (this.#open.length > 0 && this.#sizeWith(grows) > cap) {
      const s = this.seal(now);
      if (s) sealed.push(s);
      // In v2 a reading costs more in an empty batch (its group's names) than in one with its group.
      grows = this.#growth(reading, wireBytes);
    }
    if (this.#sizeWith(grows) > LIMITS.maxMessageBytes) {
      this.#oversizeDropped += 1;
      return sealed;
    }
    if (this.#open.length === 0) this.#openedAt = now;
    this.#open.push(reading);
    if (this.#v2 === undefined) this.#openWireBytes += grows;
    else this.#v2.add(reading);
    if (this.#open.length >= this.#limits.maxReadings || this.#sizeWith(0) > cap) {
      const s = this.seal(now);
      if (s) sealed.push(s);
    }
    return sealed;
  }

  /** Seals the open batch when its age limit has passed. */
  sealIfDue(now: number): SealedBatch | undefined {
    const deadline = this.deadline();
    return deadline !== undefined && now >= deadline ? this.seal(now) : undefined;
  }

  /** Seals the open batch now (shutdown, or a limit reached); undefined when empty. */
  seal(now: number): SealedBatch | undefined {
    if (this.#open.length === 0) return undefined;
    const sealed = sealBatch({
      thingName: this.#thingName,
      bootId: this.#bootId,
      seq: this.#seq,
      readings: this.#open,
      now,
      encoding: this.#encoding,
    });
    this.#seq += 1;
    this.#open = [];
    this.#openWireBytes = 0;
    this.#v2?.reset();
    this.#openedAt = undefined;
    return sealed;
  }

  /** Changes the limits; returns the open batch sealed if it already breaks the new ones. */
  setLimits(limits: BatchLimits, now: number): SealedBatch | undefined {
    this.#limits = limits;
    const cap = Math.min(limits.maxBytes, LIMITS.maxMessageBytes);
    if (this.#open.length >= limits.maxReadings || (this.#open.length > 0 && this.#sizeWith(0) > cap)) {
      return this.seal(now);
    }
    return this.sealIfDue(now);
  }
}

/**
 * Encodes readings as the batch `(bootId, seq)`: what {@link Batcher.seal} does, and how the agent
 * seals the readings a crashed process left in the outbox's journal under the identity they were
 * journaled with (that batch was never sealed, so never sent). `encoding` is the batcher's
 * ({@link Batcher.encoding}); without it, v1: the format every caller of this function had before v2.
 */
export function sealBatch(b: {
  readonly thingName: string;
  readonly bootId: string;
  readonly seq: number;
  readonly readings: readonly Reading[];
  readonly now: number;
  readonly encoding?: TelemetryEncoding;
}): SealedBatch {
  const sealedAt = Math.min(Math.max(0, Math.floor(b.now)), MAX_TS);
  const identity = { thingName: b.thingName, bootId: b.bootId, seq: b.seq, sealedAt };
  const encoded =
    b.encoding === 'v2'
      ? encodeTelemetryBatchV2(toTelemetryBatchV2({ ...identity, readings: b.readings }))
      : encodeTelemetryBatch({
          v: TELEMETRY_VERSION,
          ...identity,
          readings: b.readings as Reading[],
        } satisfies TelemetryBatch);
  // By construction the batch fits (an open batch never outgrows the limit); a failure here is a
  // bug in the size accounting.
  if (!encoded.ok) {
    throw new AgentError('BATCH_TOO_LARGE', 'sealed batch exceeds the message limit', {
      data: { issues: encoded.issues },
    });
  }
  return {
    bootId: b.bootId,
    seq: b.seq,
    sealedAt,
    readings: b.readings.length,
    json: encoded.value.json,
    bytes: encoded.value.bytes,
  };
}

/** Decimal digits of a non-negative integer (1 for 0). */
function digits(n: number): number {
  let d = 1;
  for (let x = n; x >= 10; x = Math.floor(x / 10)) d += 1;
  return d;
}

/** JSON text length of a metric value (ASCII, so also its UTF-8 bytes). */
const valueLength = (v: number | boolean): number => (typeof v === 'boolean' ? (v ? 4 : 5) : String(v).length);

interface V2Group {
  /** Longest numeric value seen per metric (0: no number yet): what its `peak` entry can take. */
  readonly peakLength: Map<string, number>;
  hasPeak: boolean;
}

/**
 * An upper bound on the v2 encoding of the open batch's readings (everything but the envelope),
 * kept in O(metrics) per reading instead of encoding the batch again. What it counts, against
 * `toTelemetryBatchV2` + `JSON.stringify`:
 * - a group: `{"sensor":"…","dt":[],"metrics":{…}},` with `"name":[],` per metric, and once it has
 *   a number `,"peak":{}` plus `"name":<longest number of the column>,` per numeric metric (the
 *   peak is one of the column's values, so never longer than its longest);
 * - a reading: each value and its comma, and its `dt` entry (ts − the earliest ts) and comma. A
 *   reading earlier than every other moves `t0`, and the entries are summed again (a clock step
 *   back; O(readings), once per step);
 * - `t0`: counted in the envelope at 13 digits; an earliest time with more adds the difference.
 * The bound overcounts by a comma per array and object (a few bytes per group), never undercounts:
 * measured 0.02 % of a 120 KB batch of one sensor, where a bound on the time span's digits wasted 1 %.
 */
class V2Size {
  static envelope(thingName: string, bootId: string, seq: number, sealedAt: number): number {
    const empty = { v: TELEMETRY_V2, thingName, bootId, seq, sealedAt, t0: MAX_TS, sensors: [] };
    return utf8Length(JSON.stringify(empty));
  }

  readonly #groups = new Map<string, V2Group>();
  /** Group and value bytes (everything but `dt` entries and the extra `t0` digits). */
  #fixed = 0;
  /** Times of the open readings, to sum the `dt` entries again when `t0` moves. */
  readonly #times: number[] = [];
  #minTs = Number.POSITIVE_INFINITY;
  /** Σ (digits(ts − minTs) + 1) over the open readings. */
  #dtBytes = 0;

  get bytes(): number {
    return this.#fixed + this.#dtBytes + V2Size.#t0Extra(this.#minTs);
  }

  static #t0Extra(t0: number): number {
    return Number.isFinite(t0) ? Math.max(0, digits(t0) - 13) : 0;
  }

  static #keyOf(reading: Reading): string {
    let key = reading.sensor;
    for (const name in reading.metrics) key += `\u0000${name}`;
    return key;
  }

  /**
   * The last reading measured by {@link growth}, and what adding it changes: {@link add} of the
   * same reading (the batcher's next step) commits it without measuring again.
   */
  #measured: Reading | undefined;
  #pendingKey = '';
  #group: V2Group | undefined;
  #fresh = false;
  #grows = 0;
  #addFixed = 0;
  #addsPeak = false;
  #newMin = 0;
  #newDtBytes = 0;
  /** Metrics whose longest number grows (names and lengths, reused between readings). */
  readonly #peakNames: string[] = [];
  readonly #peakLengths: number[] = [];
  #peakUpdates = 0;

  /** How much {@link bytes} grows if `reading` is added. */
  growth(reading: Reading): number {
    this.#measure(reading);
    return this.#grows;
  }

  add(reading: Reading): void {
    if (this.#measured !== reading) this.#measure(reading);
    const group = this.#group as V2Group;
    for (let i = 0; i < this.#peakUpdates; i++) {
      group.peakLength.set(this.#peakNames[i] as string, this.#peakLengths[i] as number);
    }
    if (this.#addsPeak) group.hasPeak = true;
    if (this.#fresh) this.#groups.set(this.#pendingKey, group);
    this.#fixed += this.#addFixed;
    this.#times.push(reading.ts);
    this.#minTs = this.#newMin;
    this.#dtBytes = this.#newDtBytes;
    this.#measured = undefined;
  }

  reset(): void {
    this.#groups.clear();
    this.#fixed = 0;
    this.#times.length = 0;
    this.#minTs = Number.POSITIVE_INFINITY;
    this.#dtBytes = 0;
    this.#measured = undefined;
  }

  #measure(reading: Reading): void {
    const key = V2Size.#keyOf(reading);
    let group = this.#groups.get(key);
    let fixed = 0;
    const fresh = group === undefined;
    if (group === undefined) {
      // {"sensor":"<id>","dt":[],"metrics":{}}, — ids and names are ASCII by their patterns.
      fixed += 35 + reading.sensor.length;
      group = { peakLength: new Map(), hasPeak: false };
    }
    let addsPeak = false;
    let updates = 0;
    for (const name in reading.metrics) {
      const value = reading.metrics[name] as number | boolean;
      const length = valueLength(value);
      fixed += length + 1;
      if (fresh) fixed += name.length + 6; // "name":[],
      if (typeof value !== 'number') continue;
      const longest = group.peakLength.get(name) ?? 0;
      if (longest === 0) {
        fixed += name.length + 4 + length; // "name":<value>,
        if (!group.hasPeak) addsPeak = true;
      } else if (length > longest) fixed += length - longest;
      if (length > longest) {
        this.#peakNames[updates] = name;
        this.#peakLengths[updates] = length;
        updates += 1;
      }
    }
    if (addsPeak) fixed += 10; // ,"peak":{}
    let dtBytes: number;
    const minTs = Math.min(this.#minTs, reading.ts);
    if (minTs === this.#minTs) dtBytes = this.#dtBytes + digits(reading.ts - minTs) + 1;
    else {
      dtBytes = 1 + 1; // the new earliest reading: dt 0
      for (const ts of this.#times) dtBytes += digits(ts - minTs) + 1;
    }
    this.#measured = reading;
    this.#pendingKey = key;
    this.#group = group;
    this.#fresh = fresh;
    this.#addFixed = fixed;
    this.#addsPeak = addsPeak;
    this.#peakUpdates = updates;
    this.#newMin = minTs;
    this.#newDtBytes = dtBytes;
    this.#grows = fixed + dtBytes - this.#dtBytes + V2Size.#t0Extra(minTs) - V2Size.#t0Extra(this.#minTs);
  }
}
