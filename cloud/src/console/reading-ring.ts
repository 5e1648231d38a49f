import type { MetricValue, Reading } from '@pifleet/protocol';

/**
 * One thing's recent readings for the console's charts, kept in typed arrays instead of one
 * `Reading` object (and its `metrics` object) per reading; `Reading` objects are built again only
 * when someone asks for the history (a thing view opens, the API describes the thing).
 *
 * Why: the console keeps up to 300 readings per thing. As objects, 300 readings of three metrics
 * retained ≈ 50 KB of heap per thing (measured with bench/console.bench.ts: ≈ 500 MB at 10,000
 * things, most of the core's RSS budget), and every one of them was an old-generation object the
 * garbage collector walks. Here a reading is its time (4 bytes: ms from a base), its shape (2) and
 * 8 bytes per metric value, which follow the previous reading's: ≈ 30 bytes for three metrics.
 *
 * A reading's sensor and metric names (and which metrics are booleans) are its *shape*, kept once
 * per thing in a table: a device sends the same few shapes over and over. Values are stored as
 * float64 (a boolean as 0 or 1, its shape says which), so a reading comes back exactly as it was
 * decoded, key order included.
 *
 * Bounds: at most `maxReadings` readings and `maxValues` values (together); the oldest go first.
 * A reading with more values than `maxValues` is not kept at all. The shape table is compacted
 * (to the shapes kept readings use) when it reaches twice the shapes they use (at least
 * {@link MIN_SHAPE_TABLE}) or 2 × maxValues names, so it holds at most ≈ 2 × maxReadings shapes
 * and 3 × maxValues names: a device sending a new 2,000-metric shape in every reading cannot grow
 * it. Arrays start small and grow up to the bounds, so a thing that sends little costs little.
 */

export interface ReadingRingLimits {
  /** Most readings kept. */
  readonly maxReadings: number;
  /** Most metric values kept, over all kept readings. */
  readonly maxValues: number;
}

/** A sensor's metric names in a reading, in the reading's key order, and their kinds. */
export interface ReadingShape {
  readonly sensor: string;
  readonly names: readonly string[];
  /** `sensor.metric` for each name: the keys of the console's last-telemetry summary. */
  readonly keys: readonly string[];
  /** 1 where the metric is a boolean. */
  readonly booleans: Uint8Array;
}

/** Sees a reading and its shape (undefined: too wide to keep) as the ring takes it. */
export type ShapeVisitor = (reading: Reading, shape: ReadingShape | undefined) => void;

const INITIAL_READINGS = 16;
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const INITIAL_VALUES = 64;
/** Shape tables smaller than this are never compacted (a device has a handful of sensors). */
export const MIN_SHAPE_TABLE = 64;

export class ReadingRing {
  readonly #maxReadings: number;
  readonly #maxValues: number;
  /**
   * Reading times as ms after `#tsBase` (32 bits: a 10-minute window needs far less), or as
   * absolute float64 ms once kept readings span more than 2^31 ms (≈ 24 days) from any base.
   */
  #ts: Int32Array | Float64Array = new Int32Array(0);
  #tsBase = 0;
  /** Shape ids: 16 bits while the table's bound (≈ 2 × maxReadings) fits. */
  #shape: Uint16Array | Uint32Array = new Uint16Array(0);
  #head = 0;
  #count = 0;
  #values = new Float64Array(0);
  #valueHead = 0;
  #valueCount = 0;
  #shapes: ReadingShape[] = [];
  /** Metric names over the whole shape table. */
  #shapeNames = 0;
  #shapeIds = new Map<string, number>();
  /** The shape id each sensor used last: the usual case needs no key string. */
  #lastShape = new Map<string, number>();

  constructor(limits: ReadingRingLimits) {
    if (!Number.isInteger(limits.maxReadings) || limits.maxReadings < 1) {
      throw new RangeError('maxReadings must be a positive integer');
    }
    if (!Number.isInteger(limits.maxValues) || limits.maxValues < 1) {
      throw new RangeError('maxValues must be a positive integer');
    }
    this.#maxReadings = limits.maxReadings;
    this.#maxValues = limits.maxValues;
  }

  get size(): number {
    return this.#count;
  }

  /** Distinct shapes in the table (kept readings' shapes, and some no longer used). */
  get shapeCount(): number {
    return this.#shapes.length;
  }

  /** Metric names over the shape table. */
  get shapeNameCount(): number {
    return this.#shapeNames;
  }

  /** Bytes of the typed arrays (allocated, not just used): what a ring costs besides its shapes. */
  get arrayBytes(): number {
    return this.#ts.byteLength + this.#shape.byteLength + this.#values.byteLength;
  }

  /** Time of the newest kept reading; undefined when empty. */
  get lastTs(): number | undefined {
    return this.#count === 0
      ? undefined
      : this.#tsBase + (this.#ts[(this.#head + this.#count - 1) % this.#ts.length] as number);
  }

  /**
   * The interned shape of a reading, or undefined when it has more metrics than the ring may hold
   * (such a reading is never kept, so its shape is not kept either).
   */
  shapeOf(reading: Reading): ReadingShape | undefined {
    const id = this.#intern(reading);
    return id === undefined ? undefined : this.#shapes[id];
  }

  /**
   * Adds readings already in time order (each `ts` ≥ the previous one and ≥ {@link lastTs}),
   * dropping the oldest past the bounds. Use {@link merge} for readings older than the newest kept.
   * `visit` sees each reading with its shape (undefined for one too wide to keep) as it is added:
   * the fleet state's summary takes the names from there instead of looking the shape up again.
   */
  append(readings: readonly Reading[], visit?: ShapeVisitor): void {
    for (const reading of readings) {
      const id = this.#intern(reading);
      visit?.(reading, id === undefined ? undefined : this.#shapes[id]);
      if (id !== undefined) this.#push(reading, id);
    }
  }

  /**
   * Adds readings in time order that may be older than kept ones (a batch resent from a device's
   * outbox): kept and new readings are put in time order again (a stable sort: for equal times,
   * kept readings first), then the bounds apply. O(kept readings); devices resend rarely.
   * `visit` sees each new reading with its shape, in the order given, before it is stored.
   */
  merge(readings: readonly Reading[], visit?: ShapeVisitor): void {
    const first = readings[0];
    const last = this.lastTs;
    if (first === undefined) return;
    if (last === undefined || first.ts >= last) {
      this.append(readings, visit);
      return;
    }
    if (visit !== undefined) for (const reading of readings) visit(reading, this.shapeOf(reading));
    const all = [...this.readings(), ...readings].sort((a, b) => a.ts - b.ts);
    this.clear();
    this.append(all);
  }

  /** Drops readings older than `cutoff` (ms). */
  dropBefore(cutoff: number): void {
    while (this.#count > 0 && this.#tsBase + (this.#ts[this.#head] as number) < cutoff) this.#dropOldest();
  }

  /** The kept readings, oldest first, as new objects. */
  readings(): Reading[] {
    const out: Reading[] = new Array(this.#count);
    const cap = this.#ts.length;
    const valueCap = this.#values.length;
    // A reading's values follow the previous reading's: they start at the oldest value.
    let v = this.#valueHead;
    for (let i = 0; i < this.#count; i++) {
      const slot = (this.#head + i) % cap;
      const shape = this.#shapes[this.#shape[slot] as number] as ReadingShape;
      const metrics: Record<string, MetricValue> = {};
      for (let j = 0; j < shape.names.length; j++) {
        const value = this.#values[v] as number;
        // Names passed the protocol's metric-name check (never __proto__), so plain assignment is safe.
        metrics[shape.names[j] as string] = shape.booleans[j] === 1 ? value !== 0 : value;
        v = v + 1 === valueCap ? 0 : v + 1;
      }
      out[i] = { sensor: shape.sensor, ts: this.#tsBase + (this.#ts[slot] as number), metrics };
    }
    return out;
  }

  clear(): void {
    this.#head = 0;
    this.#count = 0;
    this.#valueHead = 0;
    this.#valueCount = 0;
  }

  #intern(reading: Reading): number | undefined {
    const names = Object.keys(reading.metrics);
    if (names.length > this.#maxValues) return undefined;
    const last = this.#lastShape.get(reading.sensor);
    if (last !== undefined && matches(this.#shapes[last] as ReadingShape, names, reading.metrics)) {
      return last;
    }
    const booleans = new Uint8Array(names.length);
    let key = reading.sensor;
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as string;
      booleans[i] = typeof reading.metrics[name] === 'boolean' ? 1 : 0;
      key += `\u0000${name}${booleans[i] === 1 ? '?' : '#'}`;
    }
    let id = this.#shapeIds.get(key);
    if (id === undefined) {
      if (
        this.#shapes.length >= Math.max(MIN_SHAPE_TABLE, 2 * this.#liveShapes()) ||
        this.#shapeNames + names.length > 2 * this.#maxValues
      ) {
        this.#compactShapes();
      }
      id = this.#shapes.length;
      this.#shapeNames += names.length;
      this.#shapes.push({ sensor: reading.sensor, names, keys: names.map((n) => `${reading.sensor}.${n}`), booleans });
      this.#shapeIds.set(key, id);
    }
    this.#lastShape.set(reading.sensor, id);
    return id;
  }

  #push(reading: Reading, id: number): void {
    const shape = this.#shapes[id] as ReadingShape;
    const k = shape.names.length;
    while (this.#count > 0 && (this.#count >= this.#maxReadings || this.#valueCount + k > this.#maxValues)) {
      this.#dropOldest();
    }
    if (this.#count === this.#ts.length) this.#growReadings();
    if (this.#valueCount + k > this.#values.length) this.#growValues(this.#valueCount + k);
    const cap = this.#ts.length;
    const slot = (this.#head + this.#count) % cap;
    const valueCap = this.#values.length;
    let v = (this.#valueHead + this.#valueCount) % valueCap;
    // The offset first: it may put the times in a new array.
    const offset = this.#offset(reading.ts);
    this.#ts[slot] = offset;
    this.#shape[slot] = id;
    for (let j = 0; j < k; j++) {
      const value = reading.metrics[shape.names[j] as string];
      this.#values[v] = typeof value === 'boolean' ? (value ? 1 : 0) : (value as number);
      v = v + 1 === valueCap ? 0 : v + 1;
    }
    this.#count++;
    this.#valueCount += k;
  }

  /**
   * `ts` as stored: its offset from the base, after moving the base (or leaving 32 bits) when it
   * does not fit. Called with the reading's slot not yet counted.
   */
  #offset(ts: number): number {
    if (this.#ts instanceof Float64Array) return ts;
    if (this.#count === 0) this.#tsBase = ts;
    const offset = ts - this.#tsBase;
    if (offset >= INT32_MIN && offset <= INT32_MAX) return offset;
    let min = ts;
    let max = ts;
    const cap = this.#ts.length;
    for (let i = 0; i < this.#count; i++) {
      const t = this.#tsBase + (this.#ts[(this.#head + i) % cap] as number);
      if (t < min) min = t;
      if (t > max) max = t;
    }
    const base = max - min <= INT32_MAX ? min : undefined;
    const next = base === undefined ? new Float64Array(cap) : this.#ts;
    for (let i = 0; i < this.#count; i++) {
      const slot = (this.#head + i) % cap;
      next[slot] = this.#tsBase + (this.#ts[slot] as number) - (base ?? 0);
    }
    this.#ts = next;
    this.#tsBase = base ?? 0;
    return ts - this.#tsBase;
  }

  #dropOldest(): void {
    const slot = this.#head;
    const k = (this.#shapes[this.#shape[slot] as number] as ReadingShape).names.length;
    this.#head = (slot + 1) % this.#ts.length;
    this.#count--;
    if (k > 0) this.#valueHead = (this.#valueHead + k) % this.#values.length;
    this.#valueCount -= k;
    if (this.#count === 0) {
      this.#head = 0;
      this.#valueHead = 0;
    }
  }

  #growReadings(): void {
    const cap = Math.min(this.#maxReadings, Math.max(INITIAL_READINGS, this.#ts.length * 2));
    const ts = this.#ts instanceof Int32Array ? new Int32Array(cap) : new Float64Array(cap);
    const shape = 2 * this.#maxReadings + MIN_SHAPE_TABLE < 65_536 ? new Uint16Array(cap) : new Uint32Array(cap);
    const old = this.#ts.length;
    for (let i = 0; i < this.#count; i++) {
      const slot = (this.#head + i) % old;
      ts[i] = this.#ts[slot] as number;
      shape[i] = this.#shape[slot] as number;
    }
    this.#ts = ts;
    this.#shape = shape;
    this.#head = 0;
  }

  /**
   * Grows the value ring to hold `need` values, moving the kept ones to its start. Sized for the
   * readings the ring may hold at the values per reading seen so far (plus an eighth), not by
   * doubling: 300 readings of 2.6 values take 878 values, not 1,024.
   */
  #growValues(need: number): void {
    const perReading = need / (this.#count + 1);
    const projected = Math.ceil(this.#ts.length * perReading * 1.125);
    const cap = Math.min(
      this.#maxValues,
      Math.max(need, INITIAL_VALUES, projected, Math.ceil(this.#values.length * 1.25)),
    );
    const values = new Float64Array(cap);
    const old = this.#values.length;
    for (let i = 0; i < this.#valueCount; i++) values[i] = this.#values[(this.#valueHead + i) % old] as number;
    this.#values = values;
    this.#valueHead = 0;
  }

  #liveShapes(): number {
    const live = new Set<number>();
    const cap = this.#ts.length;
    for (let i = 0; i < this.#count; i++) live.add(this.#shape[(this.#head + i) % cap] as number);
    return live.size;
  }

  /** Keeps only the shapes kept readings use, renumbered. */
  #compactShapes(): void {
    const cap = this.#ts.length;
    const renumber = new Map<number, number>();
    const shapes: ReadingShape[] = [];
    for (let i = 0; i < this.#count; i++) {
      const slot = (this.#head + i) % cap;
      const old = this.#shape[slot] as number;
      let id = renumber.get(old);
      if (id === undefined) {
        id = shapes.length;
        shapes.push(this.#shapes[old] as ReadingShape);
        renumber.set(old, id);
      }
      this.#shape[slot] = id;
    }
    const ids = new Map<string, number>();
    for (const [key, old] of this.#shapeIds) {
      const id = renumber.get(old);
      if (id !== undefined) ids.set(key, id);
    }
    const last = new Map<string, number>();
    for (const [sensor, old] of this.#lastShape) {
      const id = renumber.get(old);
      if (id !== undefined) last.set(sensor, id);
    }
    this.#shapes = shapes;
    this.#shapeNames = shapes.reduce((n, shape) => n + shape.names.length, 0);
    this.#shapeIds = ids;
    this.#lastShape = last;
  }
}

function matches(shape: ReadingShape, names: readonly string[], metrics: Reading['metrics']): boolean {
  if (shape.names.length !== names.length) return false;
  for (let i = 0; i < names.length; i++) {
    const name = names[i] as string;
    if (shape.names[i] !== name) return false;
    if ((typeof metrics[name] === 'boolean' ? 1 : 0) !== shape.booleans[i]) return false;
  }
  return true;
}
