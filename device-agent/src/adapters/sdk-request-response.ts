import type { iotjobs, mqtt, mqtt_request_response, mqtt5 } from 'aws-iot-device-sdk-v2';
import type { Logger } from '../logger.js';
import { type Clock, withTimeout } from '../ports/clock.js';
import type { NativeMqttClient } from './aws-iot-sdk.js';

/**
 * What the device SDK's v2 service clients (`iotshadow.IotShadowClientv2`, `iotjobs.IotJobsClientv2`)
 * have in common, wrapped once for the shadow and jobs adapters: the client built on the
 * transport's own MQTT connection, a timeout on the injected clock around every request, the
 * service's modeled error out of the SDK's `ServiceError`, and the streams closed before the
 * client that carries them.
 */

/** The request-response options both service clients take (an aws-crt type the SDK does not re-export). */
type RequestResponseOptions = Parameters<typeof iotjobs.IotJobsClientv2.newFromMqtt5>[1];

/** A v2 service client class: built from an MQTT 5 client or an MQTT 3.1.1 connection. */
export interface ServiceClientFactory<C> {
  newFromMqtt5(client: mqtt5.Mqtt5Client, options: RequestResponseOptions): C;
  newFromMqtt311(connection: mqtt.MqttClientConnection, options: RequestResponseOptions): C;
}

/**
 * The service client on the transport's connection. Its own operation timeout is the request
 * timeout rounded up to whole seconds (its unit); the adapters' timeout on the injected clock is
 * the one that decides, so that tests drive it with a virtual clock.
 */
export function newServiceClient<C>(
  factory: ServiceClientFactory<C>,
  native: NativeMqttClient,
  requestTimeoutMs: number,
): C {
  const options = {
    maxRequestResponseSubscriptions: 4,
    maxStreamingSubscriptions: 2,
    operationTimeoutInSeconds: Math.max(1, Math.ceil(requestTimeoutMs / 1000)),
  };
  return native.protocol === '5'
    ? factory.newFromMqtt5(native.client, options)
    : factory.newFromMqtt311(native.connection, options);
}

/** The service's own error body (`modeledError`) of an SDK `ServiceError`; undefined for any other failure. */
export function modeledErrorOf<M extends object>(err: unknown): Partial<M> | undefined {
  const modeled = (err as { modeledError?: unknown } | undefined)?.modeledError;
  return typeof modeled === 'object' && modeled !== null ? (modeled as Partial<M>) : undefined;
}

export interface ServiceCallErrors {
  /** A request after `close()`. */
  closed(operation: string): Error;
  /** No answer within the request timeout. */
  timedOut(operation: string): Error;
  /** Any other failure, as the service's error (a rejection when the SDK carries the service's code). */
  wrap(operation: string, err: unknown): Error;
}

/**
 * One request to a service client: refused after close, raced against the request timeout on the
 * injected clock, and its failure mapped by `errors.wrap` (which passes the service's own errors,
 * the timeout included, through unchanged).
 */
export function serviceCaller(deps: {
  readonly clock: Clock;
  readonly requestTimeoutMs: number;
  readonly isClosed: () => boolean;
  readonly errors: ServiceCallErrors;
}) {
  const { clock, requestTimeoutMs, errors } = deps;
  return async <T>(operation: string, request: () => Promise<T>): Promise<T> => {
    if (deps.isClosed()) throw errors.closed(operation);
    try {
      return await withTimeout(clock, requestTimeoutMs, request(), () => errors.timedOut(operation));
    } catch (err) {
      throw errors.wrap(operation, err);
    }
  };
}

/** The log lines of one stream (constant messages: the stream is named by the message itself). */
export interface StreamLogMessages {
  readonly undecodable: string;
  readonly status: string;
}

/** aws-crt's `SubscriptionStatusEventType` (a value the type-only import cannot name). */
const SUBSCRIPTION_ESTABLISHED = 0;
const SUBSCRIPTION_HALTED = 2;

/**
 * The streams a service client has open, closed together before the client itself: each holds
 * the request-response client beneath it.
 */
export function serviceStreams(log: Logger) {
  const open: mqtt_request_response.StreamingOperation<unknown>[] = [];
  const restored = new Set<() => void>();
  return {
    /**
     * Calls `listener` whenever one of the streams is subscribed: the first time too, since the SDK
     * does not say whether a first subscription was throttled and retried (notifications published
     * before it were then missed). Returns the function that removes it.
     */
    onRestored(listener: () => void): () => void {
      restored.add(listener);
      return () => {
        restored.delete(listener);
      };
    },
    /** Opens `stream`, passing each decoded message on; returns the function that closes it. */
    open<E>(
      stream: mqtt_request_response.StreamingOperation<E>,
      onMessage: (message: E) => void,
      messages: StreamLogMessages,
    ): () => void {
      stream.on('incomingPublish', (e) => onMessage(e.message));
      stream.on('incomingPublishError', (e) => log.warn({ err: e.error }, messages.undecodable));
      stream.on('subscriptionStatus', (e) => {
        const type = e.type as number;
        // Halted: the SDK gave up (a policy without the topic, an invalid filter).
        if (type === SUBSCRIPTION_HALTED) log.warn({ type, err: e.error }, messages.status);
        else log.debug({ type }, messages.status);
        if (type === SUBSCRIPTION_ESTABLISHED) for (const l of [...restored]) l();
      });
      stream.open();
      const held = stream as mqtt_request_response.StreamingOperation<unknown>;
      open.push(held);
      return () => {
        const i = open.indexOf(held);
        if (i >= 0) open.splice(i, 1);
        stream.close();
      };
    },
    closeAll(): void {
      restored.clear();
      for (const s of open.splice(0)) s.close();
    },
  };
}
