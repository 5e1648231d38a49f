import type { JsonObject, Reading } from '@pifleet/protocol';
import type { Broker } from '../broker/index.js';
import type { Registry } from '../registry/sqlite-registry.js';
import type { ShadowService } from '../shadow/service.js';
import type { FleetState, StoredAlert, ThingSummary } from './fleet-state.js';

/**
 * The console's picture of the fleet (fleet-state.ts) joined with the services it reads: the
 * registry says which things exist, the shadow service holds their documents, the broker's
 * sessions say who is connected now. The live feed and the HTTP routes both go through it.
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
  /** A thing the console shows: seen already, or registered and not seen yet (then added). */
  known(thingName: string): boolean;
  /** Keeps exactly the registry's things in the picture (the caller then sends the list). */
  syncWithRegistry(): void;
  /** The classic shadow's document; null when the thing has none. */
  readShadow(thingName: string): Promise<JsonObject | null>;
  /** What the thing view shows at once. */
  detail(thingName: string, shadow: JsonObject | null): ThingDetail;
  /** The picture at start: registered things, who is connected, each shadow's status. */
  load(): Promise<void>;
}

export interface ThingCatalogDeps {
  readonly registry: Registry;
  readonly broker: Broker;
  readonly shadows: ShadowService;
  readonly fleet: FleetState;
  /** Milliseconds since the epoch. */
  readonly now: () => number;
}

export function createThingCatalog(deps: ThingCatalogDeps): ThingCatalog {
  const { registry, broker, shadows, fleet, now } = deps;

  async function readShadow(thingName: string): Promise<JsonObject | null> {
    const result = await shadows.getShadow(thingName);
    return result.status === 200 ? result.body : null;
  }

  function syncWithRegistry(): void {
    const names: string[] = [];
    let token: string | undefined;
    do {
      const page = registry.listThings({ pageSize: 250, token });
      for (const t of page.items) names.push(t.thingName);
      token = page.next;
    } while (token !== undefined);
    fleet.syncThings(names);
    fleet.takeDirty();
  }

  return {
    fleet,
    readShadow,
    syncWithRegistry,

    known(thingName) {
      if (fleet.has(thingName)) return true;
      try {
        registry.describeThing(thingName);
      } catch {
        return false;
      }
      fleet.ensure(thingName);
      return true;
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

    async load() {
      syncWithRegistry();
      for (const session of broker.bus.sessions().values()) {
        const name = session.thingName ?? session.clientId;
        if (fleet.has(name)) fleet.presence(name, true, session.connectedAt, undefined, session.protocol);
      }
      for (const s of fleet.list()) {
        const doc = await readShadow(s.thingName).catch(() => null);
        if (doc !== null) {
          const version = typeof doc.version === 'number' ? doc.version : 0;
          const timestamp = typeof doc.timestamp === 'number' ? doc.timestamp : 0;
          fleet.shadow(s.thingName, { version, timestamp, state: doc.state }, now());
        }
      }
      fleet.takeDirty();
    },
  };
}
