import { readFileSync } from 'node:fs';
import type { JsonObject } from '@pifleet/protocol';
import { iot, iotshadow, mqtt, type mqtt_request_response } from 'aws-iot-device-sdk-v2';
import type { ShadowStore } from '../../src/shadow/store.js';
import { type InProcessCore, removeDir, startInProcessCore, tempDir } from '../../src/testing/in-process-core.js';
import type { ProvisionedThing } from '../../src/testing/provision.js';
import { closeQuietly, within } from '../broker/fixtures.js';

/**
 * Conformance harness: the composed local IoT Core on ephemeral ports in a temp data dir, driven
 * only by real clients — `@aws-sdk/client-iot` to provision, `@aws-sdk/client-iot-data-plane` for
 * the data plane (credentials from the generated shared-credentials file, as any AWS SDK reads
 * them; cloud's testing entry, src/testing), and aws-iot-device-sdk-v2 (MQTT 3.1.1 over mutual
 * TLS, `iotshadow.IotShadowClientv2`).
 */

export { sdkClients } from '../../src/testing/in-process-core.js';
export { provisionThing } from '../../src/testing/provision.js';
export { closeQuietly, within } from '../broker/fixtures.js';

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
  options: { readonly shadowStore?: (dataDir: string) => ShadowStore } = {},
): Promise<Core> {
  const dataDir = tempDir(name);
  const { shadowStore } = options;
  try {
    const run = await startInProcessCore(dataDir, shadowStore ? { shadowStore: () => shadowStore(dataDir) } : {});
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

/** A connected device SDK MQTT 3.1.1 connection (mutual TLS) as the device's thing name. */
export async function connectDevice(
  core: Pick<Core, 'info' | 'caPem'>,
  device: Device,
  options: { clientId?: string } = {},
): Promise<mqtt.MqttClientConnection> {
  const config = iot.AwsIotMqttConnectionConfigBuilder.new_mtls_builder(device.certPem, device.keyPem)
    .with_certificate_authority(core.caPem)
    .with_endpoint(core.info.mqtt.host)
    .with_port(core.info.mqtt.port)
    .with_client_id(options.clientId ?? device.thingName)
    .with_clean_session(true)
    .with_keep_alive_seconds(30)
    .with_ping_timeout_ms(3_000)
    .with_protocol_operation_timeout_ms(10_000)
    .build();
  const connection = new mqtt.MqttClient().new_connection(config);
  try {
    await within(connection.connect(), 10_000, `connect ${device.thingName}`);
  } catch (err) {
    await closeQuietly(connection);
    throw err;
  }
  return connection;
}

/** The shadow client the device agent uses, over a 3.1.1 connection. */
export function shadowClient(connection: mqtt.MqttClientConnection): iotshadow.IotShadowClientv2 {
  return iotshadow.IotShadowClientv2.newFromMqtt311(connection, {
    maxRequestResponseSubscriptions: 8,
    maxStreamingSubscriptions: 8,
    operationTimeoutInSeconds: 10,
  });
}

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
  const events: T[] = [];
  const waiters: Array<{ match: (e: T) => boolean; resolve: (e: T) => void }> = [];
  stream.on('incomingPublish', (e) => {
    events.push(e.message);
    for (const w of [...waiters]) {
      if (w.match(e.message)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(e.message);
      }
    }
  });
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
  return {
    events,
    waitFor: (match, ms = 10_000) => {
      const seen = events.find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      return within(new Promise<T>((resolve) => waiters.push({ match, resolve })), ms, `${what}: matching event`);
    },
    close: () => stream.close(),
  };
}

const dec = new TextDecoder();

/** A raw subscription on the SDK connection that records messages, with a bounded wait. */
export async function rawSubscribe(
  connection: mqtt.MqttClientConnection,
  filter: string,
): Promise<{
  readonly messages: Array<{ topic: string; payload: JsonObject | string }>;
  readonly granted: boolean;
  waitFor(
    match: (m: { topic: string; payload: JsonObject | string }) => boolean,
    ms?: number,
  ): Promise<{ topic: string; payload: JsonObject | string }>;
}> {
  const messages: Array<{ topic: string; payload: JsonObject | string }> = [];
  const waiters: Array<{
    match: (m: (typeof messages)[number]) => boolean;
    resolve: (m: (typeof messages)[number]) => void;
  }> = [];
  const suback = await within(
    connection.subscribe(filter, mqtt.QoS.AtLeastOnce, (topic, payload) => {
      const text = dec.decode(payload);
      let parsed: JsonObject | string = text;
      try {
        parsed = JSON.parse(text) as JsonObject;
      } catch {
        // keep the text
      }
      const m = { topic, payload: parsed };
      messages.push(m);
      for (const w of [...waiters]) {
        if (w.match(m)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    }),
    10_000,
    `subscribe ${filter}`,
  );
  return {
    messages,
    granted: (suback.qos as number) !== 0x80,
    waitFor: (match, ms = 10_000) => {
      const seen = messages.find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      return within(new Promise((resolve) => waiters.push({ match, resolve })), ms, `message on ${filter}`);
    },
  };
}

type DeltaEvent = iotshadow.model.ShadowDeltaUpdatedEvent;
type DocumentsEvent = iotshadow.model.ShadowUpdatedEvent;

/**
 * A device with its SDK connection, its IotShadowClientv2, and open delta and documents streams
 * for the shadows it watches (the classic shadow under the key '').
 */
export interface ShadowDevice {
  readonly device: Device;
  readonly connection: mqtt.MqttClientConnection;
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
): Promise<ShadowDevice> {
  const connection = await connectDevice(core, device);
  const shadows = shadowClient(connection);
  const deltas = new Map<string, EventLog<DeltaEvent>>();
  const documents = new Map<string, EventLog<DocumentsEvent>>();
  const close = async () => {
    for (const log of [...deltas.values(), ...documents.values()]) log.close();
    shadows.close();
    await closeQuietly(connection);
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
    connection,
    shadows,
    deltas,
    documents,
    async eventsOf(shadowName, version) {
      const key = shadowName ?? '';
      const docs = documents.get(key);
      const delta = deltas.get(key);
      if (docs === undefined || delta === undefined) throw new Error(`shadow '${key}' is not watched`);
      // /update/documents is published after /update/delta, on the same connection: once it is
      // here, the delta of the same version (if any) is too.
      const doc = await docs.waitFor((d) => d.current?.version === version);
      const found = delta.events.find((d) => d.version === version);
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
