import { TokenBucket } from '@pifleet/protocol';
import type { Logger } from '../logger.js';
import type { Outbox } from '../outbox/outbox.js';
import type { Clock, TimerHandle } from '../ports/clock.js';
import type { Transport } from '../ports/transport.js';

export interface PublisherDeps {
  readonly outbox: Outbox;
  readonly transport: Transport;
  readonly topic: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly maxInFlight: number;
  readonly maxPerSecond: number;
  readonly ackTimeoutMs: number;
  /** Delay before retrying after a failed publish. */
  readonly retryDelayMs?: number;
}

export interface Publisher {
  /** Looks for work: call after a put, on (re)connect. */
  kick(): void;
  readonly inFlight: number;
  /** Stops starting publishes and waits up to `ms` for those in flight; resolves true if all were acknowledged. */
  drain(ms: number): Promise<boolean>;
}

/**
 * Sends outbox batches oldest first, QoS 1, at most `maxInFlight` unacknowledged and at most
 * `maxPerSecond` publishes per second; deletes a batch only when its PUBACK arrives. A failed or
 * timed-out publish leaves the batch in the outbox to be sent again (storage drops duplicates by
 * thingName + bootId + seq).
 */
export function createPublisher(deps: PublisherDeps): Publisher {
  const { outbox, transport, clock } = deps;
  const log = deps.logger;
  // The agent's own pacing: bursts of up to maxInFlight (at most a second's worth), maxPerSecond on average.
  const pacer = new TokenBucket({
    ratePerSecond: deps.maxPerSecond,
    burst: Math.max(1, Math.min(deps.maxInFlight, deps.maxPerSecond)),
  });
  const inFlight = new Set<number>();
  const waiters = new Set<() => void>();
  let timer: TimerHandle | undefined;
  let draining = false;
  let pausedUntil = 0;

  const schedule = (ms: number) => {
    if (timer !== undefined) return;
    timer = clock.setTimeout(() => {
      timer = undefined;
      pump();
    }, ms);
  };

  const settle = (id: number) => {
    inFlight.delete(id);
    if (inFlight.size === 0) for (const w of waiters) w();
  };

  const send = (entry: { id: number; json: string; seq: number; bootId: string }) => {
    inFlight.add(entry.id);
    let done = false;
    const ackTimer = clock.setTimeout(() => {
      if (done) return;
      done = true;
      log.warn({ id: entry.id, seq: entry.seq }, 'publish not acknowledged in time; will resend');
      settle(entry.id);
      pump();
    }, deps.ackTimeoutMs);
    transport.publish(deps.topic, entry.json, { qos: 1 }).then(
      () => {
        clock.clearTimeout(ackTimer);
        if (!done) {
          done = true;
          try {
            outbox.ack(entry.id);
          } catch (err) {
            log.error({ err }, 'outbox ack failed');
          }
          settle(entry.id);
        }
        pump();
      },
      (err: unknown) => {
        clock.clearTimeout(ackTimer);
        if (done) return;
        done = true;
        log.warn({ err, id: entry.id, seq: entry.seq }, 'publish failed; will resend');
        settle(entry.id);
        pausedUntil = clock.now() + (deps.retryDelayMs ?? 1_000);
        schedule(deps.retryDelayMs ?? 1_000);
      },
    );
  };

  function pump(): void {
    if (draining || !transport.isConnected) return;
    const now = clock.now();
    if (now < pausedUntil) {
      schedule(pausedUntil - now);
      return;
    }
    while (inFlight.size < deps.maxInFlight) {
      let entries: ReturnType<Outbox['next']>;
      try {
        entries = outbox.next(1, inFlight);
      } catch (err) {
        log.error({ err }, 'outbox read failed');
        return;
      }
      const entry = entries[0];
      if (!entry) return;
      if (!pacer.tryTake(clock.now())) {
        schedule(Math.ceil(pacer.waitMs(clock.now())));
        return;
      }
      send(entry);
    }
  }

  return {
    kick: () => pump(),
    get inFlight() {
      return inFlight.size;
    },
    drain(ms) {
      draining = true;
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      if (inFlight.size === 0) return Promise.resolve(true);
      return new Promise<boolean>((resolve) => {
        const t = clock.setTimeout(() => {
          waiters.delete(done);
          resolve(false);
        }, ms);
        const done = () => {
          clock.clearTimeout(t);
          waiters.delete(done);
          resolve(true);
        };
        waiters.add(done);
      });
    },
  };
}
