/**
 * The ShadowService port's contract, run against each shadow client over a broker that answers
 * like IoT Core (`shadow-responder.ts`): 404 → undefined, update and read back, a rejection as a
 * `ShadowRejectedError` with IoT's code, deltas, a `ShadowTimeoutError` when nobody answers, and
 * no requests after close().
 */
import { describe, expect, it } from 'vitest';
import { ShadowError, ShadowRejectedError, ShadowTimeoutError } from '../../src/errors.js';
import type { ShadowDelta, ShadowService } from '../../src/shadow/port.js';
import type { ShadowResponder } from './shadow-responder.js';
import { waitFor } from './tls-broker.js';

export interface ShadowClientUnderTest {
  readonly shadow: ShadowService;
  /** Closes the shadow client, then its transport. */
  close(): Promise<void>;
}

/** Connects a client for `thing` (a thing name no other test uses) with the given request timeout. */
export type MakeShadowClient = (thing: string, requestTimeoutMs: number) => Promise<ShadowClientUnderTest>;

export function describeShadowClientContract(
  name: string,
  responder: () => ShadowResponder,
  make: MakeShadowClient,
): void {
  const using = async (thing: string, requestTimeoutMs: number, fn: (s: ShadowService) => Promise<void>) => {
    const client = await make(thing, requestTimeoutMs);
    try {
      await fn(client.shadow);
    } finally {
      await client.close();
    }
  };

  describe(`${name}: the shadow client contract`, () => {
    it('gets nothing before the first report (404), then reports and reads back desired and reported', async () => {
      await using('sc-read', 5_000, async (shadow) => {
        expect(await shadow.get()).toBeUndefined();
        expect(await shadow.updateReported({ logLevel: 'info', outputs: { relay: false } })).toEqual({ version: 1 });
        responder().setDesired('sc-read', { outputs: { relay: true } });
        expect(await shadow.get()).toEqual({
          version: 1,
          desired: { outputs: { relay: true } },
          reported: { logLevel: 'info', outputs: { relay: false } },
        });
      });
    });

    it('turns a rejected update into a ShadowRejectedError with IoT code and clientToken, and keeps working', async () => {
      await using('sc-rejected', 5_000, async (shadow) => {
        const err = await shadow.updateReported({ tooBig: 'x' }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ShadowRejectedError);
        expect(err).toBeInstanceOf(ShadowError);
        expect(err).toMatchObject({
          name: 'ShadowRejectedError',
          code: 'SHADOW_REJECTED',
          serviceCode: 413,
          clientToken: expect.any(String),
          data: { operation: 'update', code: 413 },
        });
        expect((await shadow.updateReported({ ok: true })).version).toBe(1);
      });
    });

    it('follows deltas', async () => {
      await using('sc-delta', 5_000, async (shadow) => {
        const deltas: ShadowDelta[] = [];
        const first = waitFor<void>('delta', (done) => {
          shadow.onDelta((d) => {
            deltas.push(d);
            done();
          });
        });
        // The stream subscribes asynchronously: keep publishing the delta until it arrives.
        const timer = setInterval(() => responder().publishDelta('sc-delta', 7, { outputs: { relay: true } }), 50);
        await first.finally(() => clearInterval(timer));
        expect(deltas[0]).toEqual({ version: 7, state: { outputs: { relay: true } } });
      });
    });

    it('fails a request nobody answers with a ShadowTimeoutError after the request timeout', async () => {
      responder().silent.add('sc-silent');
      await using('sc-silent', 1_500, async (shadow) => {
        const started = Date.now();
        const err = await shadow.get().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ShadowTimeoutError);
        expect(err).not.toBeInstanceOf(ShadowRejectedError);
        expect(err).toMatchObject({ name: 'ShadowTimeoutError', code: 'SHADOW_TIMEOUT', timeoutMs: 1_500 });
        expect(Date.now() - started).toBeGreaterThanOrEqual(1_400);
        expect(Date.now() - started).toBeLessThan(5_000);
      });
    });

    it('refuses requests after close()', async () => {
      const { shadow, close } = await make('sc-closed', 5_000);
      await close();
      await expect(shadow.get()).rejects.toMatchObject({ name: 'ShadowError', code: 'SHADOW_CLOSED' });
      await expect(shadow.updateReported({})).rejects.toMatchObject({ code: 'SHADOW_CLOSED' });
    });
  });
}
