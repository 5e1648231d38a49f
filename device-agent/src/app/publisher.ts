import { exponentialBackoff, HEALTH_BOUNDS, STATE_BOUNDS, TokenBucket } from '@pifleet/protocol';
import { type LatencySummary, LatencyWindow } from '../core/latency-window.js';
import { type PublishRefusal, publishRefusalOf, type TelemetryBlocked } from '../core/publish-refusal.js';
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
  /**
   * Telemetry payload bytes per second (IoT Core allows 512 KiB a second per connection). Default
   * unlimited; a batch larger than it is still sent, alone in its second.
   */
  readonly maxBytesPerSecond?: number;
  readonly ackTimeoutMs: number;
  /** Delay before retrying after a failed publish. */
  readonly retryDelayMs?: number;
  /**
   * Interval of the slow retry while the broker refuses the topic (NOT_AUTHORIZED,
   * TOPIC_NAME_INVALID), and how long a batch it refuses by itself is held back. Default 60 s.
   */
  readonly refusedRetryMs?: number;
  /** Called when the topic becomes refused, and when a publish is accepted again (`blocked()` says which). */
  readonly onBlockedChange?: () => void;
  /** Most a backoff after throttling or an unacknowledged publish grows to. Default 60 s. */
  readonly backoffMaxMs?: number;
  /** In [0, 1): the jitter of the backoff. Default Math.random. */
  readonly random?: () => number;
  /** Acknowledgements the publish latency is summarised over. Default 256 (`HEALTH_BOUNDS.latencyWindow`). */
  readonly latencyWindow?: number;
}

/** What the broker's quotas did to the telemetry since the agent started. */
export interface PublishThrottling {
  /** Publishes refused for a quota (MQTT 5 PUBACK 0x97 QUOTA_EXCEEDED, 0x96 MESSAGE_RATE_TOO_HIGH). */
  readonly throttled: number;
  /**
   * Publishes not acknowledged within `ackTimeoutMs` while their connection stayed up (MQTT 3.1.1:
   * IoT Core sends no PUBACK for a throttled publish, so this is how throttling shows there).
   */
  readonly unacknowledged: number;
}

export interface Publisher {
  /** Looks for work: call after a put, on (re)connect. */
  kick(): void;
  readonly inFlight: number;
  /** Stops starting publishes and waits up to `ms` for those in flight; resolves true if all were acknowledged. */
  drain(ms: number): Promise<boolean>;
  /** Why the broker refuses the telemetry topic, while it does. */
  blocked(): TelemetryBlocked | undefined;
  throttling(): PublishThrottling;
  /**
   * Time from each batch's PUBLISH to its PUBACK on the publisher's clock, over the last
   * acknowledgements; undefined until one arrived. Refused, failed and timed-out publishes are not
   * latencies and are left out (they are counted in `throttling()` or logged).
   */
  latency(): LatencySummary | undefined;
}

/**
 * Sends outbox batches oldest first, QoS 1, at most `maxInFlight` unacknowledged and at most
 * `maxPerSecond` publishes per second; deletes a batch only when its PUBACK arrives. A failed or
 * timed-out publish leaves the batch in the outbox to be sent again (storage drops duplicates by
 * thingName + bootId + seq).
 *
 * A publish the broker refuses with an MQTT 5 reason code is handled by what the code means
 * (`core/publish-refusal.ts`): a refused topic (NOT_AUTHORIZED: the policy) is logged once as an
 * error that says what to fix and reported through `blocked()`; every batch stays in the outbox,
 * and only the oldest is offered again, once per `refusedRetryMs`, until one is accepted. A batch
 * refused by itself is held back for that interval while the ones behind it go.
 *
 * Quotas: the pacing keeps the agent under IoT Core's per-connection publish quotas (count and
 * bytes); a publish the broker still throttles (PUBACK 0x97/0x96 on MQTT 5, no PUBACK at all on
 * 3.1.1) is never dropped and never blocks the topic: it stays in the outbox, the publisher pauses
 * for a backoff that grows while the throttling lasts (full jitter, `exponentialBackoff`), and both
 * are counted in `throttling()` for the shadow and the fleet report.
 */
export function createPublisher(deps: PublisherDeps): Publisher {
  const { outbox, transport, clock } = deps;
  const log = deps.logger;
  // The agent's own pacing: bursts of up to maxInFlight (at most half a second's worth),
  // maxPerSecond on average. Any one-second window then holds at most burst + rate publishes, 75 at
  // the highest rate the config allows (50/s): under IoT Core's 100/s per connection with room for
  // the shadow and status messages, however the broker draws its windows.
  const pacer = new TokenBucket({
    ratePerSecond: deps.maxPerSecond,
    burst: Math.max(1, Math.min(deps.maxInFlight, Math.floor(deps.maxPerSecond / 2))),
  });
  // Bytes: bursts of one largest batch (120 KiB), the rate on average, so any one-second window
  // holds at most rate + 120 KiB (504 KiB at the highest rate the config allows, under the 512 KiB/s
  // quota). A batch larger than the burst goes alone when the bucket is full, so it is never stuck.
  const maxBytesPerSecond = deps.maxBytesPerSecond;
  const byteBurst = Math.min(maxBytesPerSecond ?? 0, STATE_BOUNDS.batchMaxBytes.max);
  const bytePacer =
    maxBytesPerSecond === undefined
      ? undefined
      : new TokenBucket({ ratePerSecond: maxBytesPerSecond, burst: byteBurst });
  const retryDelayMs = deps.retryDelayMs ?? 1_000;
  const backoffMaxMs = deps.backoffMaxMs ?? 60_000;
  const random = deps.random ?? Math.random;
  /**
   * The rate the broker lets through, as the publisher learns it: halved at each throttle (or
   * publish left unacknowledged with the connection up), raised
   * by a quarter publish a second at each accepted one, back to `maxPerSecond` (additive increase,
   * multiplicative decrease). Below `maxPerSecond` the publishes go one at a time, evenly spaced: a
   * quota lower than the configured rate (a small account limit, a shared connection) is then met
   * instead of hit again after every backoff, so a backlog drains whenever the readings come slower
   * than the quota.
   */
  let rate = deps.maxPerSecond;
  let lastSendAt = Number.NEGATIVE_INFINITY;
  let throttledCount = 0;
  let unacknowledgedCount = 0;
  /** Throttled or unacknowledged publishes since the last accepted one: the backoff's retry number. */
  let strikes = 0;
  /** Connections lost so far: a publish whose connection was lost meanwhile is not "unacknowledged". */
  let interruptions = 0;
  transport.on('interrupted', () => {
    interruptions += 1;
  });
  const inFlight = new Set<number>();
  const latencies = new LatencyWindow(deps.latencyWindow ?? HEALTH_BOUNDS.latencyWindow);
  const waiters = new Set<() => void>();
  let timer: TimerHandle | undefined;
  let draining = false;
  let pausedUntil = 0;
  const refusedRetryMs = deps.refusedRetryMs ?? 60_000;
  let blocked: TelemetryBlocked | undefined;
  /** Refused probes since the topic was blocked (logged at debug, counted in the resume line). */
  let refusedProbes = 0;
  /** Batches the broker refused by themselves: outbox id → until when they are held back. */
  const held = new Map<number, number>();
  /** Batches whose refusal was logged (once each, however often they are offered again). */
  const refusedLogged = new Set<number>();

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

  /** Pauses sending for the backoff of the current strike (full jitter, at least a tenth of the base). */
  const backOff = (): number => {
    const delay = exponentialBackoff(
      strikes - 1,
      { baseMs: retryDelayMs, capMs: backoffMaxMs, floorMs: Math.ceil(retryDelayMs / 10) },
      random,
    );
    pausedUntil = Math.max(pausedUntil, clock.now() + delay);
    schedule(pausedUntil - clock.now());
    return delay;
  };

  const send = (entry: { id: number; json: string; seq: number; bootId: string }) => {
    inFlight.add(entry.id);
    let done = false;
    const sentOn = interruptions;
    const publishedAt = clock.now();
    const ackTimer = clock.setTimeout(() => {
      if (done) return;
      done = true;
      settle(entry.id);
      if (sentOn !== interruptions || !transport.isConnected) {
        // The connection went away under it: resent once connected again (the agent kicks the
        // publisher on every connect), not counted as the broker leaving it unacknowledged.
        log.debug({ id: entry.id, seq: entry.seq }, 'publish lost with its connection; will resend');
        pump();
        return;
      }
      unacknowledgedCount += 1;
      strikes += 1;
      // Over 3.1.1 the missing PUBACK is the only sign of throttling: learn a lower rate as for a 0x97.
      rate = Math.max(0.5, rate / 2);
      // No PUBACK: on MQTT 3.1.1 that is how IoT Core throttles a publish (it sends none), so the
      // batch is resent after a backoff, not at once into the same quota. Duplicates from a PUBACK
      // that was only late are dropped by storage (thingName, bootId, seq).
      const retryInMs = backOff();
      log.warn(
        { id: entry.id, seq: entry.seq, unacknowledged: unacknowledgedCount, retryInMs },
        'publish not acknowledged in time; will resend',
      );
    }, deps.ackTimeoutMs);
    transport.publish(deps.topic, entry.json, { qos: 1 }).then(
      () => {
        clock.clearTimeout(ackTimer);
        if (!done) {
          done = true;
          latencies.add(clock.now() - publishedAt);
          try {
            outbox.ack(entry.id);
          } catch (err) {
            log.error({ err }, 'outbox ack failed');
          }
          held.delete(entry.id);
          refusedLogged.delete(entry.id);
          settle(entry.id);
          if (blocked) unblock();
          if (rate < deps.maxPerSecond) rate = Math.min(deps.maxPerSecond, rate + 0.25);
          if (strikes > 0) {
            log.info(
              { strikes, throttled: throttledCount, unacknowledged: unacknowledgedCount },
              'broker acknowledges publishes again after throttling or timeouts',
            );
            strikes = 0;
          }
        }
        pump();
      },
      (err: unknown) => {
        clock.clearTimeout(ackTimer);
        if (done) return;
        done = true;
        settle(entry.id);
        const refusal = publishRefusalOf(err, deps.topic);
        if (refusal?.scope === 'topic') return topicRefused(refusal, err);
        if (refusal?.scope === 'batch') return batchRefused(refusal, entry, err);
        if (refusal?.scope === 'throttled') return throttled(refusal, entry);
        log.warn(
          {
            err,
            id: entry.id,
            seq: entry.seq,
            ...(refusal ? { reasonCode: refusal.reasonCode, reason: refusal.reason } : {}),
          },
          'publish failed; will resend',
        );
        pausedUntil = clock.now() + retryDelayMs;
        schedule(retryDelayMs);
      },
    );
  };

  /**
   * A quota refusal: the first of a run is a warning with the reason code, the rest are debug (the
   * count is in the shadow and in the line that says it is over), then a growing backoff.
   */
  const throttled = (refusal: PublishRefusal, entry: { id: number; seq: number }) => {
    throttledCount += 1;
    strikes += 1;
    rate = Math.max(0.5, rate / 2);
    const retryInMs = backOff();
    const fields = {
      id: entry.id,
      seq: entry.seq,
      reasonCode: refusal.reasonCode,
      reason: refusal.reason,
      throttled: throttledCount,
      retryInMs,
      ratePerSecond: rate,
    };
    if (strikes === 1) log.warn(fields, 'publish throttled by the broker (quota); batch kept, backing off');
    else log.debug(fields, 'publish still throttled');
  };

  /**
   * The broker refuses the topic: one error line that says what to fix (the same refusal again is
   * debug: the probes of a policy nobody fixed yet must not flood the journal), then the slow probe.
   */
  const topicRefused = (refusal: PublishRefusal, err: unknown) => {
    const now = clock.now();
    if (blocked?.reasonCode === refusal.reasonCode) {
      refusedProbes += 1;
      log.debug({ reasonCode: refusal.reasonCode, reason: refusal.reason, refusedProbes }, 'telemetry still refused');
    } else {
      blocked = {
        blocked: refusal.reason,
        reasonCode: refusal.reasonCode,
        topic: deps.topic,
        since: now,
        fix: refusal.fix,
      };
      refusedProbes = 0;
      log.error(
        {
          err,
          topic: deps.topic,
          reasonCode: refusal.reasonCode,
          reason: refusal.reason,
          fix: refusal.fix,
          retryEveryMs: refusedRetryMs,
          kept: safeDepth(),
        },
        'broker refuses the telemetry topic: a configuration problem, not resent until it is fixed (retried slowly)',
      );
      deps.onBlockedChange?.();
    }
    pausedUntil = now + refusedRetryMs;
    schedule(refusedRetryMs);
  };

  const batchRefused = (refusal: PublishRefusal, entry: { id: number; seq: number; bootId: string }, err: unknown) => {
    const now = clock.now();
    if (!refusedLogged.has(entry.id)) {
      refusedLogged.add(entry.id);
      log.error(
        {
          err,
          id: entry.id,
          seq: entry.seq,
          bootId: entry.bootId,
          reasonCode: refusal.reasonCode,
          reason: refusal.reason,
          fix: refusal.fix,
          retryEveryMs: refusedRetryMs,
        },
        'broker refuses a batch; it is held back and kept, the ones behind it are sent',
      );
    }
    held.set(entry.id, now + refusedRetryMs);
    pump();
  };

  const unblock = () => {
    if (!blocked) return;
    log.info(
      { topic: deps.topic, reason: blocked.blocked, blockedForMs: clock.now() - blocked.since, refusedProbes },
      'broker accepts telemetry again; sending the kept batches',
    );
    blocked = undefined;
    refusedProbes = 0;
    pausedUntil = 0;
    deps.onBlockedChange?.();
  };

  const safeDepth = () => {
    try {
      return outbox.stats().depth;
    } catch {
      return undefined;
    }
  };

  /** In-flight batches and those held back now: not offered; releases holds that expired (and wakes for the next). */
  const excluded = (now: number): ReadonlySet<number> => {
    if (held.size === 0) return inFlight;
    const out = new Set(inFlight);
    let nextRelease = Number.POSITIVE_INFINITY;
    for (const [id, until] of held) {
      if (until <= now) held.delete(id);
      else {
        out.add(id);
        nextRelease = Math.min(nextRelease, until);
      }
    }
    if (nextRelease !== Number.POSITIVE_INFINITY) schedule(nextRelease - now);
    return out;
  };

  function pump(): void {
    if (draining || !transport.isConnected) return;
    const now = clock.now();
    if (now < pausedUntil) {
      schedule(pausedUntil - now);
      return;
    }
    // While the topic is refused, one probe at a time: the answer is the same for every batch.
    const limit = blocked ? 1 : deps.maxInFlight;
    while (inFlight.size < limit) {
      let entries: ReturnType<Outbox['next']>;
      try {
        entries = outbox.next(1, excluded(clock.now()));
      } catch (err) {
        log.error({ err }, 'outbox read failed');
        return;
      }
      const entry = entries[0];
      if (!entry) return;
      const at = clock.now();
      if (rate < deps.maxPerSecond) {
        // After throttling: one at a time, at the learned rate.
        if (inFlight.size > 0) return;
        const due = lastSendAt + 1000 / rate;
        if (at < due) {
          schedule(Math.ceil(due - at));
          return;
        }
      }
      const wait = pacer.waitMs(at);
      if (wait > 0) {
        schedule(Math.ceil(wait));
        return;
      }
      if (bytePacer && maxBytesPerSecond !== undefined) {
        const cost = Math.min(entry.bytes, byteBurst);
        if (!bytePacer.tryTakeMany(at, cost)) {
          // At most the time the whole cost takes to accrue.
          schedule(Math.max(1, Math.ceil((cost * 1000) / maxBytesPerSecond)));
          return;
        }
      }
      pacer.tryTake(at);
      lastSendAt = at;
      send(entry);
    }
  }

  return {
    kick: () => pump(),
    blocked: () => blocked,
    throttling: () => ({ throttled: throttledCount, unacknowledged: unacknowledgedCount }),
    latency: () => latencies.summary(),
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
