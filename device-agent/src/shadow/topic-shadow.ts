import { randomUUID } from 'node:crypto';
import { shadowTopics } from '@pifleet/protocol';
import { createTopicRequests, createTopicStream } from '../adapters/topic-request-response.js';
import { ShadowError, ShadowRejectedError, ShadowTimeoutError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import type { Clock } from '../ports/clock.js';
import type { Transport } from '../ports/transport.js';
import type { ShadowDelta, ShadowService, ShadowView } from './port.js';

export interface TopicShadowOptions {
  readonly transport: Transport;
  readonly thingName: string;
  readonly requestTimeoutMs: number;
  readonly clock: Clock;
  readonly logger?: Logger;
  readonly token?: () => string;
}

type Operation = 'get' | 'update';

/**
 * The classic Device Shadow over its reserved MQTT topics on any `Transport`, for transports
 * without the SDK's shadow client (the fleet's mqtt.js devices). Requests carry a `clientToken`
 * and are answered by the `/accepted` or `/rejected` response with the same token, as the SDK's
 * request-response client does; every request has a timeout on the injected clock
 * (`ShadowTimeoutError`), a `/rejected` answer is a `ShadowRejectedError` with IoT's code, and a
 * request fails at once (`ShadowError`) when the connection is lost. The response topics are subscribed once, on the first use,
 * and the transport restores them after a reconnect.
 */
export function createTopicShadowService(opts: TopicShadowOptions): ShadowService {
  const { transport } = opts;
  const log = (opts.logger ?? silentLogger()).child({ component: 'shadow-client' });
  const topics = shadowTopics(opts.thingName);
  const requests = createTopicRequests({
    transport,
    clock: opts.clock,
    requestTimeoutMs: opts.requestTimeoutMs,
    token: opts.token ?? (() => randomUUID()),
    service: 'shadow',
    errors: {
      failed: (message, options) => new ShadowError('SHADOW_REQUEST_FAILED', message, options),
      closed: (operation) =>
        new ShadowError('SHADOW_CLOSED', `shadow ${operation} after close()`, { data: { operation } }),
      timedOut: (operation) => new ShadowTimeoutError(operation, opts.requestTimeoutMs),
      rejected(operation, doc, clientToken) {
        if (typeof doc.code !== 'number') return undefined;
        const message = typeof doc.message === 'string' ? doc.message : undefined;
        return new ShadowRejectedError(operation, { code: doc.code, message, clientToken });
      },
    },
  });
  // Both answer pairs on the first request, as before: the agent's first get is followed by an update.
  const answers = [
    { accepted: topics.getAccepted, rejected: topics.getRejected, filter: `${topics.get}/+` },
    { accepted: topics.updateAccepted, rejected: topics.updateRejected },
  ];
  const request = (operation: Operation, body: Record<string, unknown>) =>
    requests.request(operation, topics[operation], answers, body);
  const deltas = createTopicStream<ShadowDelta>({
    transport,
    topic: topics.updateDelta,
    log,
    messages: { undecodable: 'undecodable shadow delta', subscribeFailed: 'delta subscription failed' },
    read: (doc) => ({ version: typeof doc.version === 'number' ? doc.version : 0, state: doc.state ?? {} }),
  });

  return {
    async get(): Promise<ShadowView | undefined> {
      try {
        const doc = await request('get', {});
        const state = (doc.state ?? {}) as { desired?: unknown; reported?: unknown };
        return {
          version: typeof doc.version === 'number' ? doc.version : 0,
          desired: state.desired,
          reported: state.reported,
        };
      } catch (err) {
        if (err instanceof ShadowRejectedError && err.serviceCode === 404) return undefined;
        throw err;
      }
    },
    async updateReported(reported) {
      const doc = await request('update', { state: { reported } });
      return { version: typeof doc.version === 'number' ? doc.version : undefined };
    },
    onDelta(listener) {
      return deltas.add(listener);
    },
    onStreamRestored(listener) {
      return deltas.onRestored(listener);
    },
    close() {
      requests.close();
      deltas.clear();
    },
  };
}
