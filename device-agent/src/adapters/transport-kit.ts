import { EventEmitter } from 'node:events';
import {
  type BackoffSchedule,
  exponentialBackoff,
  MQTT5_REASON,
  mqtt5ReasonName,
  topicMatches,
} from '@pifleet/protocol';
import { TransportError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import { type Clock, createSystemClock, type TimerHandle } from '../ports/clock.js';
import type {
  LastWill,
  MessageHandler,
  QoS,
  Transport,
  TransportEventName,
  TransportEvents,
} from '../ports/transport.js';
import type { ConnectTarget } from './connect-diagnosis.js';

/** What every MQTT `Transport` adapter is configured with, beside where it connects. */
export interface MqttTransportOptions extends ConnectTarget {
  readonly keepAliveS?: number;
  readonly reconnectMinMs?: number;
  readonly reconnectMaxMs?: number;
  /** TCP+TLS connect timeout. */
  readonly connectTimeoutMs?: number;
  /** Time a QoS 1 publish, subscribe or unsubscribe may wait for its acknowledgement. */
  readonly operationTimeoutMs?: number;
  readonly will?: LastWill;
  readonly clock?: Clock;
  /** In [0, 1); jitter source. */
  readonly random?: () => number;
  readonly logger?: Logger;
}

/**
 * IoT Core accepts one CONNECT per second per client id ("AWS IoT Core endpoints and quotas",
 * connect requests per second per client ID) and refuses the next with CONNACK 0x9F
 * CONNECTION_RATE_EXCEEDED: every adapter keeps its CONNECTs at least this far apart, whatever
 * `reconnectMinMs` says (a short minimum still makes the first reconnect after a long connection
 * quick).
 */
export const CONNECT_SPACING_MS = 1_000;

/** MQTT 5 reason codes of a refused CONNECT or a DISCONNECT that name a quota (connect rate, throttling). */
export const QUOTA_REASON_CODES: ReadonlySet<number> = new Set([0x9f, 0x97, 0x96]);

/** {@link MqttTransportOptions} with every default applied, and the adapter's logger. */
export interface MqttTransportSettings {
  readonly clock: Clock;
  readonly random: () => number;
  readonly log: Logger;
  readonly minMs: number;
  readonly maxMs: number;
  readonly keepAliveS: number;
  readonly connectTimeoutMs: number;
  readonly operationTimeoutMs: number;
}

/** The same defaults for every adapter: 1 s–120 s reconnect backoff, 60 s keep-alive, 10 s connect, 30 s per operation. */
export function mqttTransportSettings(opts: MqttTransportOptions, protocol: string): MqttTransportSettings {
  return {
    clock: opts.clock ?? createSystemClock(),
    random: opts.random ?? Math.random,
    log: (opts.logger ?? silentLogger()).child({ component: 'transport', protocol }),
    minMs: opts.reconnectMinMs ?? 1_000,
    maxMs: opts.reconnectMaxMs ?? 120_000,
    keepAliveS: opts.keepAliveS ?? 60,
    connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
    operationTimeoutMs: opts.operationTimeoutMs ?? 30_000,
  };
}

/**
 * What every `Transport` adapter keeps the same way, whatever its MQTT library: the listeners of
 * its events, and its subscriptions (kept across reconnects) with the dispatch of an incoming
 * message to every handler whose filter matches. A handler that throws is logged, never passed on
 * into the library's callback.
 */
export interface TransportKit {
  readonly subscriptions: Map<string, { readonly qos: QoS; readonly handler: MessageHandler }>;
  emit<E extends TransportEventName>(event: E, data: TransportEvents[E]): void;
  on: Transport['on'];
  dispatch(topic: string, payload: Uint8Array): void;
  removeAllListeners(): void;
}

export function createTransportKit(log: Logger): TransportKit {
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const subscriptions = new Map<string, { readonly qos: QoS; readonly handler: MessageHandler }>();
  return {
    subscriptions,
    emit(event, data) {
      events.emit(event, data);
    },
    on(event, listener) {
      events.on(event, listener as (d: unknown) => void);
      return () => {
        events.off(event, listener as (d: unknown) => void);
      };
    },
    dispatch(topic, payload) {
      for (const [filter, sub] of subscriptions) {
        if (!topicMatches(filter, topic)) continue;
        try {
          sub.handler(topic, payload);
        } catch (err) {
          log.error({ err, topic }, 'message handler threw');
        }
      }
    },
    removeAllListeners() {
      events.removeAllListeners();
    },
  };
}

/**
 * SUBACK reason codes that no retry changes: the policy does not allow the filter, the filter is
 * invalid, or the broker lacks the feature. Every other refusal is retried: QUOTA_EXCEEDED (0x97)
 * is what IoT Core answers a SUBSCRIBE over the account's subscriptions per second, and MQTT
 * 3.1.1's single failure code (0x80) cannot tell a throttled SUBSCRIBE from a forbidden one.
 */
const FINAL_SUBACK_CODES: ReadonlySet<number> = new Set([
  MQTT5_REASON.NOT_AUTHORIZED,
  MQTT5_REASON.TOPIC_FILTER_INVALID,
  MQTT5_REASON.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
  MQTT5_REASON.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
  MQTT5_REASON.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
]);

/** A failed SUBSCRIBE worth sending again on the same connection: not a final refusal, not a stopped transport. */
export function isRetryableSubscribeFailure(err: unknown): boolean {
  if (err instanceof TransportError) {
    if (err.code === 'NOT_STARTED' || err.code === 'STOPPED') return false;
    if (err.code === 'SUBSCRIBE_REFUSED') return !FINAL_SUBACK_CODES.has(err.data.reasonCode as number);
  }
  // No SUBACK in time, or the library failed the operation: the connection decides (see `send`).
  return true;
}

/** Retries of a refused SUBSCRIBE: 1 s doubling to 60 s, full jitter. */
export const SUBSCRIBE_RETRY: BackoffSchedule = { baseMs: 1_000, capMs: 60_000, floorMs: 100 };

export interface SubscriptionKeeper {
  /**
   * Sends the SUBSCRIBE of `filter` (one of `subscriptions`) and resolves on its grant or rejects
   * with the failure. A retryable failure on a live connection is sent again after a backoff,
   * until it is granted, unsubscribed, final or the connection ends. At most one SUBSCRIBE per
   * filter is in flight: a call while one is joins it, and a call while a retry waits sends now
   * in its place.
   */
  send(filter: string): Promise<void>;
  /** Filters refused and not granted since: what a reconnect that kept its session must send again. */
  refused(): string[];
  /** The connection ended (or the transport stops): no retry is sent on it any more. */
  connectionLost(): void;
}

/**
 * Keeps every subscription an adapter was asked for until the broker grants it. A SUBSCRIBE that
 * is throttled is otherwise lost until the next connect: when a rollout restarts a minute's wave
 * of agents at once, each resubscribing to a dozen topics against the account's 200 per second,
 * the ones refused would miss their shadow and job answers and fail their health check.
 */
export function createSubscriptionKeeper(
  kit: TransportKit,
  settings: Pick<MqttTransportSettings, 'clock' | 'random' | 'log'>,
  /** One SUBSCRIBE of `filter` at `qos`; rejects with {@link brokerRefusal} for a failure code. */
  subscribe: (filter: string, qos: QoS) => Promise<void>,
  isConnected: () => boolean,
): SubscriptionKeeper {
  const { subscriptions } = kit;
  const { clock, log } = settings;
  const deps = { subscribe, isConnected, random: settings.random };
  const inFlight = new Map<string, Promise<void>>();
  /** Refused filters: how many times in a row, and the timer of the next try. */
  const refusals = new Map<string, { count: number; timer: TimerHandle | undefined }>();

  const clearTimer = (filter: string) => {
    const r = refusals.get(filter);
    if (r?.timer !== undefined) clock.clearTimeout(r.timer);
    if (r) r.timer = undefined;
  };

  const attempt = async (filter: string, qos: QoS) => {
    try {
      await deps.subscribe(filter, qos);
    } catch (err) {
      const count = (refusals.get(filter)?.count ?? 0) + 1;
      if (!isRetryableSubscribeFailure(err) || !deps.isConnected() || !subscriptions.has(filter)) {
        // Final, or for the next connect to restore (every filter still subscribed is sent again).
        if (subscriptions.has(filter)) refusals.set(filter, { count, timer: undefined });
        throw err;
      }
      const delayMs = exponentialBackoff(count - 1, SUBSCRIBE_RETRY, deps.random);
      const timer = clock.setTimeout(() => {
        const r = refusals.get(filter);
        if (r) r.timer = undefined;
        if (!subscriptions.has(filter)) refusals.delete(filter);
        else if (deps.isConnected()) send(filter).catch(() => undefined);
      }, delayMs);
      refusals.set(filter, { count, timer });
      // Every refusal of a throttled wave is one line; the retries after it only at each doubling.
      if ((count & (count - 1)) === 0) {
        log.warn({ err, filter, refusals: count, retryInMs: delayMs }, 'subscribe failed; retrying');
      }
      throw err;
    }
    const was = refusals.get(filter);
    if (was) {
      clearTimer(filter);
      refusals.delete(filter);
      log.info({ filter, refusals: was.count }, 'subscribed after refusals');
      // Whoever follows the filter reads what it missed meanwhile.
      kit.emit('subscribed', { filter });
    }
  };

  function send(filter: string): Promise<void> {
    const running = inFlight.get(filter);
    if (running !== undefined) return running;
    const sub = subscriptions.get(filter);
    clearTimer(filter);
    if (!sub) {
      refusals.delete(filter);
      return Promise.resolve();
    }
    const p = attempt(filter, sub.qos).finally(() => inFlight.delete(filter));
    inFlight.set(filter, p);
    return p;
  }

  return {
    send,
    refused: () => [...refusals.keys()].filter((f) => subscriptions.has(f)),
    connectionLost() {
      for (const filter of refusals.keys()) clearTimer(filter);
    },
  };
}

/** An MQTT 5 reason code as the logs and errors print it: `NOT_AUTHORIZED (0x87)`. */
export function formatReason(reasonCode: number): string {
  return `${mqtt5ReasonName(reasonCode)} (0x${reasonCode.toString(16).padStart(2, '0')})`;
}

/**
 * The error of a PUBLISH or SUBSCRIBE the broker answered with a failure reason code (MQTT 5 PUBACK
 * or SUBACK ≥ 0x80): the same shape from every adapter, so that the agent can tell a refusal it must
 * not simply resend (NOT_AUTHORIZED, TOPIC_NAME_INVALID, …) from a connection that failed.
 */
export function brokerRefusal(
  operation: 'publish' | 'subscribe',
  subject: string,
  reasonCode: number,
  reasonString?: string,
): TransportError {
  const reason = mqtt5ReasonName(reasonCode);
  // The broker's reason string (only sent when the client asks for problem information) is data:
  // the message stays the same for the same refusal, so repeated ones read alike in the log.
  const extra = reasonString ? { reasonString } : {};
  return new TransportError(
    operation === 'publish' ? 'PUBLISH_REFUSED' : 'SUBSCRIBE_REFUSED',
    `broker refused the ${operation}: ${formatReason(reasonCode)}`,
    {
      data:
        operation === 'publish'
          ? { topic: subject, reasonCode, reason, ...extra }
          : { filter: subject, reasonCode, reason, ...extra },
    },
  );
}

/**
 * The error of a connection the broker ended with an MQTT 5 DISCONNECT (SESSION_TAKEN_OVER when
 * another client connected with the same client id, PACKET_TOO_LARGE, SERVER_SHUTTING_DOWN, …) or
 * refused with a failure CONNACK: the reason code and its name are data, and the message says it.
 */
export function brokerDisconnect(
  how: 'disconnect' | 'connack',
  reasonCode: number,
  cause: unknown,
  reasonString?: string,
): TransportError {
  return new TransportError(
    how === 'disconnect' ? 'DISCONNECTED_BY_BROKER' : 'CONNECT_REFUSED',
    how === 'disconnect'
      ? `broker closed the connection: DISCONNECT ${formatReason(reasonCode)}`
      : `broker refused the connection: CONNACK ${formatReason(reasonCode)}`,
    {
      cause,
      data: { reasonCode, reason: mqtt5ReasonName(reasonCode), ...(reasonString ? { reasonString } : {}) },
    },
  );
}
