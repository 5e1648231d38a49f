import { setTimeout as delay } from 'node:timers/promises';
import { exponentialBackoff, topicMatches } from '@pifleet/protocol';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from '../logger.js';
import type { ApiCredentials } from './command-api-client.js';

/**
 * An operator's MQTT connection to AWS IoT Core over WebSocket, signed with SigV4, as AWS
 * documents for browsers and operators (no device certificate: the caller's IAM policy decides
 * what it may subscribe to and receive). mqtt.js carries MQTT 5 over `wss://…/mqtt`; the URL is
 * presigned again for every connection attempt, with fresh credentials from the provider.
 */

/** The SigV4 service name of IoT Core's MQTT-over-WebSocket endpoint. */
export const IOT_WEBSOCKET_SERVICE = 'iotdevicegateway';

/** How long a presigned URL stays valid: it is only checked when the connection opens. */
const URL_EXPIRES_S = 300;

/**
 * The presigned `wss://` URL for one connection attempt. As AWS IoT requires, a session token is
 * appended after signing (`X-Amz-Security-Token` is not part of the signed query).
 */
export async function presignIotWebSocketUrl(options: {
  /** `wss://host[:port]/mqtt` */
  readonly url: string;
  readonly region: string;
  readonly credentials: ApiCredentials;
  readonly now?: Date;
}): Promise<string> {
  const url = new URL(options.url);
  const { accessKeyId, secretAccessKey, sessionToken } = options.credentials;
  const signer = new SignatureV4({
    service: IOT_WEBSOCKET_SERVICE,
    region: options.region,
    credentials: { accessKeyId, secretAccessKey },
    sha256: Hash.bind(null, 'sha256'),
  });
  const presigned = await signer.presign(
    {
      method: 'GET',
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port === '' ? {} : { port: Number(url.port) }),
      path: url.pathname,
      query: {},
      headers: { host: url.host },
    },
    { expiresIn: URL_EXPIRES_S, ...(options.now === undefined ? {} : { signingDate: options.now }) },
  );
  const out = new URL(`${url.protocol}//${url.host}${url.pathname}`);
  for (const [k, v] of Object.entries(presigned.query ?? {})) {
    if (typeof v === 'string') out.searchParams.set(k, v);
  }
  if (sessionToken !== undefined && sessionToken !== '') out.searchParams.set('X-Amz-Security-Token', sessionToken);
  return out.toString();
}

export interface IotWebSocketOptions {
  /** `wss://host[:port]/mqtt` (in AWS: the account's `iot:Data-ATS` endpoint). */
  readonly url: string;
  readonly region: string;
  /** Called before every connection attempt (the SDK's credential chain refreshes what expires). */
  readonly credentials: () => Promise<ApiCredentials>;
  /** Must be allowed by the caller's `iot:Connect` policy (the README's policy: `pifleet-console-*`). */
  readonly clientId: string;
  /** CA certificates (PEM) to trust instead of Node's (the local IoT Core's CA). */
  readonly ca?: string;
  readonly log: Logger;
  /** Gives up on a connection attempt after this long (default 10 s). */
  readonly connectTimeoutMs?: number;
}

/** A message as the connection delivered it. */
export interface IotWebSocketMessage {
  readonly topic: string;
  readonly payload: Buffer;
}

export interface IotWebSocketConnection {
  /** The first connection: rejects when it cannot be made (bad credentials, refused, unreachable). */
  start(): Promise<void>;
  /**
   * Follows a topic filter, also across reconnects (subscribed again on each). Rejects when the
   * broker refuses the subscription (the policy does not allow it).
   */
  subscribe(filter: string, handler: (message: IotWebSocketMessage) => void): Promise<() => Promise<void>>;
  /** Ends the connection and stops reconnecting. */
  close(): Promise<void>;
  readonly connected: boolean;
}

/** SUBACK reason codes of 0x80 and above refuse the subscription (MQTT 5 §3.9.3). */
function refused(granted: readonly { qos: number }[]): boolean {
  return granted.some((g) => g.qos >= 0x80);
}

export function createIotWebSocketConnection(options: IotWebSocketOptions): IotWebSocketConnection {
  const log = options.log.child({ component: 'iot-websocket' });
  const handlers = new Map<string, Set<(message: IotWebSocketMessage) => void>>();
  let client: MqttClient | undefined;
  let closed = false;
  /** Cuts a reconnect's wait short on close (a wait can be 30 s; Ctrl-C must not sit through it). */
  const closing = new AbortController();
  let reconnecting: Promise<void> | undefined;

  function dispatch(topic: string, payload: Buffer): void {
    for (const [filter, set] of handlers) {
      if (!topicMatches(filter, topic)) continue;
      for (const handler of set) handler({ topic, payload });
    }
  }

  async function connectOnce(): Promise<MqttClient> {
    const credentials = await options.credentials();
    const url = await presignIotWebSocketUrl({ url: options.url, region: options.region, credentials });
    // allowRetries false: a refused upgrade (HTTP 403, a bad signature) only closes the stream, no
    // 'error', and connectAsync would otherwise wait forever; a close before CONNACK now rejects.
    const c = await mqtt.connectAsync(
      options.url,
      {
        protocolVersion: 5,
        clientId: options.clientId,
        clean: true,
        reconnectPeriod: 0,
        connectTimeout: options.connectTimeoutMs ?? 10_000,
        keepalive: 60,
        // The presigned URL (its query carries the signature); mqtt.js would build it without the query.
        transformWsUrl: () => url,
        ...(options.ca === undefined ? {} : { ca: options.ca }),
        rejectUnauthorized: true,
      },
      false,
    );
    c.on('message', (topic, payload) => dispatch(topic, payload));
    c.on('error', (err) => log.warn({ err }, 'websocket connection error'));
    c.once('close', () => {
      if (client !== c || closed) return;
      client = undefined;
      log.warn('websocket connection lost; reconnecting');
      reconnecting ??= reconnect().finally(() => {
        reconnecting = undefined;
      });
    });
    return c;
  }

  async function resubscribe(c: MqttClient): Promise<void> {
    const filters = [...handlers.keys()];
    if (filters.length === 0) return;
    const granted = await c.subscribeAsync(filters, { qos: 0 });
    if (refused(granted)) log.warn({ filters }, 'a subscription was refused after reconnecting');
  }

  async function reconnect(): Promise<void> {
    for (let attempt = 0; !closed; attempt++) {
      await delay(exponentialBackoff(attempt, { baseMs: 500, capMs: 30_000 }), undefined, {
        signal: closing.signal,
      }).catch(() => undefined);
      if (closed) return;
      try {
        const c = await connectOnce();
        if (closed) {
          await c.endAsync(true);
          return;
        }
        client = c;
        await resubscribe(c);
        log.info({ attempt: attempt + 1 }, 'websocket connection restored');
        return;
      } catch (err) {
        log.warn({ err, attempt: attempt + 1 }, 'websocket reconnect failed');
      }
    }
  }

  return {
    get connected() {
      return client?.connected === true;
    },

    async start() {
      client = await connectOnce();
      log.info({ url: options.url, clientId: options.clientId }, 'websocket connected');
    },

    async subscribe(filter, handler) {
      let set = handlers.get(filter);
      const fresh = set === undefined;
      if (set === undefined) {
        set = new Set();
        handlers.set(filter, set);
      }
      set.add(handler);
      if (fresh && client !== undefined) {
        try {
          const granted = await client.subscribeAsync(filter, { qos: 0 });
          if (refused(granted)) throw new Error(`the broker refused the subscription to ${filter}`);
        } catch (err) {
          set.delete(handler);
          if (set.size === 0) handlers.delete(filter);
          throw err;
        }
      }
      return async () => {
        const current = handlers.get(filter);
        if (current === undefined || !current.delete(handler) || current.size > 0) return;
        handlers.delete(filter);
        if (client?.connected) await client.unsubscribeAsync(filter).catch(() => {});
      };
    },

    async close() {
      closed = true;
      closing.abort();
      const c = client;
      client = undefined;
      handlers.clear();
      if (c !== undefined) await c.endAsync(true).catch(() => {});
      await reconnecting;
    },
  };
}
