import type { JsonObject, JsonValue, MqttProtocol, Reading, TelemetryBatch } from '@pifleet/protocol';
import { computeDelta } from '../core/shadow/document.js';
import { isJsonObject } from '../core/shadow/json.js';
import { ReadingRing, type ReadingShape } from './reading-ring.js';

/**
 * What the web console knows about each thing, built from what crosses the broker: presence
 * events, telemetry batches, shadow documents and threshold alerts. Pure: no I/O, every time is
 * passed in. Bounded: a thing keeps at most `historyPerThing` readings younger than
 * `historyWindowMs` (and `historyValuesPerThing` metric values among them) in a compact ring
 * (reading-ring.ts), its last `alertsPerThing` alerts, and `lastMetricsPerThing` keys of last
 * telemetry. With the defaults a thing's history takes at most 300 × 10 + 2,400 × 8 ≈ 22 KB of
 * arrays; bench/console.bench.ts measured ≈ 12 KB retained per thing in all (44–50 KB when every
 * reading was an object) with 300 readings of 2.6 metrics on average (each reading's shape, its
 * sensor and metric names, is kept once per thing).
 */

export type MetricValue = number | boolean;

export interface ShadowStatus {
  readonly version: number;
  /** No desired key differs from reported. */
  readonly inSync: boolean;
  /** Top-level keys of the delta (e.g. `outputs`), empty when in sync. */
  readonly deltaKeys: readonly string[];
  /** Shadow document timestamp (seconds since the epoch, as AWS stamps it). */
  readonly timestamp: number;
}

export interface ThingSummary {
  readonly thingName: string;
  readonly connected: boolean;
  /** Last time anything was heard from or about the thing (ms since the epoch); null if never. */
  readonly lastSeen: number | null;
  /** When the thing last connected or disconnected (ms); null if not seen since start. */
  readonly presenceAt: number | null;
  readonly disconnectReason: string | null;
  /** The MQTT version of the connected session; null while disconnected or when not known. */
  readonly protocol: MqttProtocol | null;
  /** The newest value of each `sensor.metric` from the last batch, with the batch's newest reading time. */
  readonly lastTelemetry: { readonly at: number; readonly metrics: Readonly<Record<string, MetricValue>> } | null;
  readonly shadow: ShadowStatus | null;
  readonly alerts: { readonly count: number; readonly lastAt: number | null };
}

export interface StoredAlert {
  /** When the console received it (ms). */
  readonly receivedAt: number;
  readonly alert: JsonValue;
}

export interface FleetStateOptions {
  readonly historyWindowMs?: number;
  readonly historyPerThing?: number;
  /** Metric values a thing's history holds (over all its readings). */
  readonly historyValuesPerThing?: number;
  readonly alertsPerThing?: number;
  /** Distinct `sensor.metric` keys in a thing's last-telemetry summary. */
  readonly lastMetricsPerThing?: number;
}

export interface FleetState {
  has(thingName: string): boolean;
  /** Adds a thing (no-op when known). */
  ensure(thingName: string): void;
  /** Keeps exactly these things (the registry's list): adds the missing, drops the others. */
  syncThings(thingNames: Iterable<string>): void;
  /** `protocol`: the MQTT version of the session that connected (ignored for a disconnect). */
  presence(thingName: string, connected: boolean, at: number, reason?: string, protocol?: MqttProtocol): void;
  telemetry(thingName: string, batch: TelemetryBatch, at: number): void;
  /** Readings that did not come in a batch on the bus (read from the store for a thing view). */
  readings(thingName: string, readings: readonly Reading[], at: number): void;
  /** Something was heard from the thing at `at` (e.g. its newest stored reading, read at start). */
  seen(thingName: string, at: number): void;
  /** A shadow document's state (from `/update/documents` or GetThingShadow). */
  shadow(
    thingName: string,
    doc: { version: number; timestamp: number; state: JsonValue | undefined },
    at: number,
  ): void;
  shadowDeleted(thingName: string): void;
  alert(thingName: string, alert: JsonValue, at: number): void;
  summary(thingName: string): ThingSummary | undefined;
  /** Every thing, sorted by name. */
  list(): ThingSummary[];
  /** Readings of the last window, oldest first. */
  history(thingName: string, now: number): Reading[];
  alerts(thingName: string): StoredAlert[];
  /**
   * Summaries changed since the last call, and forgets them. With `only`, just the summaries of
   * those things are built (the others are forgotten unbuilt: nobody is watching them).
   */
  takeDirty(only?: ReadonlySet<string>): ThingSummary[];
  readonly size: number;
}

export const FLEET_STATE_DEFAULTS = {
  historyWindowMs: 10 * 60_000,
  historyPerThing: 300,
  /**
   * Metric values in a thing's history: 300 readings of 8 metrics on average. Wider readings leave
   * room for fewer; one reading with more values than this is not charted (its summary still is).
   */
  historyValuesPerThing: 300 * 8,
  alertsPerThing: 20,
  /** Distinct `sensor.metric` keys in a thing's last-telemetry summary. */
  lastMetricsPerThing: 256,
} as const;

/**
 * A thing's picture, mutable inside this module: a telemetry batch changes a few fields in place
 * and the `ThingSummary` object is built again only when someone reads it (`summary`, `list`,
 * `takeDirty`), instead of one new summary object and metrics copy per message.
 */
interface Entry {
  readonly thingName: string;
  connected: boolean;
  lastSeen: number | null;
  presenceAt: number | null;
  disconnectReason: string | null;
  protocol: MqttProtocol | null;
  /** Newest reading time applied to `metrics`; meaningful once `metrics` is set. */
  newest: number;
  /** `sensor.metric` → newest value; null until the first batch. */
  metrics: Record<string, MetricValue> | null;
  shadow: ShadowStatus | null;
  alertCount: number;
  alertLastAt: number | null;
  /** Created with the first batch: a thing that sends nothing costs no arrays. */
  history: ReadingRing | undefined;
  alerts: StoredAlert[];
  /** The summary as last built; undefined after a change. */
  built: ThingSummary | undefined;
}

function emptyEntry(thingName: string): Entry {
  return {
    thingName,
    connected: false,
    lastSeen: null,
    presenceAt: null,
    disconnectReason: null,
    protocol: null,
    newest: 0,
    metrics: null,
    shadow: null,
    alertCount: 0,
    alertLastAt: null,
    history: undefined,
    alerts: [],
    built: undefined,
  };
}

function buildSummary(e: Entry): ThingSummary {
  return {
    thingName: e.thingName,
    connected: e.connected,
    lastSeen: e.lastSeen,
    presenceAt: e.presenceAt,
    disconnectReason: e.disconnectReason,
    protocol: e.protocol,
    lastTelemetry: e.metrics === null ? null : { at: e.newest, metrics: { ...e.metrics } },
    shadow: e.shadow,
    alerts: { count: e.alertCount, lastAt: e.alertLastAt },
  };
}

const later = (a: number | null, b: number): number => (a === null || b > a ? b : a);

/** A device's batch is in time order: then it needs no sorted copy. */
function inTimeOrder(readings: readonly Reading[]): boolean {
  for (let i = 1; i < readings.length; i++)
    if ((readings[i] as Reading).ts < (readings[i - 1] as Reading).ts) return false;
  return true;
}

/** The shadow status of a document's state section. */
export function shadowStatus(doc: { version: number; timestamp: number; state: JsonValue | undefined }): ShadowStatus {
  const state = isJsonObject(doc.state) ? doc.state : {};
  const desired = isJsonObject(state.desired) ? (state.desired as JsonObject) : undefined;
  const reported = isJsonObject(state.reported) ? (state.reported as JsonObject) : undefined;
  const delta = computeDelta(desired, reported, undefined).state;
  const deltaKeys = Object.keys(delta).sort();
  return { version: doc.version, inSync: deltaKeys.length === 0, deltaKeys, timestamp: doc.timestamp };
}

export function createFleetState(options: FleetStateOptions = {}): FleetState {
  const windowMs = options.historyWindowMs ?? FLEET_STATE_DEFAULTS.historyWindowMs;
  const perThing = options.historyPerThing ?? FLEET_STATE_DEFAULTS.historyPerThing;
  const valuesPerThing = options.historyValuesPerThing ?? FLEET_STATE_DEFAULTS.historyValuesPerThing;
  const alertsPerThing = options.alertsPerThing ?? FLEET_STATE_DEFAULTS.alertsPerThing;
  const lastMetrics = options.lastMetricsPerThing ?? FLEET_STATE_DEFAULTS.lastMetricsPerThing;
  const things = new Map<string, Entry>();
  const dirty = new Set<string>();

  function entry(thingName: string): Entry {
    let e = things.get(thingName);
    if (e === undefined) {
      e = emptyEntry(thingName);
      things.set(thingName, e);
      dirty.add(thingName);
    }
    return e;
  }

  function changed(e: Entry): void {
    e.built = undefined;
    dirty.add(e.thingName);
  }

  function summaryOf(e: Entry): ThingSummary {
    e.built ??= buildSummary(e);
    return e.built;
  }

  /**
   * The last-telemetry summary's step for one reading of a batch, in time order: a reading at or
   * after the newest one applied so far sets its metrics; an older one (a batch resent from an
   * outbox) changes nothing.
   */
  function applyLast(e: Entry, reading: Reading, shape: ReadingShape | undefined): void {
    if (reading.ts < e.newest) return;
    e.newest = reading.ts;
    let metrics = e.metrics ?? {};
    const names = shape?.names ?? Object.keys(reading.metrics);
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as string;
      const key = shape?.keys[i] ?? `${reading.sensor}.${name}`;
      if (!Object.hasOwn(metrics, key) && Object.keys(metrics).length >= lastMetrics) {
        // A device that keeps inventing metric names: the summary starts over from this reading.
        metrics = {};
      }
      metrics[key] = reading.metrics[name] as MetricValue;
    }
    e.metrics = metrics;
  }

  return {
    get size() {
      return things.size;
    },
    has: (thingName) => things.has(thingName),
    ensure(thingName) {
      entry(thingName);
    },
    syncThings(thingNames) {
      const keep = new Set(thingNames);
      for (const name of keep) entry(name);
      for (const name of [...things.keys()]) {
        if (!keep.has(name)) {
          things.delete(name);
          dirty.delete(name);
        }
      }
    },
    presence(thingName, connected, at, reason, protocol) {
      const e = entry(thingName);
      e.connected = connected;
      e.presenceAt = at;
      e.lastSeen = later(e.lastSeen, at);
      e.disconnectReason = connected ? null : (reason ?? null);
      e.protocol = connected ? (protocol ?? null) : null;
      changed(e);
    },
    telemetry(thingName, batch, at) {
      this.readings(thingName, batch.readings, at);
    },
    readings(thingName, readings, at) {
      const e = entry(thingName);
      e.history ??= new ReadingRing({ maxReadings: perThing, maxValues: valuesPerThing });
      const ordered = inTimeOrder(readings) ? readings : [...readings].sort((a, b) => a.ts - b.ts);
      // Kept in time order; a late batch (resent from an outbox) is merged in place.
      e.history.merge(ordered, (reading, shape) => applyLast(e, reading, shape));
      e.history.dropBefore(at - windowMs);
      e.lastSeen = later(e.lastSeen, at);
      changed(e);
    },
    seen(thingName, at) {
      const e = entry(thingName);
      e.lastSeen = later(e.lastSeen, at);
      changed(e);
    },
    shadow(thingName, doc, _at) {
      const status = shadowStatus(doc);
      const e = entry(thingName);
      if (e.shadow === null || e.shadow.version <= status.version) e.shadow = status;
      changed(e);
    },
    shadowDeleted(thingName) {
      const e = entry(thingName);
      e.shadow = null;
      changed(e);
    },
    alert(thingName, alert, at) {
      const e = entry(thingName);
      e.alertCount++;
      e.alertLastAt = at;
      e.alerts.push({ receivedAt: at, alert });
      if (e.alerts.length > alertsPerThing) e.alerts.splice(0, e.alerts.length - alertsPerThing);
      changed(e);
    },
    summary(thingName) {
      const e = things.get(thingName);
      return e === undefined ? undefined : summaryOf(e);
    },
    list() {
      return [...things.values()].map(summaryOf).sort((a, b) => (a.thingName < b.thingName ? -1 : 1));
    },
    history(thingName, now) {
      const history = things.get(thingName)?.history;
      if (history === undefined) return [];
      history.dropBefore(now - windowMs);
      return history.readings();
    },
    alerts: (thingName) => [...(things.get(thingName)?.alerts ?? [])],
    takeDirty(only) {
      const out: ThingSummary[] = [];
      if (only === undefined) {
        for (const name of dirty) {
          const e = things.get(name);
          if (e !== undefined) out.push(summaryOf(e));
        }
      } else {
        for (const name of only) {
          const e = dirty.has(name) ? things.get(name) : undefined;
          if (e !== undefined) out.push(summaryOf(e));
        }
      }
      dirty.clear();
      return out;
    },
  };
}
