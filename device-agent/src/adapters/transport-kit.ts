import { EventEmitter } from 'node:events';
import { mqtt5ReasonName, topicMatches } from '@pifleet/protocol';
import { TransportError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import { type Clock, createSystemClock } from '../ports/clock.js';
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
