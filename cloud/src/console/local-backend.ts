import type { JsonObject } from '@pifleet/protocol';
import type { Broker } from '../broker/index.js';
import type { Registry } from '../registry/sqlite-registry.js';
import type { ShadowService } from '../shadow/service.js';
import type { ConsoleBackend, ThingPresence } from './backend.js';

/**
 * The console's backend inside the local IoT Core: the registry, the shadow service and the
 * broker's in-process bus, called directly (no HTTP, no MQTT client).
 */
export interface LocalConsoleBackendDeps {
  readonly registry: Registry;
  readonly broker: Broker;
  readonly shadows: ShadowService;
}

export function createLocalConsoleBackend(deps: LocalConsoleBackendDeps): ConsoleBackend {
  const { registry, broker, shadows } = deps;
  return {
    kind: 'local',

    async listThings() {
      const names: string[] = [];
      let token: string | undefined;
      do {
        const page = registry.listThings({ pageSize: 250, token });
        for (const t of page.items) names.push(t.thingName);
        token = page.next;
      } while (token !== undefined);
      return names;
    },

    hasThing(thingName) {
      try {
        registry.describeThing(thingName);
        return true;
      } catch {
        return false;
      }
    },

    async readShadow(thingName) {
      const result = await shadows.getShadow(thingName);
      return result.status === 200 ? result.body : null;
    },

    writeDesired: shadowDesiredWriter(shadows).writeDesired,

    async presence(things) {
      // The broker knows who is connected now; the store's records are not read (the feed follows the rest).
      const wanted = new Set(things);
      const out: ThingPresence[] = [];
      for (const session of broker.bus.sessions().values()) {
        const thingName = session.thingName ?? session.clientId;
        if (wanted.has(thingName)) {
          out.push({ thingName, connected: true, at: session.connectedAt, protocol: session.protocol });
        }
      }
      return out;
    },

    subscribe: (filter, handler) => broker.bus.subscribe(filter, handler),

    session(clientId) {
      const s = broker.bus.session(clientId);
      return s === undefined ? undefined : { thingName: s.thingName, protocol: s.protocol };
    },
  };
}

/** Desired-state writes through the core's shadow service (the local backend's, alone for tests). */
export function shadowDesiredWriter(
  shadows: Pick<ShadowService, 'updateShadow'>,
): Pick<ConsoleBackend, 'writeDesired'> {
  return {
    async writeDesired(thingName, write) {
      const request: JsonObject = { state: { desired: write.desired }, clientToken: write.clientToken };
      if (write.version !== undefined) request.version = write.version;
      const result = await shadows.updateShadow(thingName, undefined, Buffer.from(JSON.stringify(request)));
      if (result.status === 200) {
        return { status: 200, version: typeof result.body.version === 'number' ? result.body.version : undefined };
      }
      const message = typeof result.body.message === 'string' ? result.body.message : 'The shadow update was rejected.';
      return { status: result.status, message };
    },
  };
}
