import { randomUUID } from 'node:crypto';
import { shadowTopics } from '@pifleet/protocol';
import { ShadowError, ShadowRejectedError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import type { Clock } from '../ports/clock.js';
import type { Transport } from '../ports/transport.js';
import type { ShadowDelta, ShadowService, ShadowView } from './port.js';
import { shadowRequestTimeout } from './timeout.js';

export interface TopicShadowOptions {
  readonly transport: Transport;
  readonly thingName: string;
  readonly requestTimeoutMs: number;
  readonly clock: Clock;
  readonly logger?: Logger;
  readonly token?: () => string;
}

type Operation = 'get' | 'update';

interface Waiter {
  readonly operation: Operation;
  resolve(doc: Record<string, unknown>): void;
  reject(err: ShadowError): void;
}

const decode = (payload: Uint8Array): Record<string, unknown> | undefined => {
  try {
    const v: unknown = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString());
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
};

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
  const { transport, clock } = opts;
  const log = (opts.logger ?? silentLogger()).child({ component: 'shadow-client' });
  const topics = shadowTopics(opts.thingName);
  const token = opts.token ?? (() => randomUUID());
  const waiting = new Map<string, Waiter>();
  const deltaListeners = new Set<(delta: ShadowDelta) => void>();
  let subscribed: Promise<void> | undefined;
  let closed = false;

  const failAll = (message: string) => {
    for (const [t, w] of waiting) {
      waiting.delete(t);
      w.reject(new ShadowError('SHADOW_REQUEST_FAILED', message, { data: { operation: w.operation } }));
    }
  };
  // A clean session loses its response subscriptions with the connection, so an answer to a
  // request in flight may never come: fail it now (the agent syncs again on the next connect)
  // instead of holding the agent's shadow work for the whole request timeout.
  const offInterrupted = transport.on('interrupted', () => failAll('shadow request lost with the connection'));

  const onResponse = (accepted: boolean) => (_topic: string, payload: Uint8Array) => {
    const doc = decode(payload);
    const t = typeof doc?.clientToken === 'string' ? doc.clientToken : undefined;
    const w = t === undefined ? undefined : waiting.get(t);
    if (!w || !doc) return;
    if (t !== undefined) waiting.delete(t);
    if (accepted) w.resolve(doc);
    else if (typeof doc.code === 'number') {
      const message = typeof doc.message === 'string' ? doc.message : undefined;
      w.reject(new ShadowRejectedError(w.operation, { code: doc.code, message, clientToken: t }));
    } else {
      w.reject(
        new ShadowError('SHADOW_REQUEST_FAILED', `shadow ${w.operation} answered on /rejected without a code`, {
          data: { operation: w.operation, clientToken: t },
        }),
      );
    }
  };

  const ensureSubscribed = () => {
    subscribed ??= (async () => {
      await Promise.all([
        transport.subscribe(topics.getAccepted, 1, onResponse(true)),
        transport.subscribe(topics.getRejected, 1, onResponse(false)),
        transport.subscribe(topics.updateAccepted, 1, onResponse(true)),
        transport.subscribe(topics.updateRejected, 1, onResponse(false)),
      ]);
    })().catch((err: unknown) => {
      subscribed = undefined;
      throw new ShadowError('SHADOW_REQUEST_FAILED', 'cannot subscribe to the shadow response topics', {
        cause: err,
      });
    });
    return subscribed;
  };

  const request = async (operation: Operation, body: Record<string, unknown>) => {
    if (closed) throw new ShadowError('SHADOW_CLOSED', `shadow ${operation} after close()`, { data: { operation } });
    await ensureSubscribed();
    const clientToken = token();
    const answered = new Promise<Record<string, unknown>>((resolve, reject) => {
      waiting.set(clientToken, { operation, resolve, reject });
    });
    transport.publish(topics[operation], JSON.stringify({ ...body, clientToken }), { qos: 1 }).catch((err: unknown) => {
      const w = waiting.get(clientToken);
      waiting.delete(clientToken);
      w?.reject(
        new ShadowError('SHADOW_REQUEST_FAILED', `shadow ${operation} failed`, { cause: err, data: { operation } }),
      );
    });
    try {
      return await shadowRequestTimeout(clock, opts.requestTimeoutMs, operation, answered);
    } finally {
      waiting.delete(clientToken);
    }
  };

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
      deltaListeners.add(listener);
      if (deltaListeners.size === 1) {
        transport
          .subscribe(topics.updateDelta, 1, (_t, payload) => {
            const doc = decode(payload);
            if (!doc) {
              log.warn('undecodable shadow delta');
              return;
            }
            const delta = { version: typeof doc.version === 'number' ? doc.version : 0, state: doc.state ?? {} };
            for (const l of deltaListeners) l(delta);
          })
          .catch((err: unknown) => log.warn({ err }, 'delta subscription failed'));
      }
      return () => {
        deltaListeners.delete(listener);
      };
    },
    close() {
      if (closed) return;
      closed = true;
      offInterrupted();
      failAll('shadow client closed');
      deltaListeners.clear();
    },
  };
}
