import type { JsonObject } from '@pifleet/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { type CommandApiDeps, handleCommandRequest, parseDesiredRequest } from '../../../src/core/command/api.js';
import { ShadowUpdateRejectedError } from '../../../src/core/command/errors.js';
import { createShadowService } from '../../../src/shadow/service.js';
import { createMemoryShadowStore } from '../../../src/shadow/store.js';

/** The command API over a real shadow service (the local core's gateway does the same over HTTP). */
function deps(): CommandApiDeps {
  const shadows = createShadowService({
    store: createMemoryShadowStore(),
    clock: { now: () => 1_700_000_000_000 },
    publish: () => {},
  });
  const enc = new TextEncoder();
  return {
    things: { thingExists: async () => true },
    shadows: {
      async get(thing) {
        const r = await shadows.getShadow(thing);
        return r.status === 200 ? r.body : undefined;
      },
      async update(thing, update) {
        const r = await shadows.updateShadow(thing, undefined, enc.encode(JSON.stringify(update)));
        if (r.status !== 200) throw new ShadowUpdateRejectedError(r.status === 413 ? 413 : 400, String(r.body.message));
        return r.body;
      },
    },
    connectivity: { getConnectivity: async () => undefined },
  };
}

const put = (thing: string, body: string) => ({ method: 'PUT', path: `/things/${thing}/desired`, body });

afterEach(() => {
  expect(Object.keys(Object.prototype)).toEqual([]);
});

describe('command API: hostile desired documents', () => {
  it.each([
    ['{"desired":{"outputs":{"__proto__":{"x":1}}}}', 'body.desired.outputs.__proto__'],
    ['{"desired":{"outputs":{"__proto__":true}}}', 'body.desired.outputs.__proto__'],
    ['{"desired":{"sampling":{"constructor":1000}}}', 'body.desired.sampling.constructor'],
    ['{"desired":{"__proto__":{"x":1}}}', 'body.desired'],
    ['{"desired":{"batch":{"__proto__":{"maxReadings":1}}}}', 'body.desired.batch'],
    ['{"desired":{"logLevel":"info"},"__proto__":{"x":1}}', 'body.__proto__'],
  ])('%s is refused with 400 naming the key, and nothing reaches a prototype', async (body, path) => {
    const api = deps();
    const res = await handleCommandRequest(put('pi-01', body), api);
    expect(res.statusCode).toBe(400);
    const issues = (JSON.parse(res.body) as { issues: { path: string }[] }).issues;
    expect(issues.map((i) => i.path)).toContain(path);

    // Another thing's valid write still works afterwards.
    const ok = await handleCommandRequest(put('pi-02', '{"desired":{"outputs":{"relay":true}}}'), api);
    expect(ok.statusCode).toBe(200);
    expect((JSON.parse(ok.body) as { state: JsonObject }).state).toEqual({ desired: { outputs: { relay: true } } });
  });

  it('a 10,000-level body answers 400 with a reason instead of overflowing the stack (500)', async () => {
    const deep = `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`;
    for (const body of [`{"desired":${deep}}`, `{"desired":{"outputs":${deep}}}`, deep]) {
      const res = await handleCommandRequest(put('pi-01', body), deps());
      expect(res.statusCode).toBe(400);
      expect(JSON.parse(res.body)).toMatchObject({
        issues: [{ path: 'body', message: expect.stringContaining('at most 6 levels') }],
      });
    }
  });

  it('a body just inside the depth bound is parsed and validated as usual', () => {
    // body, desired, then 7 objects: as deep as a shadow section may be.
    const desired = `${'{"a":'.repeat(7)}1${'}'.repeat(7)}`;
    const r = parseDesiredRequest(`{"desired":${desired}}`);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues.map((i) => i.path)).toEqual(['body.desired']);
  });
});
