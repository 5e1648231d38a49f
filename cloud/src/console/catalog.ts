import type { JsonObject, Reading } from '@pifleet/protocol';
import type { ConsoleBackend } from './backend.js';
import { FLEET_STATE_DEFAULTS, type FleetState, type StoredAlert, type ThingSummary } from './fleet-state.js';

/**
 * The console's picture of the fleet (fleet-state.ts) joined with the backend it reads
 * (backend.ts): the registry says which things exist, the shadows hold their documents, the
 * connections say who is connected now. The live feed and the HTTP routes both go through it.
 */

export interface ThingDetail {
  readonly summary: ThingSummary | undefined;
  readonly shadow: JsonObject | null;
  readonly history: Reading[];
  readonly alerts: StoredAlert[];
  readonly now: number;
}

export interface ThingCatalog {
  readonly fleet: FleetState;
  /**
   * A thing the console shows: seen already, or registered and not seen yet (then added). When the
   * backend can only answer later (a control-plane call), this answers false now and adds the thing
   * once it is found registered, so the thing's next message is shown.
   */
  known(thingName: string): boolean;
  /** Keeps exactly the registry's things in the picture (the caller then sends the list). */
  syncWithRegistry(): Promise<void>;
  /** The classic shadow's document; null when the thing has none. */
  readShadow(thingName: string): Promise<JsonObject | null>;
  /** What the thing view shows at once. */
  detail(thingName: string, shadow: JsonObject | null): ThingDetail;
  /** The picture at start: registered things, who is connected, each shadow's status. */
  load(): Promise<void>;
  /**
   * Before a thing view opens: when the backend keeps stored readings (AWS) and the console has
   * none of the thing's, reads the last history window from the store once.
   */
  backfill(thingName: string): Promise<void>;
}

export interface ThingCatalogDeps {
  readonly backend: ConsoleBackend;
  readonly fleet: FleetState;
  /** Milliseconds since the epoch. */
  readonly now: () => number;
  /** The history window the fleet picture keeps (default the fleet state's). */
  readonly historyWindowMs?: number;
}

/** How long a name the backend said is not registered stays refused without asking again. */
const UNKNOWN_TTL_MS = 60_000;
/** Bound on the names remembered as not registered (a flood of strangers cannot grow it). */
const MAX_UNKNOWN = 1_000;
/**
 * Look-ups in flight at most (DescribeThing against AWS): messages of many strangers at once are not
 * shown rather than turned into a burst of control-plane calls; a registered thing among them is
 * found by the next registry listing.
 */
const MAX_LOOKUPS = 8;

export function createThingCatalog(deps: ThingCatalogDeps): ThingCatalog {
  const { backend, fleet, now } = deps;
  /** Names being looked up, and names found not registered (until the time kept). */
  const lookingUp = new Set<string>();
  const unknown = new Map<string, number>();
  /** Things whose stored readings were read once (bounded by the fleet: only registered things). */
  const backfilled = new Set<string>();
  const windowMs = deps.historyWindowMs ?? FLEET_STATE_DEFAULTS.historyWindowMs;

  const readShadow = (thingName: string) => backend.readShadow(thingName);

  async function syncWithRegistry(): Promise<void> {
    fleet.syncThings(await backend.listThings());
    fleet.takeDirty();
  }

  function lookUpLater(thingName: string, found: Promise<boolean>): void {
    if (lookingUp.has(thingName)) return;
    const until = unknown.get(thingName);
    if (until !== undefined && until > now()) return;
    lookingUp.add(thingName);
    found
      .then((yes) => {
        if (yes) {
          unknown.delete(thingName);
          fleet.ensure(thingName);
          return;
        }
        if (unknown.size >= MAX_UNKNOWN) unknown.delete(unknown.keys().next().value as string);
        unknown.set(thingName, now() + UNKNOWN_TTL_MS);
      })
      .catch(() => {})
      .finally(() => lookingUp.delete(thingName));
  }

  return {
    fleet,
    readShadow,
    syncWithRegistry,

    known(thingName) {
      if (fleet.has(thingName)) return true;
      const until = unknown.get(thingName);
      if (until !== undefined && until > now()) return false;
      // Only asynchronous look-ups are ever in flight, so this bounds the remote calls alone.
      if (lookingUp.has(thingName) || lookingUp.size >= MAX_LOOKUPS) return false;
      const found = backend.hasThing(thingName);
      if (typeof found !== 'boolean') {
        lookUpLater(thingName, found);
        return false;
      }
      if (found) fleet.ensure(thingName);
      return found;
    },

    detail(thingName, shadow) {
      const t = now();
      return {
        summary: fleet.summary(thingName),
        shadow,
        history: fleet.history(thingName, t),
        alerts: fleet.alerts(thingName),
        now: t,
      };
    },

    async backfill(thingName) {
      if (backend.history === undefined || backfilled.has(thingName) || !fleet.has(thingName)) return;
      backfilled.add(thingName);
      const t = now();
      if (fleet.history(thingName, t).length > 0) return;
      const readings = await backend.history(thingName, t - windowMs, t);
      if (readings.length === 0) return;
      const newest = readings.reduce((m, r) => Math.max(m, r.ts), 0);
      fleet.readings(thingName, readings, newest);
    },

    async load() {
      await syncWithRegistry();
      const names = fleet.list().map((s) => s.thingName);
      for (const p of await backend.presence(names)) {
        if (!fleet.has(p.thingName)) continue;
        if (p.at !== undefined) fleet.presence(p.thingName, p.connected, p.at, p.reason, p.protocol);
        if (p.lastReadingAt !== undefined) fleet.seen(p.thingName, p.lastReadingAt);
      }
      for (const name of names) {
        const doc = await readShadow(name).catch(() => null);
        if (doc !== null) {
          const version = typeof doc.version === 'number' ? doc.version : 0;
          const timestamp = typeof doc.timestamp === 'number' ? doc.timestamp : 0;
          fleet.shadow(name, { version, timestamp, state: doc.state }, now());
        }
      }
      fleet.takeDirty();
    },
  };
}
