/**
 * Transport port: one MQTT connection to AWS IoT Core or the local IoT Core, whatever the
 * protocol version or library underneath. The agent only talks to the broker through this.
 *
 * Contract (the adapter behaviour suite in `test/transport` checks it):
 * - `start()` begins connecting and never throws for network reasons: it retries forever with
 *   exponential backoff and jitter, including when the very first attempt fails.
 * - `publish(..., { qos: 1 })` resolves when the broker's PUBACK arrives and rejects with a
 *   `TransportError` when the broker refuses it, the connection fails it, or `stop()` ends it.
 *   Callers keep their own copy until it resolves (the outbox does) and may retry.
 * - Subscriptions are kept across reconnects.
 * - `stop()` disconnects cleanly (no last will is published) and releases every native resource.
 */
export type QoS = 0 | 1;

export interface PublishOptions {
  readonly qos: QoS;
  readonly retain?: boolean;
}

/** A message to leave with the broker: published by it if the connection is lost uncleanly. */
export interface LastWill {
  readonly topic: string;
  readonly payload: string;
  readonly qos: QoS;
  readonly retain: boolean;
}

export type MessageHandler = (topic: string, payload: Uint8Array) => void;

export interface TransportEvents {
  /** A connection is up: the first one, and every one after an interruption. */
  connected: { readonly sessionPresent: boolean; readonly first: boolean };
  /** An established connection was lost; the transport is reconnecting. */
  interrupted: { readonly error: Error };
  /** A connection attempt failed; another follows after the backoff delay. */
  connectFailed: { readonly error: Error; readonly attempt: number };
  /** `stop()` finished. */
  stopped: Record<string, never>;
  /**
   * A subscription the broker had refused (throttled) is granted now, the transport having sent it
   * again: what was published on `filter` in between was missed.
   */
  subscribed: { readonly filter: string };
}

export type TransportEventName = keyof TransportEvents;

export interface Transport {
  /** `'5'` or `'3.1.1'`. */
  readonly protocol: string;
  readonly clientId: string;
  /** Whether a connection is up right now. */
  readonly isConnected: boolean;
  start(): void;
  publish(topic: string, payload: string | Uint8Array, options: PublishOptions): Promise<void>;
  subscribe(filter: string, qos: QoS, handler: MessageHandler): Promise<void>;
  unsubscribe(filter: string): Promise<void>;
  /** Subscribes to an event; returns the function that unsubscribes. */
  on<E extends TransportEventName>(event: E, listener: (data: TransportEvents[E]) => void): () => void;
  stop(): Promise<void>;
}
