import { iot, mqtt, mqtt5 } from 'aws-iot-device-sdk-v2';
import { backoffDelay } from '../core/backoff.js';
import { TransportError } from '../errors.js';
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';
import { type Clock, createSystemClock, type TimerHandle } from '../ports/clock.js';
import type { LastWill, PublishOptions, QoS, Transport } from '../ports/transport.js';
import { createTransportKit } from './transport-kit.js';

/** The SDK client underneath, for service clients that need it (the shadow client). */
export type NativeMqttClient =
  | { readonly protocol: '5'; readonly client: mqtt5.Mqtt5Client }
  | { readonly protocol: '3.1.1'; readonly connection: mqtt.MqttClientConnection };

export interface AwsIotTransport extends Transport {
  /** The SDK client; created by `start()`, undefined before it and after `stop()`. */
  native(): NativeMqttClient | undefined;
}

export interface AwsIotTransportOptions {
  readonly protocol: '5' | '3.1.1';
  readonly endpoint: string;
  readonly port: number;
  readonly clientId: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile?: string | undefined;
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

const toCrtQos = (qos: QoS) => (qos === 1 ? mqtt.QoS.AtLeastOnce : mqtt.QoS.AtMostOnce);
const toBytes = (payload: unknown): Uint8Array => {
  if (payload instanceof Uint8Array) return payload;
  if (payload instanceof ArrayBuffer) return new Uint8Array(payload);
  if (ArrayBuffer.isView(payload)) return new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
  if (typeof payload === 'string') return Buffer.from(payload);
  return new Uint8Array();
};
const toPayload = (p: string | Uint8Array) =>
  typeof p === 'string' ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength);
const asError = (e: unknown): Error =>
  e instanceof Error ? e : new Error(String((e as { message?: unknown })?.message ?? e));

/**
 * Transport over the AWS IoT Device SDK v2 (aws-crt), mutual TLS, MQTT 5 or MQTT 3.1.1.
 *
 * Reconnection:
 * - MQTT 5: the SDK client reconnects by itself forever, from the first attempt on, with
 *   exponential backoff and full jitter (`RetryJitterType.Full`) between `reconnectMinMs` and
 *   `reconnectMaxMs`.
 * - MQTT 3.1.1: the SDK connection does not retry a failed *first* connect, so this adapter does,
 *   with full-jitter backoff on the injected clock. After the first success the SDK reconnects
 *   by itself (exponential, no jitter); its minimum delay is jittered per agent (×1–2) so a fleet
 *   cut off together does not come back in lock step.
 */
export function createAwsIotTransport(opts: AwsIotTransportOptions): AwsIotTransport {
  const clock = opts.clock ?? createSystemClock();
  const random = opts.random ?? Math.random;
  const log = (opts.logger ?? silentLogger()).child({ component: 'transport', protocol: opts.protocol });
  const minMs = opts.reconnectMinMs ?? 1_000;
  const maxMs = opts.reconnectMaxMs ?? 120_000;
  const keepAliveS = opts.keepAliveS ?? 60;
  const connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
  const operationTimeoutMs = opts.operationTimeoutMs ?? 30_000;
  const kit = createTransportKit(log);
  const { subscriptions, emit } = kit;

  let state: 'idle' | 'running' | 'stopping' | 'stopped' = 'idle';
  let connected = false;
  let everConnected = false;
  let failures = 0;
  let retryTimer: TimerHandle | undefined;
  let native: NativeMqttClient | undefined;
  let stopped: Promise<void> | undefined;

  const dispatch = (topic: string, payload: unknown) => kit.dispatch(topic, toBytes(payload));

  const onConnected = (sessionPresent: boolean) => {
    connected = true;
    failures = 0;
    const first = !everConnected;
    everConnected = true;
    log.info({ sessionPresent, first }, 'connected');
    if (!sessionPresent && !first) resubscribe();
    emit('connected', { sessionPresent, first });
  };

  const onLost = (error: Error) => {
    if (!connected) return;
    connected = false;
    log.warn({ err: error }, 'connection interrupted');
    emit('interrupted', { error });
  };

  const onFailed = (error: Error) => {
    failures += 1;
    log.warn({ err: error, attempt: failures }, 'connect failed');
    emit('connectFailed', { error, attempt: failures });
  };

  const resubscribe = () => {
    for (const [filter, sub] of subscriptions) {
      rawSubscribe(filter, sub.qos).catch((err: unknown) => log.warn({ err, filter }, 'resubscribe failed'));
    }
  };

  // ---- MQTT 3.1.1 -------------------------------------------------------------------------
  const start311 = () => {
    const builder = iot.AwsIotMqttConnectionConfigBuilder.new_mtls_builder_from_path(opts.certFile, opts.keyFile);
    if (opts.caFile) builder.with_certificate_authority_from_path(undefined, opts.caFile);
    builder
      .with_endpoint(opts.endpoint)
      .with_port(opts.port)
      .with_client_id(opts.clientId)
      .with_clean_session(true)
      .with_keep_alive_seconds(keepAliveS)
      .with_timeout_ms(connectTimeoutMs)
      .with_protocol_operation_timeout_ms(operationTimeoutMs)
      .with_reconnect_min_sec(Math.max(1, Math.round((minMs / 1000) * (1 + random()))))
      .with_reconnect_max_sec(Math.max(2, Math.round(maxMs / 1000)));
    if (opts.will) {
      builder.with_will(
        new mqtt.MqttWill(opts.will.topic, toCrtQos(opts.will.qos), opts.will.payload, opts.will.retain),
      );
    }
    const connection = new mqtt.MqttClient().new_connection(builder.build());
    connection.on('connection_success', (r) => {
      if (!connected) onConnected(Boolean(r.session_present));
    });
    connection.on('interrupt', (err) => onLost(asError(err)));
    connection.on('error', (err) => log.debug({ err }, 'connection error'));
    native = { protocol: '3.1.1', connection };

    const attempt = () => {
      retryTimer = undefined;
      if (state !== 'running') return;
      connection.connect().then(
        // After a failed first attempt the SDK resolves a later connect() without emitting
        // `connection_success`, so the resolution counts as the connection too.
        (sessionPresent) => {
          if (state === 'running' && !connected) onConnected(Boolean(sessionPresent));
        },
        (err: unknown) => {
          if (state !== 'running') return;
          onFailed(asError(err));
          const delay = backoffDelay(failures - 1, { minMs, maxMs, random });
          retryTimer = clock.setTimeout(attempt, delay);
        },
      );
    };
    attempt();
  };

  // ---- MQTT 5 -----------------------------------------------------------------------------
  const start5 = () => {
    const builder = iot.AwsIotMqtt5ClientConfigBuilder.newDirectMqttBuilderWithMtlsFromPath(
      opts.endpoint,
      opts.certFile,
      opts.keyFile,
    );
    if (opts.caFile) builder.withCertificateAuthorityFromPath(undefined, opts.caFile);
    builder
      .withPort(opts.port)
      .withConnectProperties({
        clientId: opts.clientId,
        keepAliveIntervalSeconds: keepAliveS,
        ...(opts.will
          ? {
              will: {
                topicName: opts.will.topic,
                qos: toCrtQos(opts.will.qos) as number as mqtt5.QoS,
                payload: opts.will.payload,
                retain: opts.will.retain,
              },
            }
          : {}),
      })
      .withSessionBehavior(mqtt5.ClientSessionBehavior.Clean)
      .withRetryJitterMode(mqtt5.RetryJitterType.Full)
      .withMinReconnectDelayMs(minMs)
      .withMaxReconnectDelayMs(maxMs)
      .withConnackTimeoutMs(connectTimeoutMs)
      .withAckTimeoutSeconds(Math.ceil(operationTimeoutMs / 1000))
      .withOfflineQueueBehavior(mqtt5.ClientOperationQueueBehavior.FailQos0PublishOnDisconnect);
    const client = new mqtt5.Mqtt5Client(builder.build());
    client.on('connectionSuccess', (e) => onConnected(Boolean(e.connack.sessionPresent)));
    client.on('connectionFailure', (e) => onFailed(asError(e.error)));
    client.on('disconnection', (e) => onLost(asError(e.error)));
    client.on('messageReceived', (e) => dispatch(e.message.topicName, e.message.payload));
    client.on('error', (err) => log.debug({ err }, 'client error'));
    native = { protocol: '5', client };
    client.start();
  };

  const rawSubscribe = async (filter: string, qos: QoS): Promise<void> => {
    const n = native;
    if (!n) throw new TransportError('NOT_STARTED', 'transport is not started');
    if (n.protocol === '3.1.1') {
      const r = await n.connection.subscribe(filter, toCrtQos(qos), (topic, payload) => dispatch(topic, payload));
      if ((r.qos as number) === 128)
        throw new TransportError('SUBSCRIBE_REFUSED', 'broker refused the subscription', { data: { filter } });
      return;
    }
    const suback = await n.client.subscribe({
      subscriptions: [{ topicFilter: filter, qos: qos as number as mqtt5.QoS }],
    });
    const code = suback.reasonCodes[0] ?? 0;
    if (code >= 128) {
      throw new TransportError('SUBSCRIBE_REFUSED', 'broker refused the subscription', { data: { filter, code } });
    }
  };

  const transport: AwsIotTransport = {
    protocol: opts.protocol,
    clientId: opts.clientId,
    get isConnected() {
      return connected;
    },
    native: () => native,
    start() {
      if (state !== 'idle') return;
      state = 'running';
      if (opts.protocol === '5') start5();
      else start311();
    },
    async publish(topic, payload, options: PublishOptions) {
      const n = native;
      if (!n || state !== 'running') throw new TransportError('NOT_STARTED', 'transport is not running');
      try {
        if (n.protocol === '3.1.1') {
          await n.connection.publish(topic, toPayload(payload), toCrtQos(options.qos), options.retain ?? false);
          return;
        }
        const result = await n.client.publish({
          topicName: topic,
          payload: toPayload(payload),
          qos: options.qos as number as mqtt5.QoS,
          retain: options.retain ?? false,
        });
        const code = (result as { reasonCode?: number } | undefined)?.reasonCode ?? 0;
        if (code >= 128) {
          throw new TransportError('PUBLISH_REFUSED', 'broker refused the publish', { data: { topic, code } });
        }
      } catch (err) {
        if (err instanceof TransportError) throw err;
        throw new TransportError('PUBLISH_FAILED', 'publish failed', { cause: err, data: { topic } });
      }
    },
    async subscribe(filter, qos, handler) {
      subscriptions.set(filter, { qos, handler });
      if (connected) await rawSubscribe(filter, qos);
    },
    async unsubscribe(filter) {
      subscriptions.delete(filter);
      const n = native;
      if (!n || !connected) return;
      if (n.protocol === '3.1.1') await n.connection.unsubscribe(filter);
      else await n.client.unsubscribe({ topicFilters: [filter] });
    },
    on: kit.on,
    stop() {
      if (stopped !== undefined) return stopped;
      const wasRunning = state === 'running';
      state = 'stopping';
      if (retryTimer !== undefined) clock.clearTimeout(retryTimer);
      retryTimer = undefined;
      const n = native;
      stopped = (async () => {
        if (wasRunning && n) await closeNative(n, log);
        native = undefined;
        connected = false;
        state = 'stopped';
        emit('stopped', {});
        kit.removeAllListeners();
      })();
      return stopped;
    },
  };
  return transport;
}

/** Disconnects cleanly (so the broker does not publish the will) and frees the native client. */
async function closeNative(n: NativeMqttClient, log: Logger): Promise<void> {
  const bounded = <T>(p: Promise<T>, ms: number) =>
    Promise.race([p, new Promise<void>((resolve) => setTimeout(resolve, ms).unref())]);
  if (n.protocol === '3.1.1') {
    // disconnect() also frees the native connection (the SDK closes it on its `closed` callback).
    try {
      await bounded(n.connection.disconnect(), 5_000);
    } catch (err) {
      log.debug({ err }, 'disconnect failed');
    }
    return;
  }
  const client = n.client;
  const stoppedEvent = new Promise<void>((resolve) => client.once('stopped', () => resolve()));
  try {
    client.stop({ reasonCode: mqtt5.DisconnectReasonCode.NormalDisconnection });
    await bounded(stoppedEvent, 5_000);
  } catch (err) {
    log.debug({ err }, 'stop failed');
  }
  client.close();
}
