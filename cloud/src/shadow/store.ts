import type { StoredShadow } from '../core/shadow/document.js';

/**
 * Where shadows live. One record per (thing, shadow name); the classic shadow has no name. A
 * deleted shadow keeps its record with `exists: false` so its version keeps increasing when it
 * is created again. `save` resolves only when the record is durable: the service publishes
 * `/accepted` after it.
 */
export interface ShadowStore {
  load(thingName: string, shadowName: string | undefined): Promise<StoredShadow | undefined>;
  save(shadow: StoredShadow): Promise<void>;
  /** Names of the thing's existing named shadows, in ascending order, after `after` (exclusive). */
  listNamed(thingName: string, options: { after?: string; limit: number }): Promise<string[]>;
  close(): Promise<void>;
}

/** An in-memory store (tests, and a local IoT Core run without a data directory). */
export function createMemoryShadowStore(): ShadowStore {
  const records = new Map<string, StoredShadow>();
  const keyOf = (thing: string, shadow: string | undefined) => `${thing}\u0000${shadow ?? ''}`;
  return {
    load: async (thing, shadow) => {
      const found = records.get(keyOf(thing, shadow));
      return found === undefined ? undefined : structuredClone(found);
    },
    save: async (shadow) => {
      records.set(keyOf(shadow.thingName, shadow.shadowName), structuredClone(shadow));
    },
    listNamed: async (thing, { after, limit }) => {
      const names: string[] = [];
      for (const r of records.values()) {
        if (r.thingName === thing && r.shadowName !== undefined && r.exists) {
          if (after === undefined || r.shadowName > after) names.push(r.shadowName);
        }
      }
      return names.sort().slice(0, limit);
    },
    close: async () => {},
  };
}
