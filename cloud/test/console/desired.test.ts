import type { JsonObject } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { setDesired } from '../../src/console/desired.js';
import { shadowDesiredWriter } from '../../src/console/local-backend.js';
import { silentLogger } from '../../src/logger.js';
import { createShadowService } from '../../src/shadow/service.js';
import { createMemoryShadowStore } from '../../src/shadow/store.js';

/**
 * The console's desired-state write over a real shadow service, with device reports made to land
 * between its read and its write (the race its retry is for).
 */

const enc = new TextEncoder();
const body = (value: unknown) => Buffer.from(JSON.stringify(value));

function setup(options: { reportsBetweenReadAndWrite: number }) {
  const shadows = createShadowService({
    store: createMemoryShadowStore(),
    clock: { now: () => 1_700_000_000_000 },
    publish: () => {},
  });
  let races = options.reportsBetweenReadAndWrite;
  let reads = 0;
  const report = (thing: string, n: number) =>
    shadows.updateShadow(thing, undefined, enc.encode(JSON.stringify({ state: { reported: { n } } })));
  const catalog = {
    async readShadow(thing: string): Promise<JsonObject | null> {
      reads++;
      const read = await shadows.getShadow(thing);
      if (races > 0) {
        races--;
        await report(thing, reads);
      }
      return read.status === 200 ? read.body : null;
    },
  };
  const deps = { catalog, backend: shadowDesiredWriter(shadows), now: () => 1_700_000_000_000, log: silentLogger() };
  return { shadows, deps, report, reads: () => reads };
}

describe('setDesired', () => {
  it('reads again when a device report lands between its read and its write', async () => {
    const { shadows, deps, report, reads } = setup({ reportsBetweenReadAndWrite: 1 });
    await report('pi-1', 0);
    const r = await setDesired(deps, 'pi-1', body({ desired: { logLevel: 'debug' } }));
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ version: 3, desired: { logLevel: 'debug' } });
    expect(reads()).toBe(2);
    const doc = await shadows.getShadow('pi-1');
    expect(doc.body).toMatchObject({ state: { desired: { logLevel: 'debug' }, reported: { n: 1 } } });
  });

  it('gives up with 409 after three reads that each went stale', async () => {
    const { deps, report, reads } = setup({ reportsBetweenReadAndWrite: 3 });
    await report('pi-1', 0);
    const r = await setDesired(deps, 'pi-1', body({ desired: { logLevel: 'debug' } }));
    expect(r).toEqual({
      status: 409,
      json: { message: 'The shadow kept changing; try again.', version: null, desired: null },
    });
    expect(reads()).toBe(3);
  });

  it.each([
    ['not JSON', 'nope', /^The body is not valid JSON: .+\.$/],
    ['empty', '', /^The body is not valid JSON: .+\.$/],
    ['an array', '[1]', /^The body must be a JSON object \{desired, expected\?\}\.$/],
    [
      'nested past the bound',
      `${'['.repeat(10_000)}${']'.repeat(10_000)}`,
      /^The body is not valid JSON: .*nested more than 64 levels deep.*\.$/,
    ],
  ])('refuses a body that is %s with 400 saying why, before reading the shadow', async (_name, raw, message) => {
    const { deps, reads } = setup({ reportsBetweenReadAndWrite: 0 });
    const r = await setDesired(deps, 'pi-1', Buffer.from(raw));
    expect(r.status).toBe(400);
    expect(r.json).toEqual({ message: expect.stringMatching(message), issues: [] });
    expect(reads()).toBe(0);
  });
});
