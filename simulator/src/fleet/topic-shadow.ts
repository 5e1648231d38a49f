import { randomUUID } from 'node:crypto';
import {
  type Clock,
  type Logger,
  type ShadowDelta,
  ShadowError,
  type ShadowService,
  type ShadowView,
  type Transport,
} from '@pifleet/device-agent';
import { silentLogger } from '../logger.js';

export interface TopicShadowOptions {
  readonly transport: Transport;
  readonly thingName: string;
  readonly requestTimeoutMs: number;
  readonly clock: Clock;
  readonly logger?: Logger;
  readonly token?: () => string;
}

interface Waiter {
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
 * request-response client does; every request has a timeout on the injected clock and fails at
 * once when the connection is lost. The response topics are subscribed once, on the first use,
 * and the transport restores them after a reconnect.
 */
export function createTopicShadowService(opts: TopicShadowOptions): ShadowService {
  const { transport, clock } = opts;
  const log = (opts.logger ?? silentLogger()).child({ component: 'shadow-client' });
  const base = `$aws/things/${opts.thingName}/shadow`;
  const token = opts.token ?? (() => randomUUID());
  const waiting = new Map<string, Waiter>();
  const deltaListeners = new Set<(delta: ShadowDelta) => void>();
  let subscribed: Promise<void> | undefined;
  let closed = false;

  const failAll = (message: string) => {
    for (const [t, w] of waiting) {
      waiting.delete(t);
      w.reject(new ShadowError('SHADOW_REQUEST_FAILED', message));
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
    else {
      const code = typeof doc.code === 'number' ? doc.code : undefined;
      w.reject(
        new ShadowError('SHADOW_REJECTED', `shadow request rejected: ${String(doc.message ?? code)}`, {
          data: { code, clientToken: t },
        }),
      );
    }
  };

  const ensureSubscribed = () => {
    subscribed ??= (async () => {
      await Promise.all([
        transport.subscribe(`${base}/get/accepted`, 1, onResponse(true)),
        transport.subscribe(`${base}/get/rejected`, 1, onResponse(false)),
        transport.subscribe(`${base}/update/accepted`, 1, onResponse(true)),
        transport.subscribe(`${base}/update/rejected`, 1, onResponse(false)),
      ]);
    })().catch((err: unknown) => {
      subscribed = undefined;
      throw new ShadowError('SHADOW_REQUEST_FAILED', 'cannot subscribe to the shadow response topics', {
        cause: err,
      });
    });
    return subscribed;
  };

  const request = async (operation: 'get' | 'update', body: Record<string, unknown>) => {
    if (closed) throw new ShadowError('SHADOW_REQUEST_FAILED', `shadow ${operation} after close`);
    await ensureSubscribed();
    const clientToken = token();
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = clock.setTimeout(() => {
        waiting.delete(clientToken);
        reject(
          new ShadowError('SHADOW_TIMEOUT', `shadow ${operation} timed out`, {
            data: { operation, timeoutMs: opts.requestTimeoutMs },
          }),
        );
      }, opts.requestTimeoutMs);
      waiting.set(clientToken, {
        resolve: (doc) => {
          clock.clearTimeout(timer);
          resolve(doc);
        },
        reject: (err) => {
          clock.clearTimeout(timer);
          reject(err);
        },
      });
      transport
        .publish(`${base}/${operation}`, JSON.stringify({ ...body, clientToken }), { qos: 1 })
        .catch((err: unknown) => {
          const w = waiting.get(clientToken);
          waiting.delete(clientToken);
          w?.reject(new ShadowError('SHADOW_REQUEST_FAILED', `shadow ${operation} failed`, { cause: err }));
        });
    });
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
        if (err instanceof ShadowError && (err.data as { code?: number } | undefined)?.code === 404) return undefined;
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
          .subscribe(`${base}/update/delta`, 1, (_t, payload) => {
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
