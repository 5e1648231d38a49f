import { readFileSync } from 'node:fs';
import {
  isMqtt5Failure,
  type JsonObject,
  MQTT5_REASON,
  type MqttProtocol,
  mqtt5ReasonName,
  shadowTopics,
} from '@pifleet/protocol';
import { iot, iotshadow, mqtt, type mqtt_request_response, mqtt5 } from 'aws-iot-device-sdk-v2';
import { connectAsync } from 'mqtt';
import { afterAll, beforeAll } from 'vitest';
import type { Limits } from '../../src/limits/index.js';
import type { ShadowStore } from '../../src/shadow/store.js';
import {
  type InProcessCore,
  type InProcessCoreOptions,
  removeDir,
  startInProcessCore,
  tempDir,
} from '../../src/testing/in-process-core.js';
import type { ProvisionedThing } from '../../src/testing/provision.js';
import { thingMqttOptions } from '../../src/testing/thing-mqtt.js';
import { closeQuietly, crt5ConnectProperties, within } from '../broker/fixtures.js';

/**
 * Conformance harness: the composed local IoT Core on ephemeral ports in a temp data dir, driven
 * only by real clients — `@aws-sdk/client-iot` to provision, `@aws-sdk/client-iot-data-plane` for
 * the data plane (credentials from the generated shared-credentials file, as any AWS SDK reads
 * them; cloud's testing entry, src/testing), and aws-iot-device-sdk-v2 over mutual TLS: an aws-crt
 * `mqtt.MqttClientConnection` (MQTT 3.1.1) or `mqtt5.Mqtt5Client` (MQTT 5), with
 * `iotshadow.IotShadowClientv2` on either. The suites run each case over both protocols
 * (`describe.each(MQTT_PROTOCOLS)`) and assert each protocol's answer where they differ.
 */

export { sdkClients } from '../../src/testing/in-process-core.js';
export { provisionThing } from '../../src/testing/provision.js';
export { within } from '../broker/fixtures.js';

export interface Core extends InProcessCore {
  readonly dataDir: string;
  readonly caPem: string;
}

/** What a device connects with: its thing name, certificate and key. */
export type Device = Pick<ProvisionedThing, 'thingName' | 'certPem' | 'keyPem'>;

/**
 * The core of one suite, in a temp data dir of its own (`pifleet-<name>-*`) that `stop()` removes.
 * `shadowStore` opens the shadow store in that data dir.
 */
export async function startCore(
  name: string,
  options: {
    readonly shadowStore?: (dataDir: string) => ShadowStore;
    readonly limits?: Limits;
    readonly provisioningHooks?: InProcessCoreOptions['provisioningHooks'];
  } = {},
): Promise<Core> {
  const dataDir = tempDir(name);
  const { shadowStore, limits, provisioningHooks } = options;
  try {
    const run = await startInProcessCore(dataDir, {
      ...(shadowStore ? { shadowStore: () => shadowStore(dataDir) } : {}),
      ...(limits ? { limits } : {}),
      ...(provisioningHooks ? { provisioningHooks } : {}),
    });
    return {
      ...run,
      dataDir,
      caPem: readFileSync(run.info.caFile, 'utf8'),
      async stop() {
        await run.stop();
        removeDir(dataDir);
      },
    };
  } catch (err) {
    removeDir(dataDir);
    throw err;
  }
}

/**
 * The core a test file's suites share: started before them (`onStarted` receives it), stopped after
 * them once the clients the tests pushed onto `opened` are closed. In parallel: closing a 3.1.1
 * connection the broker dropped waits for its next reconnect (1 s). `arn` names a resource of the
 * core's account.
 */
export function coreForFile(
  name: string,
  onStarted: (core: Core) => void,
  options: Parameters<typeof startCore>[1] = {},
): { readonly opened: Array<{ close(): Promise<void> }>; arn(kind: string, rest: string): string } {
  let core: Core | undefined;
  const opened: Array<{ close(): Promise<void> }> = [];
  beforeAll(async () => {
    core = await startCore(name, options);
    onStarted(core);
  });
  afterAll(async () => {
    await Promise.all(opened.map((client) => client.close()));
    await core?.stop();
  });
  return {
    opened,
    arn(kind, rest) {
      if (!core) throw new Error(`the ${name} core has not started`);
      return `arn:aws:iot:${core.info.region}:${core.info.accountId}:${kind}/${rest}`;
    },
  };
}

/** How the broker ended a connection. */
export interface Drop {
  /** The DISCONNECT's reason code (MQTT 5 only; undefined when the broker closed without one). */
  readonly reasonCode: number | undefined;
}

/** A received PUBLISH: topic, payload (parsed when JSON) and, over MQTT 5, the whole packet with its properties. */
export interface Received {
  readonly topic: string;
  readonly payload: JsonObject | string;
  readonly packet?: mqtt5.PublishPacket;
}

/**
 * One device SDK connection of either protocol, behind the operations the suites need. The two
 * protocols answer refusals differently: over MQTT 3.1.1 a PUBACK has no reason code and a refused
 * PUBLISH closes the connection; over MQTT 5 the PUBACK carries the reason.
 */
export interface DeviceClient {
  readonly protocol: MqttProtocol;
  readonly clientId: string;
  /** Whether the CONNACK said the broker kept a session for this client id. */
  readonly sessionPresent: boolean;
  /** The SDK object, for what only one protocol has. */
  readonly native:
    | { readonly protocol: '3.1.1'; readonly connection: mqtt.MqttClientConnection }
    | { readonly protocol: '5'; readonly client: mqtt5.Mqtt5Client; readonly connack: mqtt5.ConnackPacket };
  /**
   * PUBLISH; waits for the PUBACK (QoS 1) or for the packet to be written (QoS 0). Resolves with
   * the PUBACK's reason code over MQTT 5 (0 for success), undefined over 3.1.1 and for QoS 0.
   * `properties` are MQTT 5 PUBLISH fields; of them, only `retain` exists in 3.1.1.
   */
  publish(
    topic: string,
    payload: string | Uint8Array,
    qos?: 0 | 1,
    properties?: Omit<mqtt5.PublishPacket, 'topicName' | 'payload' | 'qos'>,
  ): Promise<number | undefined>;
  /** SUBSCRIBE (QoS 1) to one filter; resolves with the SUBACK's code: 0/1 granted, 0x80 and up refused. */
  subscribe(filter: string, onMessage: (message: Received) => void): Promise<number>;
  unsubscribe(filter: string): Promise<void>;
  /** The connection's drops by the broker so far, and a bounded wait for the first one. */
  readonly drops: readonly Drop[];
  dropped(ms?: number): Promise<Drop>;
  /** The shadow client the device agent uses, over this connection (closed with it). */
  shadowClient(): iotshadow.IotShadowClientv2;
  /** Disconnects and frees the native client, once however often it is called; never throws. */
  close(): Promise<void>;
}

/** A CONNECT the core refused: the MQTT 5 CONNACK's reason code when a CONNACK came, and the SDK's error name. */
export class ConnectRefused extends Error {
  readonly protocol: MqttProtocol;
  readonly reasonCode: number | undefined;
  readonly sdkError: string;
  constructor(protocol: MqttProtocol, reasonCode: number | undefined, sdkError: string) {
    super(
      `connect refused over MQTT ${protocol}: ${reasonCode === undefined ? sdkError : mqtt5ReasonName(reasonCode)}`,
    );
    this.name = 'ConnectRefused';
    this.protocol = protocol;
    this.reasonCode = reasonCode;
    this.sdkError = sdkError;
  }
}

export interface ConnectOptions {
  readonly clientId?: string;
  /** Clean session (3.1.1) / clean start (5); default true. */
  readonly clean?: boolean;
  /** MQTT 5 session expiry interval in seconds; 3.1.1 has none (the core's default expiry applies). */
  readonly sessionExpirySeconds?: number;
  /** Keep-alive in seconds; default 30. */
  readonly keepAliveSeconds?: number;
  /** A QoS 1 last will. */
  readonly will?: { readonly topic: string; readonly payload: string };
  /**
   * Every PUBLISH the client receives, from the moment it connects: a resumed session's queued
   * messages arrive right after the CONNACK, before any SUBSCRIBE of this connection.
   */
  readonly onMessage?: (message: Received) => void;
  /**
   * MQTT 5: the SDK replaces topics by aliases, least recently used first, up to what the CONNACK's
   * Topic Alias Maximum allows.
   */
  readonly topicAliases?: boolean;
}

const dec = new TextDecoder();

function parsePayload(payload: unknown): JsonObject | string {
  let text = '';
  if (typeof payload === 'string') text = payload;
  else if (payload instanceof Uint8Array) text = dec.decode(payload);
  else if (payload instanceof ArrayBuffer) text = dec.decode(new Uint8Array(payload));
  else if (ArrayBuffer.isView(payload))
    text = dec.decode(new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength));
  try {
    return JSON.parse(text) as JsonObject;
  } catch {
    return text;
  }
}

/** Records events and resolves bounded waits for the first one matching. */
function eventLog<T>(what: string) {
  const events: T[] = [];
  const waiters: Array<{ match: (e: T) => boolean; resolve: (e: T) => void }> = [];
  return {
    events,
    push(event: T) {
      events.push(event);
      for (const w of [...waiters]) {
        if (w.match(event)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(event);
        }
      }
    },
    waitFor(match: (e: T) => boolean, ms = 10_000): Promise<T> {
      const seen = events.find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      return within(new Promise<T>((resolve) => waiters.push({ match, resolve })), ms, what);
    },
  };
}

const SHADOW_OPTIONS = {
  maxRequestResponseSubscriptions: 8,
  maxStreamingSubscriptions: 8,
  operationTimeoutInSeconds: 10,
};

/**
 * A connected device SDK client over mutual TLS, as the device's thing name unless a client id is
 * given: an aws-crt `mqtt.MqttClientConnection` for MQTT 3.1.1, an aws-crt `mqtt5.Mqtt5Client`
 * for MQTT 5. Rejects with `ConnectRefused` when the core refuses the connection.
 */
export async function connectDevice(
  core: Pick<Core, 'info' | 'caPem'>,
  device: Device,
  protocol: MqttProtocol = '3.1.1',
  options: ConnectOptions = {},
): Promise<DeviceClient> {
  const clientId = options.clientId ?? device.thingName;
  await paceConnect(clientId);
  try {
    return await (protocol === '5' ? connect5(core, device, options) : connect311(core, device, options));
  } finally {
    connectAnswered(clientId);
  }
}

/** When each client id last connected, for {@link paceConnect}. */
const lastConnectAt = new Map<string, number>();

/**
 * IoT Core accepts one CONNECT per second per client id, and the local core enforces it
 * (connectsPerSecondPerClientId; quotas.test.ts tests the refusal). Cases that reconnect one client
 * id (sessions, takeovers, restarts) wait out the rest of that second first, as a device's
 * reconnect backoff does, rather than run without the quota. The second is counted from when the
 * last connect was answered ({@link connectAnswered}), not from when it began: the broker counts
 * CONNECTs as they arrive, after a TLS handshake that takes longer on a loaded machine, so a
 * second connect paced from the first one's start was refused (CONNECTION_RATE_EXCEEDED) when the
 * first handshake was slow and the second quick.
 */
async function paceConnect(clientId: string): Promise<void> {
  const last = lastConnectAt.get(clientId);
  const wait = last === undefined ? 0 : last + 1_050 - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  lastConnectAt.set(clientId, Date.now());
}

/** The connect of `clientId` was answered (or failed): the next waits a second from now. */
function connectAnswered(clientId: string): void {
  lastConnectAt.set(clientId, Date.now());
}

async function connect311(
  core: Pick<Core, 'info' | 'caPem'>,
  device: Device,
  options: ConnectOptions,
): Promise<DeviceClient> {
  const clientId = options.clientId ?? device.thingName;
  let builder = iot.AwsIotMqttConnectionConfigBuilder.new_mtls_builder(device.certPem, device.keyPem)
    .with_certificate_authority(core.caPem)
    .with_endpoint(core.info.mqtt.host)
    .with_port(core.info.mqtt.port)
    .with_client_id(clientId)
    .with_clean_session(options.clean ?? true)
    .with_keep_alive_seconds(options.keepAliveSeconds ?? 30)
    .with_ping_timeout_ms(3_000)
    .with_protocol_operation_timeout_ms(10_000);
  if (options.will) {
    builder = builder.with_will(
      new mqtt.MqttWill(options.will.topic, mqtt.QoS.AtLeastOnce, options.will.payload, false),
    );
  }
  const connection = new mqtt.MqttClient().new_connection(builder.build());
  const drops = eventLog<Drop>(`${clientId} dropped`);
  connection.on('interrupt', () => drops.push({ reasonCode: undefined }));
  const { onMessage } = options;
  if (onMessage) connection.on('message', (topic, payload) => onMessage({ topic, payload: parsePayload(payload) }));
  let sessionPresent: boolean;
  try {
    sessionPresent = await within(connection.connect(), 10_000, `connect ${clientId}`);
  } catch (err) {
    await closeQuietly(connection);
    if (err instanceof Error && err.message.startsWith('timed out')) throw err;
    throw new ConnectRefused('3.1.1', undefined, String((err as { error_name?: string }).error_name ?? err));
  }
  let shadows: iotshadow.IotShadowClientv2 | undefined;
  let closed: Promise<void> | undefined;
  return {
    protocol: '3.1.1',
    clientId,
    sessionPresent,
    native: { protocol: '3.1.1', connection },
    async publish(topic, payload, qos = 1, properties = {}) {
      await within(
        connection.publish(topic, payload, qos as mqtt.QoS, properties.retain ?? false),
        10_000,
        `publish ${topic}`,
      );
      return undefined;
    },
    async subscribe(filter, onMessage) {
      const suback = await within(
        connection.subscribe(filter, mqtt.QoS.AtLeastOnce, (topic, payload) =>
          onMessage({ topic, payload: parsePayload(payload) }),
        ),
        10_000,
        `subscribe ${filter}`,
      );
      return suback.qos as number;
    },
    async unsubscribe(filter) {
      await within(connection.unsubscribe(filter), 10_000, `unsubscribe ${filter}`);
    },
    drops: drops.events,
    dropped: (ms) => drops.waitFor(() => true, ms),
    shadowClient() {
      shadows ??= iotshadow.IotShadowClientv2.newFromMqtt311(connection, SHADOW_OPTIONS);
      return shadows;
    },
    close() {
      closed ??= (async () => {
        shadows?.close();
        await closeQuietly(connection);
      })();
      return closed;
    },
  };
}

async function connect5(
  core: Pick<Core, 'info' | 'caPem'>,
  device: Device,
  options: ConnectOptions,
): Promise<DeviceClient> {
  const clientId = options.clientId ?? device.thingName;
  const builder = iot.AwsIotMqtt5ClientConfigBuilder.newDirectMqttBuilderWithMtlsFromMemory(
    core.info.mqtt.host,
    device.certPem,
    device.keyPem,
  )
    .withCertificateAuthority(core.caPem)
    .withPort(core.info.mqtt.port)
    .withConnectProperties(crt5ConnectProperties(clientId, options))
    .withSessionBehavior(
      (options.clean ?? true) ? mqtt5.ClientSessionBehavior.Clean : mqtt5.ClientSessionBehavior.RejoinAlways,
    )
    // By default the SDK checks topics and sizes against IoT Core's limits before sending; off, so
    // that what these suites test is the core's answer, not the SDK's.
    .withExtendedValidationAndFlowControlOptions(mqtt5.ClientExtendedValidationAndFlowControl.None)
    // A refused or taken-over client reconnects by itself: not before a test has looked.
    .withMinReconnectDelayMs(5_000)
    .withMaxReconnectDelayMs(10_000)
    .withConnackTimeoutMs(10_000)
    .withPingTimeoutMs(3_000)
    .withAckTimeoutSeconds(10);
  if (options.topicAliases) {
    builder.withTopicAliasingOptions({ outboundBehavior: mqtt5.OutboundTopicAliasBehaviorType.LRU });
  }
  const client5 = new mqtt5.Mqtt5Client(builder.build());
  const drops = eventLog<Drop>(`${clientId} dropped`);
  const handlers = new Map<string, (message: Received) => void>();
  client5.on('disconnection', (e) => drops.push({ reasonCode: e.disconnect?.reasonCode as number | undefined }));
  client5.on('messageReceived', (e) => {
    const received: Received = {
      topic: e.message.topicName,
      payload: parsePayload(e.message.payload),
      packet: e.message,
    };
    // The 3.1.1 connection hands a message to each matching subscription's callback; MQTT 5's
    // client has one event for all, dispatched here the same way.
    options.onMessage?.(received);
    for (const [filter, handler] of handlers) if (topicMatches(filter, received.topic)) handler(received);
  });
  client5.on('error', () => undefined);
  const stop = async () => {
    const stopped = new Promise<void>((resolve) => client5.once('stopped', () => resolve()));
    try {
      client5.stop({ reasonCode: mqtt5.DisconnectReasonCode.NormalDisconnection });
      await within(stopped, 5_000, `${clientId} stopped`);
    } catch {
      // already stopped
    }
    client5.close();
  };
  const outcome = new Promise<mqtt5.ConnackPacket>((resolve, reject) => {
    client5.once('connectionSuccess', (e) => resolve(e.connack));
    client5.once('connectionFailure', (e) =>
      reject(
        new ConnectRefused('5', e.connack?.reasonCode as number | undefined, String(e.error?.error_name ?? e.error)),
      ),
    );
  });
  client5.start();
  let connack: mqtt5.ConnackPacket;
  try {
    connack = await within(outcome, 10_000, `connect ${clientId}`);
  } catch (err) {
    await stop();
    throw err;
  }
  let shadows: iotshadow.IotShadowClientv2 | undefined;
  let closed: Promise<void> | undefined;
  return {
    protocol: '5',
    clientId,
    sessionPresent: connack.sessionPresent,
    native: { protocol: '5', client: client5, connack },
    async publish(topic, payload, qos = 1, properties = {}) {
      const result = await within(
        client5.publish({ ...properties, topicName: topic, payload, qos: qos as number as mqtt5.QoS }),
        10_000,
        `publish ${topic}`,
      );
      if (qos === 0) return undefined;
      return ((result as mqtt5.PubackPacket | undefined)?.reasonCode as number | undefined) ?? 0;
    },
    async subscribe(filter, onMessage) {
      handlers.set(filter, onMessage);
      const suback = await within(
        client5.subscribe({ subscriptions: [{ topicFilter: filter, qos: mqtt5.QoS.AtLeastOnce }] }),
        10_000,
        `subscribe ${filter}`,
      );
      const code = (suback.reasonCodes[0] as number | undefined) ?? MQTT5_REASON.UNSPECIFIED_ERROR;
      if (isMqtt5Failure(code)) handlers.delete(filter);
      return code;
    },
    async unsubscribe(filter) {
      handlers.delete(filter);
      await within(client5.unsubscribe({ topicFilters: [filter] }), 10_000, `unsubscribe ${filter}`);
    },
    drops: drops.events,
    dropped: (ms) => drops.waitFor(() => true, ms),
    shadowClient() {
      shadows ??= iotshadow.IotShadowClientv2.newFromMqtt5(client5, SHADOW_OPTIONS);
      return shadows;
    },
    close() {
      closed ??= (async () => {
        shadows?.close();
        await stop();
      })();
      return closed;
    },
  };
}

/**
 * The return code of a refused MQTT 3.1.1 CONNACK. aws-crt's 3.1.1 connection reports any refusal
 * as AWS_ERROR_MQTT_PROTOCOL_ERROR, without the code, so this asks mqtt.js, which reports it.
 */
export async function connackReturnCode311(
  core: Pick<Core, 'info'>,
  device: Device,
  clientId = device.thingName,
): Promise<number | undefined> {
  try {
    await paceConnect(clientId);
    let client: Awaited<ReturnType<typeof connectAsync>>;
    try {
      client = await connectAsync({ ...thingMqttOptions(core.info, device), clientId });
    } finally {
      connectAnswered(clientId);
    }
    await client.endAsync(true);
    return 0;
  } catch (err) {
    return (err as { code?: number }).code;
  }
}

/** MQTT topic filter matching (`+`, `#`, a `$share/{group}/` prefix), for dispatching MQTT 5 messages. */
function topicMatches(filter: string, topic: string): boolean {
  const levels = (filter.startsWith('$share/') ? filter.split('/').slice(2).join('/') : filter).split('/');
  const names = topic.split('/');
  // Wildcards at the first level do not match `$` topics (MQTT 4.7.2).
  const reserved = topic.startsWith('$');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i];
    if (level === '#') return !(i === 0 && reserved);
    if (i >= names.length) return false;
    if (level === '+') {
      if (i === 0 && reserved) return false;
    } else if (level !== names[i]) return false;
  }
  return levels.length === names.length;
}

/** Whether a SUBACK code grants the subscription. */
const isGranted = (code: number): boolean => !isMqtt5Failure(code);

/** What a policy-denied SUBSCRIBE gets: 0x80, 3.1.1's only failure code, or 0x87 Not authorized over MQTT 5. */
export const deniedSubscribeCode = (protocol: MqttProtocol): number =>
  protocol === '5' ? MQTT5_REASON.NOT_AUTHORIZED : MQTT5_REASON.UNSPECIFIED_ERROR;

/** The rejection an IotShadowClientv2 request failed with: IoT's `{code, message, clientToken, timestamp}`. */
export function rejectionOf(err: unknown): JsonObject {
  const modeled = (err as { modeledError?: JsonObject } | undefined)?.modeledError;
  if (modeled === undefined) throw err;
  return modeled;
}

/** Runs a v2 request and returns the accepted body or the modeled rejection. */
export async function settle(request: Promise<unknown>): Promise<{ ok: boolean; body: JsonObject }> {
  try {
    return { ok: true, body: (await within(request, 15_000, 'shadow request')) as JsonObject };
  } catch (err) {
    return { ok: false, body: rejectionOf(err) };
  }
}

/** Events a v2 streaming operation delivered, with a bounded wait for the next matching one. */
export interface EventLog<T> {
  readonly events: T[];
  waitFor(match: (event: T) => boolean, ms?: number): Promise<T>;
  close(): void;
}

/** Opens a v2 streaming operation and resolves once its subscription is established. */
export async function openStream<T>(
  stream: mqtt_request_response.StreamingOperation<T>,
  what: string,
): Promise<EventLog<T>> {
  const log = eventLog<T>(`${what}: matching event`);
  stream.on('incomingPublish', (e) => log.push(e.message));
  const established = new Promise<void>((resolve, reject) => {
    stream.on('subscriptionStatus', (e) => {
      // 0 is aws-crt's SubscriptionStatusEventType.SubscriptionEstablished.
      if (e.type === 0) resolve();
      else reject(e.error ?? new Error(`${what}: subscription status ${e.type}`));
    });
  });
  stream.open();
  try {
    await within(established, 10_000, `${what} subscription`);
  } catch (err) {
    stream.close();
    throw err;
  }
  return { events: log.events, waitFor: log.waitFor, close: () => stream.close() };
}

/** A subscription that records what it receives, with the SUBACK's code and a bounded wait. */
export interface Subscription {
  readonly messages: Received[];
  /** The SUBACK's code for the filter. */
  readonly code: number;
  readonly granted: boolean;
  waitFor(match: (m: Received) => boolean, ms?: number): Promise<Received>;
}

export async function rawSubscribe(client: DeviceClient, filter: string): Promise<Subscription> {
  const log = eventLog<Received>(`message on ${filter}`);
  const code = await client.subscribe(filter, (m) => log.push(m));
  return { messages: log.events, code, granted: isGranted(code), waitFor: log.waitFor };
}

type DeltaEvent = iotshadow.model.ShadowDeltaUpdatedEvent;
type DocumentsEvent = iotshadow.model.ShadowUpdatedEvent;

/**
 * A device with its SDK connection, its IotShadowClientv2, and open delta and documents streams
 * for the shadows it watches (the classic shadow under the key '').
 */
export interface ShadowDevice {
  readonly device: Device;
  readonly client: DeviceClient;
  readonly shadows: iotshadow.IotShadowClientv2;
  readonly deltas: ReadonlyMap<string, EventLog<DeltaEvent>>;
  readonly documents: ReadonlyMap<string, EventLog<DocumentsEvent>>;
  /** The delta (or null) and documents messages an accepted update with `version` produced. */
  eventsOf(
    shadowName: string | undefined,
    version: number,
  ): Promise<{ delta: JsonObject | null; documents: JsonObject }>;
  close(): Promise<void>;
}

export async function openShadowDevice(
  core: Pick<Core, 'info' | 'caPem'>,
  device: Device,
  watch: readonly (string | undefined)[] = [undefined],
  protocol: MqttProtocol = '3.1.1',
): Promise<ShadowDevice> {
  // The delta and documents streams are separate subscriptions of the SDK, and their events can
  // reach JavaScript in either order (over MQTT 5 a documents event has come first). The connection's
  // own message event sees every PUBLISH in the order the broker wrote them, so it says whether an
  // update's delta was published before its documents.
  const wire = eventLog<Received>(`${device.thingName} messages`);
  const client = await connectDevice(core, device, protocol, { onMessage: (m) => wire.push(m) });
  const shadows = client.shadowClient();
  const deltas = new Map<string, EventLog<DeltaEvent>>();
  const documents = new Map<string, EventLog<DocumentsEvent>>();
  const close = async () => {
    for (const log of [...deltas.values(), ...documents.values()]) log.close();
    await client.close();
  };
  try {
    for (const shadowName of new Set(watch)) {
      const thingName = device.thingName;
      const key = shadowName ?? '';
      deltas.set(
        key,
        await openStream<DeltaEvent>(
          shadowName === undefined
            ? shadows.createShadowDeltaUpdatedStream({ thingName })
            : shadows.createNamedShadowDeltaUpdatedStream({ thingName, shadowName }),
          `delta ${key}`,
        ),
      );
      documents.set(
        key,
        await openStream<DocumentsEvent>(
          shadowName === undefined
            ? shadows.createShadowUpdatedStream({ thingName })
            : shadows.createNamedShadowUpdatedStream({ thingName, shadowName }),
          `documents ${key}`,
        ),
      );
    }
  } catch (err) {
    await close();
    throw err;
  }
  return {
    device,
    client,
    shadows,
    deltas,
    documents,
    async eventsOf(shadowName, version) {
      const key = shadowName ?? '';
      const docs = documents.get(key);
      const delta = deltas.get(key);
      if (docs === undefined || delta === undefined) throw new Error(`shadow '${key}' is not watched`);
      // /update/documents is published after /update/delta: once the connection has the documents
      // of this version, it has the delta of the same version if there is one, and the delta
      // stream will deliver it.
      const topics = shadowTopics(device.thingName, shadowName);
      const versionOf = (m: Received) => (typeof m.payload === 'object' ? m.payload : undefined);
      const doc = await docs.waitFor((d) => d.current?.version === version);
      const onWire = await wire.waitFor(
        (m) =>
          m.topic === topics.updateDocuments && (versionOf(m)?.current as JsonObject | undefined)?.version === version,
      );
      const before = wire.events.slice(0, wire.events.indexOf(onWire));
      const published = before.some((m) => m.topic === topics.updateDelta && versionOf(m)?.version === version);
      const found = published ? await delta.waitFor((d) => d.version === version) : undefined;
      return { delta: found === undefined ? null : (found as JsonObject), documents: doc as unknown as JsonObject };
    },
    close,
  };
}

/**
 * A shadow store whose writes can be held at a gate (to keep requests in flight deterministically,
 * for 429), wrapping a real store. Reopening the gate lets every held write through.
 */
export function createGatedStore(inner: ShadowStore) {
  let held: Array<() => void> | undefined;
  const store: ShadowStore = {
    load: (t, s) => inner.load(t, s),
    save: async (shadow) => {
      if (held !== undefined) {
        const queue = held;
        await new Promise<void>((resolve) => queue.push(resolve));
      }
      await inner.save(shadow);
    },
    listNamed: (t, o) => inner.listNamed(t, o),
    close: () => inner.close(),
  };
  return {
    store,
    hold: () => {
      held ??= [];
    },
    release: () => {
      const queue = held ?? [];
      held = undefined;
      for (const resolve of queue) resolve();
    },
  };
}
