import { EventEmitter } from 'node:events';
import { topicMatches } from '@pifleet/protocol';
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
