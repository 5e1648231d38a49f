import { describe, expect, it } from 'vitest';
import { type ActualState, desiredChangeOf, Reconciler } from '../../src/core/reconciler.js';
import { buildReported } from '../../src/core/reported.js';

const actual: ActualState = {
  sampling: { bme280: 10_000, door: 1_000 },
  batch: { maxReadings: 500, maxBytes: 65_536, maxAgeMs: 10_000 },
  outputs: { relay: false },
  logLevel: 'info',
};
const known = { sensors: new Set(['bme280', 'door']), outputs: new Set(['relay']) };

describe('Reconciler.plan', () => {
  it.each([
    ['sampling change', { sampling: { bme280: 5000 } }, [{ kind: 'sampling', sensorId: 'bme280', intervalMs: 5000 }]],
    ['output on', { outputs: { relay: true } }, [{ kind: 'output', outputId: 'relay', on: true }]],
    ['log level', { logLevel: 'debug' }, [{ kind: 'logLevel', level: 'debug' }]],
    [
      'batch merges with actual',
      { batch: { maxAgeMs: 2000 } },
      [{ kind: 'batch', limits: { maxReadings: 500, maxBytes: 65_536, maxAgeMs: 2000 } }],
    ],
    ['already in place', { sampling: { bme280: 10_000 }, outputs: { relay: false } }, []],
  ])('%s', (_name, desired, expected) => {
    const plan = new Reconciler().plan(desired, 1, actual, known, false);
    expect(plan?.rejected).toEqual([]);
    expect(plan?.changes).toMatchObject(expected);
  });

  it.each([
    ['out of bounds', { sampling: { bme280: 5 } }, 'sampling.bme280', /at least 100/],
    ['unknown sensor', { sampling: { nope: 5000 } }, 'sampling.nope', /no sensor "nope"/],
    ['unknown output', { outputs: { lamp: true } }, 'outputs.lamp', /no output "lamp"/],
    ['wrong type', { outputs: { relay: 'on' } }, 'outputs.relay', /true \(on\) or false/],
    ['bad level', { logLevel: 'loud' }, 'logLevel', /log level must be one of/],
    ['unknown key', { colour: 'red' }, 'colour', /unknown desired key/],
    ['batch too big', { batch: { maxBytes: 200_000 } }, 'batch.maxBytes', /at most 122880/],
  ])('rejects %s with a reason, and still applies the valid keys beside it', (_n, bad, path, reason) => {
    const plan = new Reconciler().plan({ logLevel: 'warn', ...bad }, 3, actual, known, false);
    expect(plan?.rejected.find((r) => r.path === path)?.reason).toMatch(reason);
    if (!('logLevel' in bad))
      expect(plan?.changes).toContainEqual({ kind: 'logLevel', path: 'logLevel', level: 'warn' });
  });

  it('ignores stale deltas but reconciles a full document of the same version', () => {
    const r = new Reconciler();
    const p1 = r.plan({ logLevel: 'debug' }, 5, actual, known, false);
    if (!p1) throw new Error('expected a plan');
    r.commit(p1);
    expect(r.plan({ logLevel: 'warn' }, 5, actual, known, false)).toBeUndefined();
    expect(r.plan({ logLevel: 'warn' }, 4, actual, known, false)).toBeUndefined();
    expect(r.plan({ logLevel: 'warn' }, 4, actual, known, true)).toBeUndefined();
    expect(r.plan({ logLevel: 'warn' }, 5, actual, known, true)?.changes).toHaveLength(1);
    expect(r.plan({ logLevel: 'warn' }, 6, actual, known, false)?.changes).toHaveLength(1);
  });
});

describe('Reconciler.commit → reported.rejected patch', () => {
  it('reports new rejections, clears fixed ones, and null when none remain', () => {
    const r = new Reconciler();
    const p1 = r.plan({ sampling: { bme280: 1 }, outputs: { lamp: true } }, 1, actual, known, true);
    if (!p1) throw new Error('plan');
    const patch1 = r.commit(p1);
    expect(Object.keys(patch1 ?? {}).sort()).toEqual(['outputs.lamp', 'sampling.bme280']);

    const p2 = r.plan({ sampling: { bme280: 2000 } }, 2, actual, known, false);
    if (!p2) throw new Error('plan');
    const patch2 = r.commit(p2);
    expect(patch2).toEqual({ 'sampling.bme280': null, 'outputs.lamp': { value: true, reason: expect.any(String) } });

    const p3 = r.plan({ sampling: { bme280: 2000 } }, 3, actual, known, true);
    if (!p3) throw new Error('plan');
    expect(r.commit(p3)).toBeNull();
    const p4 = r.plan({ sampling: { bme280: 2000 } }, 4, actual, known, true);
    if (!p4) throw new Error('plan');
    expect(r.commit(p4)).toBeUndefined();
  });

  it('reports a rejected top-level __proto__ key as an ordinary key of the patch', () => {
    const r = new Reconciler();
    const desired = JSON.parse('{"__proto__":{"x":1},"logLevel":"warn"}') as Record<string, unknown>;
    const plan = r.plan(desired, 1, actual, known, true);
    if (!plan) throw new Error('plan');
    const patch = r.commit(plan);
    expect(Object.getPrototypeOf(patch)).toBe(Object.prototype);
    expect(Object.keys(patch ?? {})).toEqual(['__proto__']);
    expect(Object.getOwnPropertyDescriptor(patch, '__proto__')?.value).toMatchObject({ value: { x: 1 } });
  });

  it('an applier failure becomes a rejection', () => {
    const r = new Reconciler();
    const p = r.plan({ outputs: { relay: true } }, 1, actual, known, false);
    if (!p) throw new Error('plan');
    const patch = r.commit(p, [{ path: 'outputs.relay', value: true, reason: 'EIO writing line 17' }]);
    expect(patch).toEqual({ 'outputs.relay': { value: true, reason: 'EIO writing line 17' } });
  });

  it('clears rejections the shadow still shows from an earlier boot', () => {
    const r = new Reconciler();
    r.seedReportedRejections({ 'sampling.old': { value: 1, reason: 'x' } });
    const p = r.plan({}, 1, actual, known, true);
    if (!p) throw new Error('plan');
    expect(r.commit(p)).toBeNull();
  });
});

describe('desiredChangeOf (/update/documents)', () => {
  const doc = (version: number, desired?: unknown, reported: unknown = { logLevel: 'info' }) => ({
    state: { ...(desired === undefined ? {} : { desired }), reported },
    metadata: {},
    version,
  });
  it.each([
    ['a desired key removed', doc(4, { outputs: { fan: true } }), doc(5, { outputs: {} }), { outputs: {} }],
    ['the whole desired section removed', doc(4, { logLevel: 'x' }), doc(5), {}],
    [
      'a value changed',
      doc(4, { sampling: { env: 5 } }),
      doc(5, { sampling: { env: 1000 } }),
      { sampling: { env: 1000 } },
    ],
    ['the first document', null, doc(1, { logLevel: 'debug' }), { logLevel: 'debug' }],
  ])('%s: the whole desired state after the update', (_name, previous, current, desired) => {
    expect(desiredChangeOf({ previous, current, timestamp: 1 })).toEqual({ version: current.version, desired });
  });

  it.each([
    ['a reported-only update', { previous: doc(4, { a: 1 }), current: doc(5, { a: 1 }, { logLevel: 'debug' }) }],
    ['no desired before or after', { previous: doc(4), current: doc(5) }],
    ['not a documents message', { state: { desired: {} } }],
    ['no version', { previous: null, current: { state: { desired: { a: 1 } } } }],
    ['not an object', 'documents'],
  ])('%s: nothing to re-check', (_name, message) => {
    expect(desiredChangeOf(message)).toBeUndefined();
  });

  it('a key named __proto__ is compared as data', () => {
    const message = JSON.parse(
      '{"previous":{"state":{"desired":{"__proto__":{"x":1}}},"version":1},"current":{"state":{"desired":{"__proto__":{"x":2}}},"version":2}}',
    );
    expect(desiredChangeOf(message)?.version).toBe(2);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });
});

describe('Reconciler: a full desired state without a rejected key clears it', () => {
  it.each([
    ['removed', {}],
    ['now valid and already in place', { sampling: { bme280: 10_000 } }],
  ])('%s', (_name, desired) => {
    const r = new Reconciler();
    const p1 = r.plan({ sampling: { bme280: 5 }, outputs: { lamp: true } }, 1, actual, known, false);
    if (!p1) throw new Error('plan');
    r.commit(p1);
    const p2 = r.plan({ ...desired, outputs: { lamp: true } }, 2, actual, known, true);
    if (!p2) throw new Error('plan');
    expect(p2.changes).toEqual([]);
    expect(r.commit(p2)).toEqual({ 'sampling.bme280': null, 'outputs.lamp': expect.objectContaining({ value: true }) });
    expect([...r.rejected.keys()]).toEqual(['outputs.lamp']);
  });
});

describe('buildReported', () => {
  it('builds a reported document with uptime and sampling from sensors', () => {
    const rep = buildReported(
      {
        agentVersion: '0.1.0',
        bootId: 'b-123456789',
        startedAt: 1000,
        now: 62_400,
        sensors: { bme280: { driver: 'bme280', healthy: true, intervalMs: 5000, errors: 0 } },
        outputs: { relay: true },
        batch: actual.batch,
        logLevel: 'info',
        outbox: { depth: 1, bytes: 10, dropped: 0, droppedReadings: 0, sent: 3 },
      },
      null,
    );
    expect(rep.agent.uptimeS).toBe(61);
    expect(rep.sampling).toEqual({ bme280: 5000 });
    expect(rep.rejected).toBeNull();
  });
});
