import { TokenBucket, type TopicLimits } from '@pifleet/protocol';
import type { ThrottleCounters } from '../limits/counters.js';
import { KeyedRateLimiter } from '../limits/keyed-rate.js';
import { type Limits, limitOf, type QuotaName, resolveLimits } from '../limits/quotas.js';

/**
 * The message broker's share of IoT Core's quotas (AWS General Reference, "AWS IoT Core endpoints
 * and quotas", message broker): the connect, publish and subscribe rates, the connection,
 * subscription and retained-message counts, and the sizes, from the core's `limits`. It decides;
 * broker.ts answers the client the way IoT Core does for its protocol version. Every breach is
 * counted in `throttles`.
 *
 * Cost: this runs on every PUBLISH. A connection's buckets live on its session (no map lookup per
 * message), a quota that is not enforced has no bucket at all, and a decision is two or three
 * token-bucket reads (a subtraction and a comparison each).
 */

export interface BrokerQuotasDeps {
  /** Default: `off` (IoT Core's sizes, no rates or counts), for a broker built without a core. */
  readonly limits?: Limits;
  readonly throttles?: ThrottleCounters;
  /** Milliseconds, monotonic enough for token buckets. */
  readonly now: () => number;
}

/** One connection's rate buckets (undefined where the quota is not enforced). */
export interface ConnectionQuota {
  readonly publishes: TokenBucket | undefined;
  readonly bytes: TokenBucket | undefined;
}

/** Why a CONNECT is refused: the quota, and whether it is a rate (MQTT 5 0x9F) or a count (0x97). */
export interface ConnectRefusal {
  readonly quota: QuotaName;
  readonly rate: boolean;
}

export interface BrokerQuotas {
  readonly limits: Limits;
  /** The topic size quotas for `checkTopicName`/`checkTopicFilter`. */
  readonly topicLimits: TopicLimits;
  /** Largest payload (bytes); Infinity when not enforced. */
  readonly messageBytes: number;
  /** Longest client id (UTF-8 bytes); Infinity when not enforced. */
  readonly clientIdBytes: number;
  /**
   * A CONNECT's rates and the account's connection count. `takeover`: the client id is connected
   * already, so the new connection replaces one and adds none.
   */
  admitConnect(clientId: string, connections: number, takeover: boolean): ConnectRefusal | undefined;
  /** A new connection's buckets. */
  connection(): ConnectionQuota;
  /** An inbound PUBLISH of `bytes` payload bytes on `connection`; the quota it breaches, if any. */
  admitPublish(connection: ConnectionQuota | undefined, bytes: number, subject: string): QuotaName | undefined;
  /** A retained PUBLISH that would add a topic to the `stored` retained messages. */
  admitRetained(stored: number, subject: string): QuotaName | undefined;
  /**
   * A SUBSCRIBE of `filters` new topic filters (not held yet) on a connection holding `held`, in a
   * packet of `inPacket` filters: how many of the new ones are refused (the last ones), and why.
   */
  admitSubscribe(
    inPacket: number,
    filters: number,
    held: number,
    subject: string,
  ): { refused: number; quota: QuotaName } | undefined;
  /** Counts a breach decided elsewhere (a size the broker checks itself). */
  hit(quota: QuotaName, subject: string): void;
  /** QoS 1 messages a client may have unacknowledged; undefined when not enforced. */
  readonly inFlightPerClient: number | undefined;
}

/**
 * IoT Core's "in-flight unacknowledged messages" quota: at most `limit` QoS 1 messages sent to one
 * client and not yet acknowledged; further ones wait (they are not dropped) until a PUBACK frees a
 * slot. `offer` says whether to send a message now; a message waits in order otherwise. A slot is
 * taken from the moment a message is handed to the broker's writer (`scheduled`) until its PUBACK,
 * or until the writer says it sent nothing (a delivery the policy refused, an expired message).
 */
export class DeliveryWindow<P> {
  readonly #limit: number;
  readonly #send: (message: P) => void;
  readonly #waiting: P[] = [];
  #head = 0;
  #scheduled = 0;
  #inFlight = 0;

  constructor(limit: number, send: (message: P) => void) {
    this.#limit = limit;
    this.#send = send;
  }

  /** true: send it now (a slot is taken); false: it waits for a slot and is sent by a later call. */
  offer(message: P): boolean {
    if (this.#waiting.length === this.#head && this.#scheduled + this.#inFlight < this.#limit) {
      this.#scheduled++;
      return true;
    }
    this.#waiting.push(message);
    return false;
  }

  /** The writer is done with a scheduled message: written (`sent`), or dropped. */
  settled(sent: boolean): void {
    if (this.#scheduled > 0) this.#scheduled--;
    if (sent) this.#inFlight++;
    else this.#drain();
  }

  /** A QoS 1 message was written that did not come through `offer` (a session's queue on reconnect). */
  sentOutside(): void {
    this.#inFlight++;
  }

  /** A PUBACK arrived. */
  acknowledged(): void {
    if (this.#inFlight > 0) this.#inFlight--;
    this.#drain();
  }

  /** Messages waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length - this.#head;
  }

  #drain(): void {
    while (this.#head < this.#waiting.length && this.#scheduled + this.#inFlight < this.#limit) {
      const next = this.#waiting[this.#head] as P;
      this.#head++;
      this.#scheduled++;
      this.#send(next);
    }
    if (this.#head === this.#waiting.length) {
      this.#waiting.length = 0;
      this.#head = 0;
    }
  }
}

/**
 * The size quota a topic problem from `checkTopicName`/`checkTopicFilter` breaches (its length or its
 * slashes), so the breach is counted; undefined for any other problem (a wildcard, NUL, empty).
 */
export function topicSizeQuota(problem: string): QuotaName | undefined {
  if (problem.includes(' longer than ')) return 'topicBytes';
  if (problem.includes(' forward slashes')) return 'topicSlashes';
  return undefined;
}

const rateBucket = (perSecond: number | undefined): TokenBucket | undefined =>
  perSecond === undefined
    ? undefined
    : // A second's worth of burst, as the keyed limiter has (IoT Core does not document its burst).
      new TokenBucket({ ratePerSecond: perSecond, burst: Math.max(1, Math.ceil(perSecond)) });

const orInfinity = (n: number | undefined) => n ?? Number.POSITIVE_INFINITY;

export function createBrokerQuotas(deps: BrokerQuotasDeps): BrokerQuotas {
  const limits = deps.limits ?? resolveLimits('off');
  const { now } = deps;
  const throttles = deps.throttles;
  const hit = (quota: QuotaName, subject: string) => throttles?.hit(quota, subject);
  const value = (name: QuotaName) => limitOf(limits, name);

  const perConnectionPublishes = value('publishesPerSecondPerConnection');
  const perConnectionBytes = value('publishBytesPerSecondPerConnection');
  const accountPublishes = rateBucket(value('inboundPublishesPerSecondPerAccount'));
  const accountConnects = rateBucket(value('connectsPerSecondPerAccount'));
  const clientIdConnects = value('connectsPerSecondPerClientId');
  const clientIdLimiter =
    clientIdConnects === undefined
      ? undefined
      : new KeyedRateLimiter({ ratePerSecond: clientIdConnects, idleMs: 10_000 });
  const maxConnections = value('connectionsPerAccount');
  const maxRetained = value('retainedMessagesPerAccount');
  const maxPerConnection = value('subscriptionsPerConnection');
  const maxPerSubscribe = value('topicFiltersPerSubscribe');
  const accountSubscriptions = rateBucket(value('subscriptionsPerSecondPerAccount'));

  const publishesOn = perConnectionPublishes !== undefined || perConnectionBytes !== undefined;
  const noConnectionQuota: ConnectionQuota = Object.freeze({ publishes: undefined, bytes: undefined });

  return {
    limits,
    topicLimits: Object.freeze({
      maxTopicBytes: orInfinity(value('topicBytes')),
      maxTopicSlashes: orInfinity(value('topicSlashes')),
    }),
    messageBytes: orInfinity(value('messageBytes')),
    clientIdBytes: orInfinity(value('clientIdBytes')),

    admitConnect(clientId, connections, takeover) {
      const t = now();
      // The per-client-id rate first: a device reconnecting in a loop is refused by its own
      // quota and does not use up the account's.
      if (clientIdLimiter && !clientIdLimiter.tryTake(clientId, t)) {
        hit('connectsPerSecondPerClientId', clientId);
        return { quota: 'connectsPerSecondPerClientId', rate: true };
      }
      if (accountConnects && !accountConnects.tryTake(t)) {
        hit('connectsPerSecondPerAccount', clientId);
        return { quota: 'connectsPerSecondPerAccount', rate: true };
      }
      if (maxConnections !== undefined && !takeover && connections >= maxConnections) {
        hit('connectionsPerAccount', clientId);
        return { quota: 'connectionsPerAccount', rate: false };
      }
      return undefined;
    },

    connection() {
      if (!publishesOn) return noConnectionQuota;
      // A message larger than a second's bytes is never admitted: with AWS's values (512 KiB/s,
      // 128 KiB messages) that cannot happen.
      return { publishes: rateBucket(perConnectionPublishes), bytes: rateBucket(perConnectionBytes) };
    },

    admitPublish(connection, bytes, subject) {
      // Nothing enforced (`--limits off`, a bare broker): not even the clock is read.
      if (!connection?.publishes && !connection?.bytes && !accountPublishes) return undefined;
      const t = now();
      if (connection?.publishes && !connection.publishes.tryTake(t)) {
        hit('publishesPerSecondPerConnection', subject);
        return 'publishesPerSecondPerConnection';
      }
      if (connection?.bytes && bytes > 0 && !connection.bytes.tryTakeMany(t, bytes)) {
        hit('publishBytesPerSecondPerConnection', subject);
        return 'publishBytesPerSecondPerConnection';
      }
      if (accountPublishes && !accountPublishes.tryTake(t)) {
        hit('inboundPublishesPerSecondPerAccount', subject);
        return 'inboundPublishesPerSecondPerAccount';
      }
      return undefined;
    },

    admitRetained(stored, subject) {
      if (maxRetained === undefined || stored < maxRetained) return undefined;
      hit('retainedMessagesPerAccount', subject);
      return 'retainedMessagesPerAccount';
    },

    admitSubscribe(inPacket, filters, held, subject) {
      if (maxPerSubscribe !== undefined && inPacket > maxPerSubscribe) {
        hit('topicFiltersPerSubscribe', subject);
        return { refused: filters, quota: 'topicFiltersPerSubscribe' };
      }
      if (filters === 0) return undefined;
      let allowed = filters;
      let quota: QuotaName | undefined;
      if (maxPerConnection !== undefined && held + allowed > maxPerConnection) {
        allowed = Math.max(0, maxPerConnection - held);
        quota = 'subscriptionsPerConnection';
      }
      // The account's rate counts topic filters, not SUBSCRIBE packets (AWS's example: two
      // SUBSCRIBEs of 3 filters each are 6 subscriptions).
      if (accountSubscriptions && allowed > 0) {
        const t = now();
        let taken = 0;
        while (taken < allowed && accountSubscriptions.tryTake(t)) taken++;
        if (taken < allowed) {
          allowed = taken;
          quota = 'subscriptionsPerSecondPerAccount';
        }
      }
      if (quota === undefined) return undefined;
      const refused = filters - allowed;
      for (let i = 0; i < refused; i++) hit(quota, subject);
      return { refused, quota };
    },

    hit,
    inFlightPerClient: value('inFlightMessagesPerClient'),
  };
}
