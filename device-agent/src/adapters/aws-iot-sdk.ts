import { exponentialBackoff, isMqtt5Failure, MQTT5_REASON } from '@pifleet/protocol';
import { iot, mqtt, mqtt5 } from 'aws-iot-device-sdk-v2';
import { type FailureReport, repeatsLoggedFailure } from '../core/failure-log.js';
import { TransportError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { TimerHandle } from '../ports/clock.js';
import type { PublishOptions, QoS, Transport } from '../ports/transport.js';
import {
  type ConnectDiagnosis,
  type ConnectTarget,
  classifySdkFailure,
  crtErrorName,
  looksLikeMqttRefusal,
  mqttRefusedDiagnosis,
  probeTls,
} from './connect-diagnosis.js';
import {
  brokerDisconnect,
  brokerRefusal,
  CONNECT_SPACING_MS,
  createSubscriptionKeeper,
  createTransportKit,
  type MqttTransportOptions,
  mqttTransportSettings,
} from './transport-kit.js';

/** The SDK client underneath, for service clients that need it (the shadow client). */
export type NativeMqttClient =
  | { readonly protocol: '5'; readonly client: mqtt5.Mqtt5Client }
  | { readonly protocol: '3.1.1'; readonly connection: mqtt.MqttClientConnection };

export interface AwsIotTransport extends Transport {
  /** The SDK client; created by `start()`, undefined before it and after `stop()`. */
  native(): NativeMqttClient | undefined;
}

export interface AwsIotTransportOptions extends MqttTransportOptions {
  readonly protocol: '5' | '3.1.1';
  /**
   * While the same connect failure repeats, it is logged (warn) again at most this often; a
   * failure with another reason is logged at once. Default 10 minutes.
   */
  readonly failureLogIntervalMs?: number;
  /**
   * After a lost MQTT 3.1.1 connection the SDK reconnects without reporting failed attempts; the
   * transport checks why it is still down this long after the loss (then less and less often).
   * Default 5 s.
   */
  readonly diagnoseAfterMs?: number;
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
 *   exponential backoff between `reconnectMinMs` (at least 1 s, jittered ×1–2 per agent) and
 *   `reconnectMaxMs`: never two CONNECTs within a second (IoT Core's connect quota per client id).
 * - MQTT 3.1.1: the SDK connection does not retry a failed *first* connect, so this adapter does,
 *   with full-jitter backoff on the injected clock. After the first success the SDK reconnects
 *   by itself (exponential, no jitter); its minimum delay is jittered per agent (×1–2) so a fleet
 *   cut off together does not come back in lock step.
 *
 * Failures: each is diagnosed (`connect-diagnosis.ts`) and logged at warn with its reason, the
 * endpoint and the next retry time — once per reason, and again at most every
 * `failureLogIntervalMs` while it stays the same.
 */
export function createAwsIotTransport(opts: AwsIotTransportOptions): AwsIotTransport {
  const { clock, random, log, minMs, maxMs, keepAliveS, connectTimeoutMs, operationTimeoutMs } = mqttTransportSettings(
    opts,
    opts.protocol,
  );
  const kit = createTransportKit(log);
  const { subscriptions, emit } = kit;
  // The 3.1.1 SDK's reconnect delays (whole seconds, so at least the 1 s between CONNECTs IoT Core
  // allows per client id), jittered once per agent.
  const reconnectMinSec311 = Math.max(1, Math.round((minMs / 1000) * (1 + random())));
  // The MQTT 5 SDK's: no jitter of its own, because its full jitter draws from [0, min·2ⁿ] and can
  // send two CONNECTs of one client id within a second after a refused one (IoT Core then refuses
  // again, CONNACK 0x9F); instead its minimum is at least a second and jittered once per agent
  // (×1–2), so a fleet that lost its broker together still comes back spread out.
  const reconnectMinMs5 = Math.round(Math.max(CONNECT_SPACING_MS, minMs) * (1 + random()));
  const reconnectMaxSec311 = Math.max(2, Math.round(maxMs / 1000));
  const target: ConnectTarget = {
    endpoint: opts.endpoint,
    port: opts.port,
    clientId: opts.clientId,
    certFile: opts.certFile,
    keyFile: opts.keyFile,
    caFile: opts.caFile,
  };

  let state: 'idle' | 'running' | 'stopping' | 'stopped' = 'idle';
  let connected = false;
  let everConnected = false;
  let failures = 0;
  let retryTimer: TimerHandle | undefined;
  /** When the adapter's own retry of a failed first 3.1.1 connect is due. */
  let retryAt: number | undefined;
  /** The 3.1.1 connect() in flight (first-connect loop), so that stop() can wait for it. */
  let attemptInFlight: Promise<unknown> | undefined;
  let native: NativeMqttClient | undefined;
  let stopped: Promise<void> | undefined;
  /** MQTT 5: the Maximum Packet Size the broker advertised in its CONNACK (IoT Core: 149504). */
  let maxPacketToServer: number | undefined;

  const dispatch = (topic: string, payload: unknown) => kit.dispatch(topic, toBytes(payload));

  // ---- failure diagnosis and its log -----------------------------------------------------
  const failureLogIntervalMs = opts.failureLogIntervalMs ?? 600_000;
  const diagnoseAfterMs = opts.diagnoseAfterMs ?? 5_000;
  /** Since when the transport has been without a connection (start, or the last loss). */
  let downSince = clock.now();
  let lastLogged: (FailureReport & { reason: string }) | undefined;
  let suppressed = 0;
  let diagnosing = false;
  let watchTimer: TimerHandle | undefined;
  let watchDelayMs = diagnoseAfterMs;
  /** MQTT 5: the SDK's last reported failure, and whether it has started another attempt since. */
  let lastFailure5: { at: number; retryWithinMs: number } | undefined;
  let attempting5 = false;
  const probes = new AbortController();

  /**
   * When the 3.1.1 SDK's next reconnect attempt is due after a loss at `downSince`: it waits its
   * minimum delay, then doubles the delay after each failure up to its maximum (no jitter). It
   * reports none of these attempts, so this is the schedule it follows, not an observation.
   */
  const sdkRetrySchedule311 = (now: number) => {
    let at = downSince;
    let delaySec = reconnectMinSec311;
    let attempts = 0;
    for (;;) {
      at += delaySec * 1000;
      if (at > now) return { nextAt: at, attempts };
      attempts += 1;
      delaySec = Math.min(reconnectMaxSec311, delaySec * 2);
    }
  };

  /** When the next connection attempt starts, or that one is under way now. */
  const nextRetry = (): { readonly at: number } | { readonly attemptInProgress: true } => {
    if (opts.protocol === '3.1.1') {
      if (everConnected) return { at: sdkRetrySchedule311(clock.now()).nextAt };
      return retryAt !== undefined ? { at: retryAt } : { attemptInProgress: true };
    }
    // The MQTT 5 SDK waits a random time up to its current backoff bound (full jitter).
    if (lastFailure5 && !attempting5) return { at: lastFailure5.at + lastFailure5.retryWithinMs };
    return { attemptInProgress: true };
  };

  const reportFailure = (d: ConnectDiagnosis) => {
    const now = clock.now();
    const retry = nextRetry();
    // The same reason is the same failure, whichever way it was found (the SDK's error or a
    // handshake of our own words it differently).
    const report: FailureReport = { key: `${d.reason}\n${d.variant ?? ''}`, at: now, namesRetry: 'at' in retry };
    const fields = {
      endpoint: opts.endpoint,
      port: opts.port,
      clientId: opts.clientId,
      reason: d.reason,
      detail: d.detail,
      ...(d.cause ? { cause: d.cause } : {}),
      ...(d.certificateId ? { certificateId: d.certificateId } : {}),
      ...(d.reasonCode !== undefined ? { reasonCode: d.reasonCode, mqttReason: d.mqttReason } : {}),
      failures,
      downForMs: now - downSince,
      ...('at' in retry
        ? { nextRetryAt: new Date(retry.at).toISOString(), retryInMs: Math.max(0, retry.at - now) }
        : { attemptInProgress: true }),
    };
    if (repeatsLoggedFailure(lastLogged, report, failureLogIntervalMs)) {
      suppressed += 1;
      log.debug(fields, 'cannot connect (unchanged)');
      return;
    }
    log.warn({ ...fields, ...(suppressed > 0 ? { repeatedSinceLastLog: suppressed } : {}) }, 'cannot connect');
    lastLogged = { ...report, reason: d.reason };
    suppressed = 0;
  };

  /**
   * Finds out why connecting fails: from the SDK's error when that says enough, else with a TLS
   * handshake of our own. When TLS works, the failure is blamed on MQTT only with evidence
   * (`mqttEvidence`: a refused CONNACK, a hang-up after the handshake, reconnects failing for long);
   * without it, an attempt may simply still be under way.
   */
  const diagnose = (sdkError: unknown, connackCode: number | undefined, mqttEvidence: () => boolean) => {
    const known = sdkError === undefined ? undefined : classifySdkFailure(target, sdkError, connackCode);
    if (known) {
      reportFailure(known);
      return;
    }
    if (diagnosing) return;
    diagnosing = true;
    void probeTls(target, { timeoutMs: connectTimeoutMs, signal: probes.signal }).then((r) => {
      diagnosing = false;
      if (state !== 'running' || connected) return;
      if (!('tlsOk' in r)) {
        reportFailure(r);
        return;
      }
      const cause = sdkError === undefined ? undefined : asError(sdkError).message;
      if (mqttEvidence()) {
        reportFailure(mqttRefusedDiagnosis(target, r.certificateId, cause));
      } else if (sdkError !== undefined) {
        reportFailure({
          reason: 'unknown',
          detail: `connecting to ${opts.endpoint}:${opts.port} failed (${cause}), but a TLS handshake made just after succeeded: probably transient`,
          ...(cause ? { cause } : {}),
          certificateId: r.certificateId,
        });
      } else {
        log.debug({ downForMs: clock.now() - downSince }, 'still connecting; TLS to the endpoint works');
      }
    });
  };

  /**
   * While there is no connection, looks at why, after `diagnoseAfterMs` and then at doubling
   * intervals up to `reconnectMaxMs`: the 3.1.1 SDK reports nothing while it reconnects, and a
   * failed TLS handshake reaches us only 10–30 s late (s2n's delay), so the SDK's own reports come
   * too late or never.
   */
  const watch = () => {
    if (watchTimer !== undefined) clock.clearTimeout(watchTimer);
    watchTimer = clock.setTimeout(
      () => {
        watchTimer = undefined;
        if (state !== 'running' || connected) return;
        // Only the silent 3.1.1 reconnects need the schedule as evidence; elsewhere every
        // failed attempt is reported (and diagnosed) by the SDK itself.
        diagnose(undefined, undefined, () => everConnected && sdkRetrySchedule311(clock.now()).attempts >= 2);
        watchDelayMs = Math.min(Math.max(maxMs, diagnoseAfterMs), watchDelayMs * 2);
        watch();
      },
      // Jittered so that a fleet that lost its broker together does not probe it together.
      Math.round(watchDelayMs * (1 + random() / 2)),
    );
  };

  const onConnected = (sessionPresent: boolean) => {
    connected = true;
    failures = 0;
    lastFailure5 = undefined;
    attempting5 = false;
    if (watchTimer !== undefined) clock.clearTimeout(watchTimer);
    watchTimer = undefined;
    watchDelayMs = diagnoseAfterMs;
    const first = !everConnected;
    everConnected = true;
    const recovered = lastLogged ? { afterFailure: lastLogged.reason, downForMs: clock.now() - downSince } : {};
    lastLogged = undefined;
    suppressed = 0;
    log.info({ sessionPresent, first, ...recovered }, 'connected');
    // Before the first connect nothing was sent; after a reconnect, a clean session holds none of
    // them and a kept one lacks those refused (retried by the keeper).
    if (!sessionPresent) resubscribe(subscriptions.keys());
    else resubscribe(keeper.refused());
    emit('connected', { sessionPresent, first });
  };

  /** The reason code and its name of a broker's DISCONNECT or CONNACK, as log fields. */
  const reasonFields = (error: Error) =>
    error instanceof TransportError && typeof error.data.reasonCode === 'number'
      ? { reasonCode: error.data.reasonCode, reason: error.data.reason }
      : {};

  const onLost = (error: Error) => {
    if (!connected) return;
    connected = false;
    keeper.connectionLost();
    downSince = clock.now();
    log.warn(
      { err: error, endpoint: opts.endpoint, port: opts.port, ...reasonFields(error) },
      'connection interrupted',
    );
    emit('interrupted', { error });
    watch();
  };

  const onFailed = (error: Error, connackCode?: number) => {
    failures += 1;
    // A refused CONNACK (MQTT 5) is named in the event's error; the diagnosis reads the SDK's own.
    const reported =
      connackCode !== undefined && connackCode >= 0x80 ? brokerDisconnect('connack', connackCode, error) : error;
    log.debug({ err: reported, attempt: failures, ...reasonFields(reported) }, 'connect attempt failed');
    emit('connectFailed', { error: reported, attempt: failures });
    diagnose(error, connackCode, () => looksLikeMqttRefusal(error));
  };

  const resubscribe = (filters: Iterable<string>) => {
    for (const filter of [...filters]) keeper.send(filter).catch(() => undefined);
  };

  /** The SDK could not even build its TLS context: the files are wrong (check-config says how). */
  const credentialsError = (err: unknown) =>
    new TransportError(
      'CREDENTIALS_INVALID',
      `cannot set up TLS from certFile ${opts.certFile}, keyFile ${opts.keyFile}${opts.caFile ? `, caFile ${opts.caFile}` : ''} (${asError(err).message}): run pifleet-agent check-config`,
      { cause: err },
    );

  // ---- MQTT 3.1.1 -------------------------------------------------------------------------
  const start311 = () => {
    let connection: mqtt.MqttClientConnection;
    try {
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
        .with_reconnect_min_sec(reconnectMinSec311)
        .with_reconnect_max_sec(reconnectMaxSec311);
      if (opts.will) {
        builder.with_will(
          new mqtt.MqttWill(opts.will.topic, toCrtQos(opts.will.qos), opts.will.payload, opts.will.retain),
        );
      }
      connection = new mqtt.MqttClient().new_connection(builder.build());
    } catch (err) {
      throw credentialsError(err);
    }
    connection.on('connection_success', (r) => {
      if (!connected) onConnected(Boolean(r.session_present));
    });
    connection.on('interrupt', (err) => onLost(asError(err)));
    connection.on('error', (err) => log.debug({ err }, 'connection error'));
    native = { protocol: '3.1.1', connection };

    const attempt = () => {
      retryTimer = undefined;
      retryAt = undefined;
      if (state !== 'running') return;
      attemptInFlight = connection.connect().then(
        // After a failed first attempt the SDK resolves a later connect() without emitting
        // `connection_success`, so the resolution counts as the connection too.
        (sessionPresent) => {
          attemptInFlight = undefined;
          if (state === 'running' && !connected) onConnected(Boolean(sessionPresent));
        },
        (err: unknown) => {
          attemptInFlight = undefined;
          if (state !== 'running') return;
          // At least a second: IoT Core allows one CONNECT per second per client id.
          const floorMs = Math.max(minMs, CONNECT_SPACING_MS);
          const delay = exponentialBackoff(failures, { baseMs: minMs, capMs: maxMs, floorMs }, random);
          retryAt = clock.now() + delay;
          retryTimer = clock.setTimeout(attempt, delay);
          onFailed(asError(err));
        },
      );
    };
    attempt();
  };

  // ---- MQTT 5 -----------------------------------------------------------------------------
  const start5 = () => {
    let client: mqtt5.Mqtt5Client;
    try {
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
        .withRetryJitterMode(mqtt5.RetryJitterType.None)
        .withMinReconnectDelayMs(reconnectMinMs5)
        .withMaxReconnectDelayMs(Math.max(maxMs, reconnectMinMs5))
        .withConnackTimeoutMs(connectTimeoutMs)
        .withAckTimeoutSeconds(Math.ceil(operationTimeoutMs / 1000))
        .withOfflineQueueBehavior(mqtt5.ClientOperationQueueBehavior.FailQos0PublishOnDisconnect);
      client = new mqtt5.Mqtt5Client(builder.build());
    } catch (err) {
      throw credentialsError(err);
    }
    client.on('connectionSuccess', (e) => {
      maxPacketToServer = e.settings.maximumPacketSizeToServer;
      onConnected(Boolean(e.connack.sessionPresent));
    });
    client.on('attemptingConnect', () => {
      attempting5 = true;
    });
    client.on('connectionFailure', (e) => {
      // The SDK waits min(max, min·2ⁿ) before its next attempt (no jitter: see reconnectMinMs5).
      attempting5 = false;
      lastFailure5 = {
        at: clock.now(),
        retryWithinMs: exponentialBackoff(failures, {
          baseMs: reconnectMinMs5,
          capMs: Math.max(maxMs, reconnectMinMs5),
        }),
      };
      onFailed(asError(e.error), e.connack?.reasonCode);
    });
    client.on('disconnection', (e) => {
      // A DISCONNECT from the broker says why (SESSION_TAKEN_OVER, PACKET_TOO_LARGE,
      // SERVER_SHUTTING_DOWN, …); without one the SDK's error is all there is (a lost socket).
      const code = e.disconnect?.reasonCode;
      onLost(
        code !== undefined && code !== 0
          ? brokerDisconnect('disconnect', code, asError(e.error), e.disconnect?.reasonString)
          : asError(e.error),
      );
    });
    client.on('messageReceived', (e) => dispatch(e.message.topicName, e.message.payload));
    client.on('error', (err) => log.debug({ err }, 'client error'));
    native = { protocol: '5', client };
    client.start();
  };

  /**
   * A PUBLISH larger than the Maximum Packet Size the broker advertised never leaves the SDK: it
   * fails it at once with a general packet-validation error, which resending cannot fix. Said as
   * what the broker would answer (IoT Core: DISCONNECT 0x95 PACKET_TOO_LARGE), so that callers treat
   * it as a refusal of that message, not as a failed connection.
   */
  const oversize = (topic: string, payload: string | Uint8Array, err: unknown): TransportError | undefined => {
    const limit = maxPacketToServer;
    if (limit === undefined || crtErrorName(err) !== 'AWS_ERROR_MQTT5_PACKET_VALIDATION') return undefined;
    const payloadBytes = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.byteLength;
    // The smallest PUBLISH that carries them: 2 header bytes, topic length, packet id, properties length.
    const atLeast = 2 + 2 + Buffer.byteLength(topic) + 2 + 1 + payloadBytes;
    if (atLeast <= limit) return undefined;
    return brokerRefusal(
      'publish',
      topic,
      MQTT5_REASON.PACKET_TOO_LARGE,
      `a PUBLISH of at least ${atLeast} bytes exceeds the broker's Maximum Packet Size of ${limit} bytes (CONNACK); not sent`,
    );
  };

  const rawSubscribe = async (filter: string, qos: QoS): Promise<void> => {
    const n = native;
    if (!n) throw new TransportError('NOT_STARTED', 'transport is not started');
    if (n.protocol === '3.1.1') {
      const r = await n.connection.subscribe(filter, toCrtQos(qos), (topic, payload) => dispatch(topic, payload));
      // MQTT 3.1.1's SUBACK has a single failure code, 0x80, whatever the reason.
      if ((r.qos as number) === 0x80) throw brokerRefusal('subscribe', filter, 0x80);
      return;
    }
    const suback = await n.client.subscribe({
      subscriptions: [{ topicFilter: filter, qos: qos as number as mqtt5.QoS }],
    });
    const code = suback.reasonCodes[0] ?? 0;
    if (isMqtt5Failure(code)) throw brokerRefusal('subscribe', filter, code, suback.reasonString);
  };
  const keeper = createSubscriptionKeeper(
    kit,
    { clock, random, log },
    rawSubscribe,
    () => connected && state === 'running',
  );

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
      downSince = clock.now();
      try {
        if (opts.protocol === '5') start5();
        else start311();
      } catch (err) {
        state = 'stopped';
        throw err;
      }
      watch();
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
        // QoS 0 completes with no PUBACK (undefined); a QoS 1 PUBACK carries the broker's verdict.
        if (result && isMqtt5Failure(result.reasonCode)) {
          throw brokerRefusal('publish', topic, result.reasonCode, result.reasonString);
        }
      } catch (err) {
        if (err instanceof TransportError) throw err;
        const tooLarge = n.protocol === '5' ? oversize(topic, payload, err) : undefined;
        if (tooLarge) throw tooLarge;
        throw new TransportError('PUBLISH_FAILED', 'publish failed', { cause: err, data: { topic } });
      }
    },
    async subscribe(filter, qos, handler) {
      subscriptions.set(filter, { qos, handler });
      if (connected) await keeper.send(filter);
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
      if (watchTimer !== undefined) clock.clearTimeout(watchTimer);
      watchTimer = undefined;
      probes.abort();
      keeper.connectionLost();
      const n = native;
      stopped = (async () => {
        if (wasRunning && n) await closeNative(n, { log, attemptInFlight, isConnected: () => connected });
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

/**
 * Ends the SDK client in the order it needs, each step bounded, so that no native callback is left
 * to arrive after the agent has stopped:
 * - MQTT 3.1.1: a connect() still in flight is waited for first, up to 2 s (the SDK refuses to
 *   disconnect a connection that is still connecting, and would finish connecting afterwards), then
 *   disconnect(), which sends DISCONNECT (no last will) and, on the SDK's `closed` callback, frees
 *   the native connection. A connection that never connected has no public way to be freed:
 *   disconnect() refuses it; the process exit frees it (see `exitWhenFlushed` in main.ts).
 * - MQTT 5: stop() (DISCONNECT), wait for `stopped`, then close().
 * Either way, while connected, the DISCONNECT waits (bounded) until the broker has acknowledged every
 * operation sent before it (`untilAcknowledged`).
 * The shadow service must be closed before this (its request-response client runs on this client).
 */
async function closeNative(
  n: NativeMqttClient,
  ctx: { log: Logger; attemptInFlight: Promise<unknown> | undefined; isConnected: () => boolean },
): Promise<void> {
  const bounded = <T>(p: Promise<T>, ms: number) =>
    Promise.race([p, new Promise<void>((resolve) => setTimeout(resolve, ms).unref())]);
  if (n.protocol === '3.1.1') {
    const connection = n.connection;
    // Briefly: an attempt that has not finished by then is stuck (a failed TLS handshake is
    // reported 10-30 s late) and would not have connected.
    const inFlight = ctx.attemptInFlight ?? Promise.resolve();
    await bounded(
      inFlight.catch(() => undefined),
      2_000,
    );
    await untilAcknowledged(n, ctx.isConnected);
    const closed = new Promise<void>((resolve) => connection.once('closed', () => resolve()));
    try {
      await bounded(connection.disconnect(), 5_000);
      await bounded(closed, 5_000);
    } catch (err) {
      // AWS_ERROR_MQTT_NOT_CONNECTED: the connection never connected (or its first connect failed).
      ctx.log.debug({ err }, 'disconnect refused');
    }
    return;
  }
  const client = n.client;
  await untilAcknowledged(n, ctx.isConnected);
  const stoppedEvent = new Promise<void>((resolve) => client.once('stopped', () => resolve()));
  try {
    client.stop({ reasonCode: mqtt5.DisconnectReasonCode.NormalDisconnection });
    await bounded(stoppedEvent, 5_000);
  } catch (err) {
    ctx.log.debug({ err }, 'stop failed');
  }
  client.close();
}

/** How long a DISCONNECT waits at most for the broker's acknowledgements of what was sent before it. */
const ACKNOWLEDGED_BEFORE_DISCONNECT_MS = 2_000;

/**
 * Resolves once the SDK client has no operation left unacknowledged (a PUBLISH at QoS 1, a SUBSCRIBE,
 * an UNSUBSCRIBE), or after `ACKNOWLEDGED_BEFORE_DISCONNECT_MS`, or when the connection is lost.
 * The service clients on this connection send packets the agent cannot wait for: closing a
 * shadow or jobs stream sends its UNSUBSCRIBE a moment later, and aws-crt's request-response client
 * under IotShadowClientv2 and IotJobsClientv2 is released only when its JS wrapper is garbage
 * collected (`close()` just drops references), so a request whose SUBSCRIBE was still unanswered
 * publishes once its SUBACK comes, after `close()`. The SDK closes its socket right after sending
 * DISCONNECT: acknowledgements still on their way then reach a closed socket, which answers with a
 * reset, and a broker that has not read the DISCONNECT by then ends the connection as lost and
 * publishes the last will, which replaces the agent's own retained offline status (aedes reads a
 * client's next packets only once it has handled those before, and its failed write ends the
 * connection first).
 */
async function untilAcknowledged(n: NativeMqttClient, isConnected: () => boolean): Promise<void> {
  const pending = () =>
    (n.protocol === '5' ? n.client.getOperationalStatistics() : n.connection.getOperationalStatistics())
      .incompleteOperationCount;
  const deadline = Date.now() + ACKNOWLEDGED_BEFORE_DISCONNECT_MS;
  while (isConnected() && pending() > 0 && Date.now() < deadline) {
    await new Promise<void>((resolve) => setTimeout(resolve, 10));
  }
}
