import { EventEmitter } from 'node:events';
import { topicMatches } from '@pifleet/protocol';
import type { Logger } from '../logger.js';
import type { MessageHandler, QoS, Transport, TransportEventName, TransportEvents } from '../ports/transport.js';

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
