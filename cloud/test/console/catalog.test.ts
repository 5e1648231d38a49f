import { describe, expect, it } from 'vitest';
import type { ConsoleBackend } from '../../src/console/backend.js';
import { createThingCatalog } from '../../src/console/catalog.js';
import { createFleetState } from '../../src/console/fleet-state.js';

/**
 * The catalog over a backend that can only say later whether a thing is registered (DescribeThing
 * against AWS): a thing found registered is shown from its next message, a stranger is refused
 * without asking again for a while, and a flood of strangers makes at most a few calls at once.
 */

function remoteBackend(registered: ReadonlySet<string>) {
  const asked: string[] = [];
  const pending: Array<() => void> = [];
  const backend: ConsoleBackend = {
    kind: 'aws',
    listThings: async () => [...registered],
    hasThing(name) {
      asked.push(name);
      return new Promise<boolean>((resolve) => pending.push(() => resolve(registered.has(name))));
    },
    readShadow: async () => null,
    writeDesired: async () => ({ status: 200, version: 1 }),
    presence: async () => [],
    subscribe: async () => async () => {},
  };
  const answerAll = async () => {
    for (const answer of pending.splice(0)) answer();
    await new Promise((r) => setImmediate(r));
  };
  return { backend, asked, answerAll };
}

describe('thing catalog with a remote registry', () => {
  it('shows a registered thing from the message after the look-up, and asks once for a stranger', async () => {
    let clock = 1_000_000;
    const { backend, asked, answerAll } = remoteBackend(new Set(['pi-new']));
    const catalog = createThingCatalog({ backend, fleet: createFleetState(), now: () => clock });
    expect(catalog.known('pi-new')).toBe(false);
    expect(catalog.known('stranger')).toBe(false);
    expect(catalog.known('pi-new')).toBe(false); // still being looked up: not asked twice
    await answerAll();
    expect(catalog.known('pi-new')).toBe(true);
    expect(catalog.known('stranger')).toBe(false);
    expect(asked).toEqual(['pi-new', 'stranger']);
    clock += 61_000; // the refusal is remembered for a minute, then asked again
    expect(catalog.known('stranger')).toBe(false);
    expect(asked).toEqual(['pi-new', 'stranger', 'stranger']);
  });

  it('makes at most 8 look-ups at once when many strangers speak', async () => {
    const { backend, asked, answerAll } = remoteBackend(new Set());
    const catalog = createThingCatalog({ backend, fleet: createFleetState(), now: () => 0 });
    for (let i = 0; i < 1_000; i++) expect(catalog.known(`stranger-${i}`)).toBe(false);
    expect(asked).toHaveLength(8);
    await answerAll();
    for (let i = 1_000; i < 1_020; i++) catalog.known(`stranger-${i}`);
    expect(asked).toHaveLength(16);
  });
});
