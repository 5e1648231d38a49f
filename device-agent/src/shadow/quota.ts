import { exponentialBackoff } from '@pifleet/protocol';
import { ShadowError, ShadowRejectedError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import type { Clock, TimerHandle } from '../ports/clock.js';
import type { ShadowService } from './port.js';

/**
 * IoT Core's Device Shadow quotas for one thing ("AWS IoT Core endpoints and quotas", Device Shadow
 * service): 20 requests per second and 10 in flight, the operator's (console, command API, data
 * plane) and the device's together. The agent needs no pacing of its own to stay inside them: its
 * requests go one at a time (its shadow queue), and each is caused by a connect (a get and a
 * report), an operator's update (a delta, answered by at most one report), or the periodic report
 * (at least 10 s apart). So it adds at most one request per operator request; when an operator
 * drives a thing at the quota, the 429s it gets are retried here.
 */

/** Retries of one request IoT Core answered 429 (throttled) before the agent gives it up until the next sync. */
export const SHADOW_THROTTLE_RETRIES = 5;

export interface QuotaShadowOptions {
  readonly shadow: ShadowService;
  readonly clock: Clock;
  readonly logger?: Logger;
  /** In [0, 1): backoff jitter. Default Math.random. */
  readonly random?: () => number;
  /** First backoff after a 429, ms (default 1 s; it doubles, up to `maxBackoffMs`). */
  readonly baseBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** Called for every request answered 429. */
  readonly onThrottled?: () => void;
}

const isThrottle = (err: unknown) => err instanceof ShadowRejectedError && err.serviceCode === 429;

/**
 * The shadow client as the agent uses it under IoT Core's quotas: a request rejected with 429 ("Too many requests": the
 * thing's rate or in-flight quota) retried after a growing backoff with full jitter, up to
 * {@link SHADOW_THROTTLE_RETRIES} times; then the rejection is passed on (the agent logs it and
 * syncs again on the next connect or periodic report). Any other rejection passes at once: it is
 * the service refusing what was sent, and resending the same thing cannot help.
 */
export function createQuotaShadow(opts: QuotaShadowOptions): ShadowService {
  const { shadow, clock } = opts;
  const log = (opts.logger ?? silentLogger()).child({ component: 'shadow-quota' });
  const random = opts.random ?? Math.random;
  const baseMs = opts.baseBackoffMs ?? 1_000;
  const capMs = opts.maxBackoffMs ?? 30_000;
  const sleeping = new Map<TimerHandle, (err: Error) => void>();
  let closed = false;

  const sleep = (ms: number) =>
    new Promise<void>((resolve, reject) => {
      if (ms <= 0) {
        resolve();
        return;
      }
      const handle = clock.setTimeout(() => {
        sleeping.delete(handle);
        resolve();
      }, ms);
      sleeping.set(handle, reject);
    });

  const run = async <T>(operation: string, call: () => Promise<T>): Promise<T> => {
    for (let retry = 0; ; retry++) {
      if (closed) throw new ShadowError('SHADOW_CLOSED', `shadow ${operation} after close()`, { data: { operation } });
      try {
        return await call();
      } catch (err) {
        if (!isThrottle(err) || closed) throw err;
        opts.onThrottled?.();
        if (retry >= SHADOW_THROTTLE_RETRIES) {
          log.warn({ operation, retries: retry }, 'shadow request still throttled (429); given up until the next sync');
          throw err;
        }
        const delay = exponentialBackoff(retry, { baseMs, capMs, floorMs: Math.ceil(baseMs / 10) }, random);
        log.warn({ operation, retry: retry + 1, retryInMs: delay }, 'shadow request throttled (429); retrying');
        await sleep(delay);
      }
    }
  };

  return {
    get: () => run('get', () => shadow.get()),
    updateReported: (reported) => run('update', () => shadow.updateReported(reported)),
    onDelta: (listener) => shadow.onDelta(listener),
    onStreamRestored: (listener) => shadow.onStreamRestored(listener),
    close() {
      if (closed) return;
      closed = true;
      for (const [handle, reject] of sleeping) {
        clock.clearTimeout(handle);
        reject(new ShadowError('SHADOW_CLOSED', 'shadow client closed', { data: {} }));
      }
      sleeping.clear();
      shadow.close();
    },
  };
}
