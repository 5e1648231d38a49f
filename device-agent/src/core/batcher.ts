import {
  batchEnvelopeBytes,
  encodeTelemetryBatch,
  LIMITS,
  type Reading,
  readingWireBytes,
  TELEMETRY_VERSION,
  type TelemetryBatch,
} from '@pifleet/protocol';
import { AgentError } from '../errors.js';

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
 * The byte bound is exact, not estimated: each reading's encoded size plus the envelope sized for
 * the largest timestamp, so a sealed batch is never larger than `maxBytes` (and never larger than
 * IoT Core's 128 KB, even for a single reading above `maxBytes`, which is sealed on its own).
 */
export class Batcher {
  readonly #thingName: string;
  readonly #bootId: string;
  #limits: BatchLimits;
  #seq: number;
  #open: Reading[] = [];
  #openWireBytes = 0;
  #openedAt: number | undefined;
  #oversizeDropped = 0;

  constructor(opts: { thingName: string; bootId: string; limits: BatchLimits; nextSeq?: number }) {
    this.#thingName = opts.thingName;
    this.#bootId = opts.bootId;
    this.#limits = opts.limits;
    this.#seq = opts.nextSeq ?? 1;
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
        bytes: batchEnvelopeBytes(this.#thingName, this.#bootId, this.#seq, MAX_TS),
      };
    }
    return this.#envelopeCache.bytes;
  }

  /** Encoded size of the open batch plus `extraWire` bytes of readings. */
  #sizeWith(extraWire: number): number {
    // Each reading's wire size counts its comma; the last reading has none.
    return this.#envelope() + this.#openWireBytes + extraWire - 1;
  }

  /**
   * Adds a reading; returns the batches it caused to be sealed (0, 1 or 2), oldest first.
   * Afterwards the reading is in the open batch (`nextSeq`) exactly when `pending > 0`: otherwise it
   * was sealed in the last returned batch, or dropped as oversize. `wireBytes` is its
   * {@link readingWireBytes}, when the caller has already encoded it.
   */
  add(reading: Reading, now: number, wireBytes?: number): SealedBatch[] {
    const sealed: SealedBatch[] = [];
    const wire = wireBytes ?? readingWireBytes(reading);
    const cap = Math.min(this.#limits.maxBytes, LIMITS.maxMessageBytes);
    if (this.#open.length > 0 && this.#sizeWith(wire) > cap) {
      const s = this.seal(now);
      if (s) sealed.push(s);
    }
    if (this.#sizeWith(wire) > LIMITS.maxMessageBytes) {
      this.#oversizeDropped += 1;
      return sealed;
    }
    if (this.#open.length === 0) this.#openedAt = now;
    this.#open.push(reading);
    this.#openWireBytes += wire;
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
    });
    this.#seq += 1;
    this.#open = [];
    this.#openWireBytes = 0;
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
 * journaled with (that batch was never sealed, so never sent).
 */
export function sealBatch(b: {
  readonly thingName: string;
  readonly bootId: string;
  readonly seq: number;
  readonly readings: readonly Reading[];
  readonly now: number;
}): SealedBatch {
  const batch: TelemetryBatch = {
    v: TELEMETRY_VERSION,
    thingName: b.thingName,
    bootId: b.bootId,
    seq: b.seq,
    sealedAt: Math.min(Math.max(0, Math.floor(b.now)), MAX_TS),
    readings: b.readings as Reading[],
  };
  const encoded = encodeTelemetryBatch(batch);
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
    sealedAt: batch.sealedAt,
    readings: b.readings.length,
    json: encoded.value.json,
    bytes: encoded.value.bytes,
  };
}
