import type { JsonObject, JsonValue, MqttProtocol, Reading, TelemetryBatch } from '@pifleet/protocol';
import { computeDelta } from '../core/shadow/document.js';
import { isJsonObject } from '../core/shadow/json.js';

/**
 * What the web console knows about each thing, built from what crosses the broker: presence
 * events, telemetry batches, shadow documents and threshold alerts. Pure: no I/O, every time is
 * passed in. Bounded: a thing keeps at most `historyPerThing` readings younger than
 * `historyWindowMs` and its last `alertsPerThing` alerts.
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
  readonly alertsPerThing?: number;
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
  /** Summaries changed since the last call, and forgets them. */
  takeDirty(): ThingSummary[];
  readonly size: number;
}

export const FLEET_STATE_DEFAULTS = {
  historyWindowMs: 10 * 60_000,
  historyPerThing: 300,
  alertsPerThing: 20,
} as const;

interface Entry {
  summary: ThingSummary;
  history: Reading[];
  alerts: StoredAlert[];
}

function emptySummary(thingName: string): ThingSummary {
  return {
    thingName,
    connected: false,
    lastSeen: null,
    presenceAt: null,
    disconnectReason: null,
    protocol: null,
    lastTelemetry: null,
    shadow: null,
    alerts: { count: 0, lastAt: null },
  };
}

const later = (a: number | null, b: number): number => (a === null || b > a ? b : a);

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
  const alertsPerThing = options.alertsPerThing ?? FLEET_STATE_DEFAULTS.alertsPerThing;
  const things = new Map<string, Entry>();
  const dirty = new Set<string>();

  function entry(thingName: string): Entry {
    let e = things.get(thingName);
    if (e === undefined) {
      e = { summary: emptySummary(thingName), history: [], alerts: [] };
      things.set(thingName, e);
      dirty.add(thingName);
    }
    return e;
  }

  function update(thingName: string, change: (s: ThingSummary) => ThingSummary): Entry {
    const e = entry(thingName);
    e.summary = change(e.summary);
    dirty.add(thingName);
    return e;
  }

  function prune(e: Entry, now: number): void {
    const cutoff = now - windowMs;
    let drop = 0;
    while (drop < e.history.length && (e.history[drop] as Reading).ts < cutoff) drop++;
    drop = Math.max(drop, e.history.length - perThing);
    if (drop > 0) e.history.splice(0, drop);
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
      update(thingName, (s) => ({
        ...s,
        connected,
        presenceAt: at,
        lastSeen: later(s.lastSeen, at),
        disconnectReason: connected ? null : (reason ?? null),
        protocol: connected ? (protocol ?? null) : null,
      }));
    },
    telemetry(thingName, batch, at) {
      const e = entry(thingName);
      const metrics: Record<string, MetricValue> = { ...(e.summary.lastTelemetry?.metrics ?? {}) };
      let newest = e.summary.lastTelemetry?.at ?? 0;
      const ordered = [...batch.readings].sort((a, b) => a.ts - b.ts);
      for (const reading of ordered) {
        if (reading.ts >= newest) {
          newest = reading.ts;
          for (const [name, value] of Object.entries(reading.metrics)) metrics[`${reading.sensor}.${name}`] = value;
        }
      }
      // Keep history in time order; a late batch (resent from an outbox) is merged in place.
      const last = e.history[e.history.length - 1];
      e.history.push(...ordered);
      if (last !== undefined && (ordered[0]?.ts ?? Number.POSITIVE_INFINITY) < last.ts) {
        e.history.sort((a, b) => a.ts - b.ts);
      }
      prune(e, at);
      update(thingName, (s) => ({ ...s, lastSeen: later(s.lastSeen, at), lastTelemetry: { at: newest, metrics } }));
    },
    shadow(thingName, doc, _at) {
      const status = shadowStatus(doc);
      update(thingName, (s) => (s.shadow !== null && s.shadow.version > status.version ? s : { ...s, shadow: status }));
    },
    shadowDeleted(thingName) {
      update(thingName, (s) => ({ ...s, shadow: null }));
    },
    alert(thingName, alert, at) {
      const e = update(thingName, (s) => ({ ...s, alerts: { count: s.alerts.count + 1, lastAt: at } }));
      e.alerts.push({ receivedAt: at, alert });
      if (e.alerts.length > alertsPerThing) e.alerts.splice(0, e.alerts.length - alertsPerThing);
    },
    summary: (thingName) => things.get(thingName)?.summary,
    list() {
      return [...things.values()].map((e) => e.summary).sort((a, b) => (a.thingName < b.thingName ? -1 : 1));
    },
    history(thingName, now) {
      const e = things.get(thingName);
      if (e === undefined) return [];
      prune(e, now);
      return [...e.history];
    },
    alerts: (thingName) => [...(things.get(thingName)?.alerts ?? [])],
    takeDirty() {
      const out: ThingSummary[] = [];
      for (const name of dirty) {
        const s = things.get(name)?.summary;
        if (s !== undefined) out.push(s);
      }
      dirty.clear();
      return out;
    },
  };
}
