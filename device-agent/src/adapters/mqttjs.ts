import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { exponentialBackoff, isMqtt5Failure, type MqttProtocol, mqtt5ReasonName } from '@pifleet/protocol';
import type { IClientOptions, MqttClient } from 'mqtt';
import { TransportError } from '../errors.js';
import type { TimerHandle } from '../ports/clock.js';
import type { QoS, Transport } from '../ports/transport.js';
import {
  brokerDisconnect,
  brokerRefusal,
  CONNECT_SPACING_MS,
  createSubscriptionKeeper,
  createTransportKit,
  type MqttTransportOptions,
  mqttTransportSettings,
  QUOTA_REASON_CODES,
} from './transport-kit.js';

export interface MqttJsTransportOptions extends MqttTransportOptions {
  /** `'5'` (the default, as the agent's `mqtt.protocol`) or `'3.1.1'`. */
  readonly protocol?: MqttProtocol;
  /** Reads a PEM file (the fleet host caches the CA it shares between thousands of devices). */
  readonly readFile?: (file: string) => Buffer;
}

const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));

/** The reason code mqtt.js puts on a refused PUBACK's or CONNACK's error (`ErrorWithReasonCode`). */
const reasonCodeOf = (err: unknown): number | undefined => {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
};

/** The first failure code of the SUBACK mqtt.js attaches to a refused subscribe's error (`ErrorWithSubackPacket`). */
const subackFailureOf = (err: unknown): number | undefined => {
  const granted = (err as { packet?: { granted?: unknown } } | null)?.packet?.granted;
  if (!Array.isArray(granted)) return undefined;
  return granted.find((g): g is number => typeof g === 'number' && isMqtt5Failure(g));
};

/**
 * MQTT 3.1.1's CONNACK return codes (section 3.2.2.3) as the MQTT 5 reason codes that replaced
 * them, so that a refused connect carries the same `reasonCode` and `reason` on both protocols.
 */
const CONNACK_311: Readonly<Record<number, number>> = { 1: 0x84, 2: 0x85, 3: 0x88, 4: 0x86, 5: 0x87 };

/**
 * mqtt.js, loaded when a transport first connects: it is an optional peer dependency, installed
 * by what runs simulated fleets (the simulator) and left out of a Pi's install, where the agent
 * runs on the device SDK and never builds this transport. Loaded once per process, not per
 * (re)connect: a fleet host reconnects thousands of these at once after a core restart.
 */
let mqttModule: typeof import('mqtt') | undefined;

function loadMqtt(): typeof import('mqtt') {
  if (mqttModule) return mqttModule;
  try {
    mqttModule = createRequire(import.meta.url)('mqtt') as typeof import('mqtt');
    return mqttModule;
  } catch (err) {
    throw new TransportError(
      'MQTTJS_MISSING',
      'the mqtt.js transport needs the `mqtt` package: install it beside @pifleet/device-agent',
      { cause: err },
    );
  }
}

/**
 * The `Transport` port over mqtt.js (MQTT 5 or 3.1.1, mutual TLS through Node's TLS), for simulated
 * fleets (`createAgentRuntime` with `transport: 'mqtt'`). The agent on a device uses the AWS IoT Device SDK (`createAwsIotTransport`); this one
 * exists because aws-crt's per-connection cost is the limit of a fleet on one machine:
 * measured on this project's 2-vCPU machine, 3,000 connections each publishing one QoS 1
 * message every 10 s cost 279 µs of CPU per device per second with aws-crt and 35 µs with
 * mqtt.js (aws-crt keeps ~8 libuv async handles per connection, which libuv scans on every
 * wake-up from its threads, and runs its own event-loop threads). Same contract as the SDK
 * transport: a clean session (MQTT 5: clean start and a session expiry interval of 0, as the SDK
 * adapter's `ClientSessionBehavior.Clean` sends; 3.1.1: clean session), first connect retried,
 * exponential backoff with full jitter between `reconnectMinMs` and `reconnectMaxMs`,
 * subscriptions restored after a reconnect, a publish resolves on PUBACK and rejects on refusal
 * (MQTT 5 reason code ≥ 0x80, `PUBLISH_REFUSED`), timeout or `stop()`, and `stop()` disconnects
 * cleanly (the broker does not publish the will). What the broker says when it ends a connection
 * (an MQTT 5 DISCONNECT's reason code) or refuses one (the CONNACK's code) is in the error of the
 * `interrupted` / `connectFailed` event and in the log.
 */
export function createMqttJsTransport(opts: MqttJsTransportOptions): Transport {
  const protocol: MqttProtocol = opts.protocol ?? '5';
  const { clock, random, log, minMs, maxMs, keepAliveS, connectTimeoutMs, operationTimeoutMs } = mqttTransportSettings(
    opts,
    protocol,
  );
  const read = opts.readFile ?? ((f: string) => readFileSync(f));
  const kit = createTransportKit(log);
  const { subscriptions, emit } = kit;
  /** Operations waiting for an acknowledgement: rejected by `stop()`. */
  const pending = new Set<(err: Error) => void>();

  let state: 'idle' | 'running' | 'stopping' | 'stopped' = 'idle';
  let connected = false;
  let everConnected = false;
  let failures = 0;
  let retryTimer: TimerHandle | undefined;
  let client: MqttClient | undefined;
  let lastError: Error | undefined;
  let stopped: Promise<void> | undefined;
  /**
   * When the last CONNECT was answered (CONNACK) or its attempt failed: never before the CONNECT
   * packet itself left, so spacing the next attempt from it spaces the CONNECTs the broker counts.
   */
  let lastConnectAt = Number.NEGATIVE_INFINITY;

  /** Runs an acknowledged operation with the operation timeout; `stop()` rejects it. */
  const acknowledged = <T>(code: string, what: string, run: (c: MqttClient) => Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const c = client;
      if (!c || state !== 'running') {
        reject(new TransportError('NOT_STARTED', 'transport is not running'));
        return;
      }
      let done = false;
      const finish = (err: Error | undefined, value?: T) => {
        if (done) return;
        done = true;
        pending.delete(abort);
        clock.clearTimeout(timer);
        if (err) reject(err);
        else resolve(value as T);
      };
      const abort = (err: Error) => finish(err);
      const timer = clock.setTimeout(
        () => finish(new TransportError(code, `${what} timed out`, { data: { timeoutMs: operationTimeoutMs } })),
        operationTimeoutMs,
      );
      pending.add(abort);
      run(c).then(
        (v) => finish(undefined, v),
        (err: unknown) =>
          finish(err instanceof TransportError ? err : new TransportError(code, `${what} failed`, { cause: err })),
      );
    });

  const rawSubscribe = (filter: string, qos: QoS) =>
    acknowledged('SUBSCRIBE_FAILED', 'subscribe', async (c) => {
      let granted: Awaited<ReturnType<MqttClient['subscribeAsync']>>;
      try {
        granted = await c.subscribeAsync(filter, { qos });
      } catch (err) {
        // mqtt.js rejects a SUBACK with a failure code with the SUBACK on the error: MQTT 5's
        // reason (0x87 not authorized, 0x8f filter invalid, ...), 3.1.1's single 0x80.
        const code = subackFailureOf(err);
        if (code !== undefined) {
          throw brokerRefusal('subscribe', filter, code);
        }
        throw err;
      }
      const failed = granted.find((g) => isMqtt5Failure(g.qos));
      if (failed) throw brokerRefusal('subscribe', filter, failed.qos);
    });
  const keeper = createSubscriptionKeeper(
    kit,
    { clock, random, log },
    rawSubscribe,
    () => connected && state === 'running',
  );

  const scheduleRetry = (error: Error) => {
    if (state !== 'running' || retryTimer !== undefined) return;
    const backoff = exponentialBackoff(failures - 1, { baseMs: minMs, capMs: maxMs, floorMs: minMs }, random);
    // Never two CONNECTs of this client id within a second (IoT Core's connect rate quota), and a
    // full second after the broker said a quota was exceeded.
    const quota = QUOTA_REASON_CODES.has((error as { data?: { reasonCode?: unknown } }).data?.reasonCode as number);
    const delay = Math.max(backoff, lastConnectAt + CONNECT_SPACING_MS - clock.now(), quota ? CONNECT_SPACING_MS : 0);
    retryTimer = clock.setTimeout(() => {
      retryTimer = undefined;
      if (state === 'running') client?.reconnect();
    }, delay);
  };

  const connect = () => {
    // The package first: without it nothing else matters (a Pi's install leaves it out).
    const mqttjs = loadMqtt();
    const options: IClientOptions = {
      protocol: 'mqtts',
      host: opts.endpoint,
      port: opts.port,
      // Without a caFile, Node's own trust store (which holds the Amazon roots AWS IoT Core uses).
      ...(opts.caFile ? { ca: read(opts.caFile) } : {}),
      cert: read(opts.certFile),
      key: read(opts.keyFile),
      rejectUnauthorized: true,
      clientId: opts.clientId,
      protocolVersion: protocol === '5' ? 5 : 4,
      // MQTT 5: clean start, and no session expiry property (0: the session ends with the
      // connection), as the SDK adapter connects.
      clean: true,
      keepalive: keepAliveS,
      connectTimeout: connectTimeoutMs,
      // Reconnects are this adapter's (backoff with jitter), not mqtt.js's fixed period.
      reconnectPeriod: 0,
      // Subscriptions too: the adapter restores them before it announces the connection, so
      // mqtt.js's own resubscribe would only send every SUBSCRIBE twice after a reconnect.
      resubscribe: false,
      queueQoSZero: false,
      ...(opts.will
        ? {
            will: {
              topic: opts.will.topic,
              payload: Buffer.from(opts.will.payload),
              qos: opts.will.qos,
              retain: opts.will.retain,
            },
          }
        : {}),
    };
    const c = mqttjs.connect(options);
    c.on('connect', (connack) => {
      lastConnectAt = clock.now();
      connected = true;
      failures = 0;
      lastError = undefined;
      const first = !everConnected;
      everConnected = true;
      const sessionPresent = Boolean(connack.sessionPresent);
      log.info({ sessionPresent, first }, 'connected');
      // A clean session holds no subscriptions: send every one made so far (before the first
      // connect too; later ones go out as they are made), and announce the connection once the
      // broker has acknowledged them. A listener that reads state on `connected` (the agent's
      // shadow sync) then cannot miss an update published between its read and the broker
      // taking the subscription back (aedes handles one socket read's packets concurrently).
      // A refused one is retried in the background (the keeper): the connection is announced
      // after the first answers, not held until a throttled subscription is granted.
      const restored = (sessionPresent ? keeper.refused() : [...subscriptions.keys()]).map((filter) =>
        keeper.send(filter).catch(() => undefined),
      );
      void Promise.all(restored).then(() => {
        if (client === c && connected) emit('connected', { sessionPresent, first });
      });
    });
    c.on('message', (topic, payload) =>
      kit.dispatch(topic, new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength)),
    );
    c.on('error', (err) => {
      // A refused CONNECT: mqtt.js reports the CONNACK's code as "Connection refused: …".
      const code = reasonCodeOf(err);
      if (!connected && code !== undefined && err.message.startsWith('Connection refused')) {
        const reasonCode = protocol === '5' ? code : (CONNACK_311[code] ?? 0x80);
        const refusal =
          protocol === '5'
            ? brokerDisconnect('connack', code, err)
            : new TransportError(
                'CONNECT_REFUSED',
                `broker refused the connection: CONNACK return code ${code} (${mqtt5ReasonName(reasonCode)})`,
                { cause: err, data: { returnCode: code, reasonCode, reason: mqtt5ReasonName(reasonCode) } },
              );
        lastError = refusal;
        log.warn({ ...refusal.data, endpoint: opts.endpoint, port: opts.port }, 'connection refused');
        return;
      }
      // A later DISCONNECT's reason says more than the socket's error that follows it.
      if (!(lastError instanceof TransportError)) lastError = err;
      log.debug({ err }, 'connection error');
    });
    // MQTT 5: the broker says why it ends the connection (0x8e another connection took the
    // client id, 0x95 packet too large, 0x8b shutting down, ...) before it closes the socket.
    c.on('disconnect', (packet) => {
      const error = brokerDisconnect(
        'disconnect',
        packet.reasonCode ?? 0,
        new Error('DISCONNECT from the broker'),
        packet.properties?.reasonString,
      );
      lastError = error;
      log.warn(error.data, 'broker sent DISCONNECT');
    });
    c.on('close', () => {
      if (state !== 'running') return;
      const error = lastError ?? new Error('connection closed');
      lastError = undefined;
      if (connected) {
        connected = false;
        keeper.connectionLost();
        log.warn({ err: error }, 'connection interrupted');
        emit('interrupted', { error });
        failures = 1;
      } else {
        lastConnectAt = clock.now();
        failures += 1;
        log.warn({ err: error, attempt: failures }, 'connect failed');
        emit('connectFailed', { error, attempt: failures });
      }
      scheduleRetry(error);
    });
    return c;
  };

  return {
    protocol,
    clientId: opts.clientId,
    get isConnected() {
      return connected;
    },
    start() {
      if (state !== 'idle') return;
      state = 'running';
      try {
        client = connect();
      } catch (err) {
        // Unreadable certificate files: reported like a failed connect, retried with backoff.
        failures += 1;
        emit('connectFailed', { error: asError(err), attempt: failures });
      }
    },
    publish(topic, payload, options) {
      if (options.qos === 0) {
        const c = client;
        if (!c || state !== 'running') return Promise.reject(new TransportError('NOT_STARTED', 'not running'));
        c.publish(topic, Buffer.from(payload), { qos: 0, retain: options.retain ?? false });
        return Promise.resolve();
      }
      return acknowledged('PUBLISH_FAILED', 'publish', async (c) => {
        try {
          await c.publishAsync(topic, Buffer.from(payload), { qos: 1, retain: options.retain ?? false });
        } catch (err) {
          // MQTT 5: a PUBACK with a failure reason (0x87 not authorized, 0x90 topic name invalid,
          // 0x97 quota exceeded, ...) rejects as "Publish error: …" with the code on the error.
          // The connection stays up; the caller decides whether sending again can help.
          const code = reasonCodeOf(err);
          if (err instanceof Error && err.message.startsWith('Publish error') && code !== undefined) {
            throw brokerRefusal('publish', topic, code);
          }
          throw err;
        }
      });
    },
    async subscribe(filter, qos, handler) {
      subscriptions.set(filter, { qos, handler });
      if (connected) await keeper.send(filter);
    },
    async unsubscribe(filter) {
      subscriptions.delete(filter);
      if (!connected) return;
      await acknowledged('UNSUBSCRIBE_FAILED', 'unsubscribe', async (c) => {
        await c.unsubscribeAsync(filter);
      });
    },
    on: kit.on,
    stop() {
      if (stopped !== undefined) return stopped;
      state = 'stopping';
      if (retryTimer !== undefined) clock.clearTimeout(retryTimer);
      retryTimer = undefined;
      const c = client;
      stopped = (async () => {
        // What waits for an acknowledgement ends now; mqtt.js would otherwise hold the
        // DISCONNECT until its in-flight messages are acknowledged.
        keeper.connectionLost();
        for (const abort of [...pending]) abort(new TransportError('STOPPED', 'transport stopped'));
        if (c) {
          for (const id of Object.keys(c.outgoing)) c.removeOutgoingMessage(Number(id));
          // DISCONNECT first (no will), bounded: a dead socket must not hold the stop.
          await Promise.race([
            c.endAsync(false).catch((err: unknown) => log.debug({ err }, 'disconnect failed')),
            new Promise<void>((resolve) => setTimeout(resolve, 5_000).unref()),
          ]);
          if (!c.disconnected) c.end(true);
        }
        client = undefined;
        connected = false;
        state = 'stopped';
        emit('stopped', {});
        kit.removeAllListeners();
      })();
      return stopped;
    },
  };
}
