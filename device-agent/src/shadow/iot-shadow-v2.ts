import { iotshadow, type mqtt_request_response } from 'aws-iot-device-sdk-v2';
import type { NativeMqttClient } from '../adapters/aws-iot-sdk.js';
import { ShadowError, ShadowRejectedError } from '../errors.js';
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';
import { type Clock, createSystemClock } from '../ports/clock.js';
import type { ShadowDelta, ShadowService } from './port.js';
import { shadowRequestTimeout } from './timeout.js';

export interface IotShadowServiceOptions {
  readonly native: NativeMqttClient;
  readonly thingName: string;
  readonly requestTimeoutMs: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/** The service's error code (404, 409, …) from an SDK ServiceError, when it has one. */
function serviceCode(err: unknown): number | undefined {
  const modeled = (err as { modeledError?: { code?: unknown } } | undefined)?.modeledError;
  return typeof modeled?.code === 'number' ? modeled.code : undefined;
}

/** A rejection when the service answered with a code; a plain `ShadowError` when it never answered. */
function wrap(operation: string, err: unknown): ShadowError {
  if (err instanceof ShadowError) return err;
  const code = serviceCode(err);
  if (code === undefined) {
    return new ShadowError('SHADOW_REQUEST_FAILED', `shadow ${operation} failed`, { cause: err, data: { operation } });
  }
  const modeled = (err as { modeledError?: { message?: string; clientToken?: string } }).modeledError;
  return new ShadowRejectedError(
    operation,
    { code, message: modeled?.message, clientToken: modeled?.clientToken },
    { cause: err },
  );
}

/**
 * Shadow service over the SDK's `iotshadow.IotShadowClientv2`, sharing the transport's MQTT
 * connection (MQTT 5 client or 3.1.1 connection). The SDK's request-response client correlates
 * responses by clientToken and re-subscribes its streams after reconnects; this adds a timeout
 * to every request on the injected clock and maps errors to `ShadowRejectedError` (the service said
 * no), `ShadowTimeoutError` (no answer in time) or their base `ShadowError`.
 */
export function createIotShadowService(opts: IotShadowServiceOptions): ShadowService {
  const clock = opts.clock ?? createSystemClock();
  const log = (opts.logger ?? silentLogger()).child({ component: 'shadow-client' });
  const rrOptions = {
    maxRequestResponseSubscriptions: 4,
    maxStreamingSubscriptions: 2,
    operationTimeoutInSeconds: Math.max(1, Math.ceil(opts.requestTimeoutMs / 1000)),
  };
  const client =
    opts.native.protocol === '5'
      ? iotshadow.IotShadowClientv2.newFromMqtt5(opts.native.client, rrOptions)
      : iotshadow.IotShadowClientv2.newFromMqtt311(opts.native.connection, rrOptions);
  const streams: mqtt_request_response.StreamingOperation<iotshadow.model.ShadowDeltaUpdatedEvent>[] = [];
  let closed = false;
  const thingName = opts.thingName;

  const open = (operation: string) => {
    if (closed) throw new ShadowError('SHADOW_CLOSED', `shadow ${operation} after close()`, { data: { operation } });
  };

  return {
    async get() {
      open('get');
      try {
        const r = await shadowRequestTimeout(clock, opts.requestTimeoutMs, 'get', client.getShadow({ thingName }));
        return { version: r.version ?? 0, desired: r.state?.desired, reported: r.state?.reported };
      } catch (err) {
        if (serviceCode(err) === 404) return undefined;
        throw wrap('get', err);
      }
    },
    async updateReported(reported) {
      open('update');
      try {
        const r = await shadowRequestTimeout(
          clock,
          opts.requestTimeoutMs,
          'update',
          client.updateShadow({ thingName, state: { reported } }),
        );
        return { version: r.version };
      } catch (err) {
        throw wrap('update', err);
      }
    },
    onDelta(listener: (delta: ShadowDelta) => void) {
      open('delta stream');
      const stream = client.createShadowDeltaUpdatedStream({ thingName });
      stream.on('incomingPublish', (e) => {
        listener({ version: e.message.version ?? 0, state: e.message.state ?? {} });
      });
      stream.on('incomingPublishError', (e) => log.warn({ err: e.error }, 'undecodable shadow delta'));
      stream.on('subscriptionStatus', (e) => log.debug({ type: e.type }, 'delta subscription status'));
      stream.open();
      streams.push(stream);
      return () => {
        const i = streams.indexOf(stream);
        if (i >= 0) streams.splice(i, 1);
        stream.close();
      };
    },
    /**
     * Streams first, then the request-response client, and both before the MQTT client underneath
     * is stopped (the agent stops its transport after this): each holds the layer below it. A
     * closed stream still keeps its native thread-safe functions until its JS wrapper is collected,
     * which in aws-crt 1.33 happens only at process teardown (the functions reference the wrapper),
     * so the process must end with an explicit exit (`exitWhenFlushed` in main.ts).
     */
    close() {
      if (closed) return;
      closed = true;
      for (const s of streams.splice(0)) s.close();
      client.close();
    },
  };
}
