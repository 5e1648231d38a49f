import { describe, expect, it } from 'vitest';
import { createApiRateGate, type QuotaName, resolveLimits } from '../../src/limits/index.js';

/** The control plane's per-operation gate, on a virtual clock: below, at and over a rate, and refilling. */

function gate(overrides: Parameters<typeof resolveLimits>[1] = {}, mode: 'aws' | 'off' = 'aws') {
  const hits: Array<{ quota: QuotaName; subject: string | undefined }> = [];
  const g = createApiRateGate({
    limits: resolveLimits(mode, overrides),
    throttles: { hit: (quota, subject) => void hits.push({ quota, subject }) },
  });
  return { g, hits };
}

const T0 = 1_700_000_000_000;

describe('createApiRateGate', () => {
  it('admits a second of burst at the rate, refuses the next and counts it under the operation', () => {
    const { g, hits } = gate({ apiAttachPolicyPerSecond: 4 });
    expect(Array.from({ length: 4 }, () => g.admit('AttachPolicy', T0))).toEqual([true, true, true, true]);
    expect(g.admit('AttachPolicy', T0)).toBe(false);
    expect(hits).toEqual([{ quota: 'apiAttachPolicyPerSecond', subject: 'AttachPolicy' }]);
  });

  it('admits one more each 1/rate seconds, not before', () => {
    const { g } = gate({ apiAttachPolicyPerSecond: 4 });
    for (let i = 0; i < 4; i++) g.admit('AttachPolicy', T0);
    expect(g.admit('AttachPolicy', T0 + 249)).toBe(false);
    expect(g.admit('AttachPolicy', T0 + 250)).toBe(true);
    expect(g.admit('AttachPolicy', T0 + 250)).toBe(false);
  });

  it('keeps paced calls below the rate unthrottled for as long as they go on', () => {
    const { g, hits } = gate();
    // CreateThing at AWS's 15 per second, paced at 14 per second for a minute.
    for (let i = 0; i < 14 * 60; i++) expect(g.admit('CreateThing', T0 + Math.round((i * 1000) / 14))).toBe(true);
    expect(hits).toEqual([]);
  });

  it('lets operations without a published rate through (topic rules, the command API, the console)', () => {
    const { g } = gate();
    for (let i = 0; i < 1000; i++) expect(g.admit('CreateTopicRule', T0)).toBe(true);
  });

  it('lifts a rate set to null, and every rate with --limits off', () => {
    const nulled = gate({ apiCreateThingPerSecond: null });
    const off = gate({}, 'off');
    for (let i = 0; i < 100; i++) {
      expect(nulled.g.admit('CreateThing', T0)).toBe(true);
      expect(off.g.admit('DescribeThing', T0)).toBe(true);
    }
    expect(nulled.g.admit('ListThings', T0)).toBe(true);
  });
});
