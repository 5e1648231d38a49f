/**
 * The shadow client under IoT Core's Device Shadow quotas, on the virtual clock: a 429 retried after
 * a growing backoff, other rejections passed on at once.
 */
import { describe, expect, it } from 'vitest';
import { ShadowRejectedError } from '../../src/errors.js';
import type { ShadowService } from '../../src/shadow/port.js';
import { createQuotaShadow, SHADOW_THROTTLE_RETRIES } from '../../src/shadow/quota.js';
import { createVirtualClock } from '../../src/testing/virtual-clock.js';

/** A shadow service that answers each request with the next scripted outcome (a code rejects, undefined accepts). */
function scriptedShadow(script: (number | undefined)[], clock: { now(): number }) {
  const calls: { op: string; at: number }[] = [];
  let closed = false;
  const answer = async (op: string) => {
    calls.push({ op, at: clock.now() });
    const code = script.shift();
    if (code !== undefined) throw new ShadowRejectedError(op, { code, message: `code ${code}`, clientToken: 't' });
  };
  const service: ShadowService = {
    async get() {
      await answer('get');
      return { version: 1, desired: {}, reported: {} };
    },
    async updateReported() {
      await answer('update');
      return { version: 2 };
    },
    onDelta: () => () => {},
    onStreamRestored: () => () => {},
    close() {
      closed = true;
    },
  };
  return { service, calls, isClosed: () => closed };
}

/** Runs `p` while advancing the virtual clock in 10 ms steps until it settles. */
async function drive<T>(clock: ReturnType<typeof createVirtualClock>, p: Promise<T>, maxMs = 120_000) {
  let settled = false;
  const watched = p.finally(() => {
    settled = true;
  });
  watched.catch(() => undefined);
  for (let t = 0; t < maxMs && !settled; t += 10) await clock.advance(10);
  return watched;
}

describe('createQuotaShadow', () => {
  it('retries a request answered 429 after a growing backoff, counts each, and resolves once accepted', async () => {
    const clock = createVirtualClock({ start: 0 });
    const { service, calls } = scriptedShadow([429, 429, 429, undefined], clock);
    let throttled = 0;
    const shadow = createQuotaShadow({
      shadow: service,
      clock,
      random: () => 0.999,
      onThrottled: () => {
        throttled += 1;
      },
    });
    await expect(drive(clock, shadow.updateReported({ a: 1 }))).resolves.toEqual({ version: 2 });
    expect(throttled).toBe(3);
    expect(calls).toHaveLength(4);
    // The waits grow: ~1 s, ~2 s, ~4 s (full jitter drew its top here).
    const gaps = calls.slice(1).map((c, i) => c.at - (calls[i]?.at ?? 0));
    expect(gaps[0]).toBeGreaterThanOrEqual(990);
    expect(gaps[1]).toBeGreaterThanOrEqual(1_990);
    expect(gaps[2]).toBeGreaterThanOrEqual(3_990);
  });

  it(`gives up after ${SHADOW_THROTTLE_RETRIES} retries with the 429 itself`, async () => {
    const clock = createVirtualClock({ start: 0 });
    const { service, calls } = scriptedShadow(Array(20).fill(429), clock);
    const shadow = createQuotaShadow({ shadow: service, clock, random: () => 0.5 });
    const err = await drive(clock, shadow.get()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ShadowRejectedError);
    expect((err as ShadowRejectedError).serviceCode).toBe(429);
    expect(calls).toHaveLength(SHADOW_THROTTLE_RETRIES + 1);
  });

  it.each([400, 404, 409, 413, 500])(
    'passes a %d rejection on at once: resending the same request cannot help',
    async (code) => {
      const clock = createVirtualClock({ start: 0 });
      const { service, calls } = scriptedShadow([code], clock);
      const shadow = createQuotaShadow({ shadow: service, clock });
      const err = await drive(clock, shadow.updateReported({})).catch((e: unknown) => e);
      expect((err as ShadowRejectedError).serviceCode).toBe(code);
      expect(calls).toHaveLength(1);
    },
  );

  it('close() ends a backoff wait at once and closes the client underneath', async () => {
    const clock = createVirtualClock({ start: 0 });
    const { service, isClosed } = scriptedShadow([429, 429], clock);
    const shadow = createQuotaShadow({ shadow: service, clock, random: () => 0.9 });
    const pending = shadow.get().catch((e: unknown) => e);
    await clock.advance(10);
    shadow.close();
    const err = await pending;
    expect((err as { code?: string }).code).toBe('SHADOW_CLOSED');
    expect(isClosed()).toBe(true);
  });
});
