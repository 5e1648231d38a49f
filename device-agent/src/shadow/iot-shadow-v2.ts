import { iotshadow } from 'aws-iot-device-sdk-v2';
import type { NativeMqttClient } from '../adapters/aws-iot-sdk.js';
import { modeledErrorOf, newServiceClient, serviceCaller, serviceStreams } from '../adapters/sdk-request-response.js';
import { ShadowError, ShadowRejectedError, ShadowTimeoutError } from '../errors.js';
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';
import { type Clock, createSystemClock } from '../ports/clock.js';
import type { ShadowDelta, ShadowService } from './port.js';

export interface IotShadowServiceOptions {
  readonly native: NativeMqttClient;
  readonly thingName: string;
  readonly requestTimeoutMs: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/** A rejection when the service answered with a code; a plain `ShadowError` when it never answered. */
function wrap(operation: string, err: unknown): ShadowError {
  if (err instanceof ShadowError) return err;
  // The shadow service's error response: a numeric code (404, 409, …), its message and clientToken.
  const modeled = modeledErrorOf<{ code: unknown; message: string; clientToken: string }>(err);
  const code = modeled?.code;
  if (typeof code !== 'number') {
    return new ShadowError('SHADOW_REQUEST_FAILED', `shadow ${operation} failed`, { cause: err, data: { operation } });
  }
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
  const client = newServiceClient(iotshadow.IotShadowClientv2, opts.native, opts.requestTimeoutMs);
  const streams = serviceStreams(log);
  let closed = false;
  const thingName = opts.thingName;

  const closedError = (operation: string) =>
    new ShadowError('SHADOW_CLOSED', `shadow ${operation} after close()`, { data: { operation } });
  const call = serviceCaller({
    clock,
    requestTimeoutMs: opts.requestTimeoutMs,
    isClosed: () => closed,
    errors: {
      closed: closedError,
      timedOut: (operation) => new ShadowTimeoutError(operation, opts.requestTimeoutMs),
      wrap,
    },
  });

  return {
    async get() {
      try {
        const r = await call('get', () => client.getShadow({ thingName }));
        return { version: r.version ?? 0, desired: r.state?.desired, reported: r.state?.reported };
      } catch (err) {
        if (err instanceof ShadowRejectedError && err.serviceCode === 404) return undefined;
        throw err;
      }
    },
    async updateReported(reported) {
      const r = await call('update', () => client.updateShadow({ thingName, state: { reported } }));
      return { version: r.version };
    },
    onDelta(listener: (delta: ShadowDelta) => void) {
      if (closed) throw closedError('delta stream');
      return streams.open(
        client.createShadowDeltaUpdatedStream({ thingName }),
        (message) => listener({ version: message.version ?? 0, state: message.state ?? {} }),
        { undecodable: 'undecodable shadow delta', status: 'delta subscription status' },
      );
    },
    onStreamRestored(listener) {
      return streams.onRestored(listener);
    },
    /**
     * Streams first, then the request-response client, and both before the MQTT client underneath
     * is stopped (the agent stops its transport after this): each holds the layer below it. A
     * closed stream still keeps its native thread-safe functions until its JS wrapper is collected,
     * which in aws-crt 1.33 happens only at process teardown (the functions reference the wrapper),
     * so the process must end with an explicit exit (`exitWhenFlushed` in main.ts). `client.close()`
     * likewise only drops the JS references: a get or update still subscribing publishes its request
     * after it, once its SUBACK comes (see the jobs client's close()).
     */
    close() {
      if (closed) return;
      closed = true;
      streams.closeAll();
      client.close();
    },
  };
}
