/**
 * Test fixtures for the broker: a throwaway PKI made with @peculiar/x509 (a CA, the broker's
 * server certificate, device certificates) and an in-memory IdentityDirectory (a test double of
 * the registry port), plus helpers around the real aws-iot-device-sdk-v2 client.
 */
import 'reflect-metadata';
import { createHash, webcrypto } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import * as x509 from '@peculiar/x509';
import { type IotPolicyDocument, recommendedDevicePolicy } from '@pifleet/protocol';
import { Aedes, type AedesOptions } from 'aedes';
import { iot, mqtt, mqtt5 } from 'aws-iot-device-sdk-v2';
import { connect, connectAsync, type IClientOptions, type IConnackPacket, type MqttClient } from 'mqtt';
import { type Broker, type BrokerDeps, type BusMessage, createBroker } from '../../src/broker/index.js';
import type {
  AccountContext,
  AttachedPolicy,
  CertificateStatus,
  DeviceIdentity,
  IdentityDirectory,
  ServerTlsMaterial,
} from '../../src/index.js';

const crypto = webcrypto as unknown as Parameters<typeof x509.X509CertificateGenerator.create>[1];

export const ACCOUNT: AccountContext = { region: 'eu-west-1', accountId: '123456789012' };

export type KeyType = 'ec' | 'rsa';
const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const RSA = {
  name: 'RSASSA-PKCS1-v1_5',
  modulusLength: 2048,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash: 'SHA-256',
};

type KeyPair = { privateKey: unknown; publicKey: unknown };

async function generate(keyType: KeyType): Promise<KeyPair> {
  return (await webcrypto.subtle.generateKey(keyType === 'ec' ? EC : RSA, true, ['sign', 'verify'])) as KeyPair;
}

async function keyPem(key: unknown): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key as webcrypto.CryptoKey);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

export interface IssuedCertificate {
  readonly certPem: string;
  readonly keyPem: string;
  /** Lowercase hex SHA-256 of the DER (AWS's certificateId). */
  readonly certificateId: string;
}

export interface TestPki {
  readonly caCertPem: string;
  readonly serverTls: ServerTlsMaterial;
  issue(commonName: string): Promise<IssuedCertificate>;
}

function signingOf(keyType: KeyType) {
  return keyType === 'ec' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5' };
}

async function makeCa(name: string, keyType: KeyType) {
  const keys = await generate(keyType);
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: `CN=${name}`,
      keys: keys as never,
      signingAlgorithm: signingOf(keyType),
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ],
    },
    crypto,
  );
  return { keys, cert, keyType };
}

async function issueFrom(
  ca: Awaited<ReturnType<typeof makeCa>>,
  subject: string,
  keyType: KeyType,
  extensions: x509.Extension[],
): Promise<IssuedCertificate> {
  const keys = await generate(keyType);
  const cert = await x509.X509CertificateGenerator.create(
    {
      subject,
      issuer: ca.cert.subject,
      publicKey: keys.publicKey as never,
      signingKey: ca.keys.privateKey as never,
      signingAlgorithm: signingOf(ca.keyType),
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
      extensions: [new x509.BasicConstraintsExtension(false, undefined, true), ...extensions],
    },
    crypto,
  );
  return {
    certPem: cert.toString('pem'),
    keyPem: await keyPem(keys.privateKey),
    certificateId: createHash('sha256').update(Buffer.from(cert.rawData)).digest('hex'),
  };
}

/** A CA, a server certificate for 127.0.0.1/localhost, and a device certificate factory. */
export async function createTestPki(options: { keyType?: KeyType; name?: string } = {}): Promise<TestPki> {
  const keyType = options.keyType ?? 'ec';
  const ca = await makeCa(options.name ?? 'pifleet test CA', keyType);
  const server = await issueFrom(ca, 'CN=localhost', keyType, [
    new x509.SubjectAlternativeNameExtension([
      { type: 'dns', value: 'localhost' },
      { type: 'ip', value: '127.0.0.1' },
    ]),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
  ]);
  const caCertPem = ca.cert.toString('pem');
  return {
    caCertPem,
    serverTls: { caCertPem, serverCertPem: server.certPem, serverKeyPem: server.keyPem },
    issue: (commonName) =>
      issueFrom(ca, `CN=${commonName}`, keyType, [
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      ]),
  };
}

/** An in-memory registry view implementing the broker's port. */
export class MemoryIdentities implements IdentityDirectory {
  readonly #identities = new Map<string, DeviceIdentity>();
  readonly #listeners = new Set<(certificateId: string) => void>();
  lookups = 0;

  identityOf(certificateId: string): DeviceIdentity | undefined {
    this.lookups++;
    return this.#identities.get(certificateId);
  }

  onIdentityChange(listener: (certificateId: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  put(
    certificateId: string,
    options: { status?: CertificateStatus; thingNames?: string[]; policies?: AttachedPolicy[] } = {},
  ): DeviceIdentity {
    const identity: DeviceIdentity = {
      certificateId,
      certificateArn: `arn:aws:iot:${ACCOUNT.region}:${ACCOUNT.accountId}:cert/${certificateId}`,
      status: options.status ?? 'ACTIVE',
      thingNames: options.thingNames ?? [],
      policies: options.policies ?? [],
    };
    this.#identities.set(certificateId, identity);
    this.#emit(certificateId);
    return identity;
  }

  update(certificateId: string, patch: Partial<Pick<DeviceIdentity, 'status' | 'thingNames' | 'policies'>>): void {
    const current = this.#identities.get(certificateId);
    if (!current) throw new Error(`no identity ${certificateId}`);
    this.#identities.set(certificateId, { ...current, ...patch });
    this.#emit(certificateId);
  }

  delete(certificateId: string): void {
    this.#identities.delete(certificateId);
    this.#emit(certificateId);
  }

  #emit(certificateId: string): void {
    for (const listener of this.#listeners) listener(certificateId);
  }
}

export const recommended = (): AttachedPolicy => ({
  name: 'pifleet-device',
  document: recommendedDevicePolicy(ACCOUNT.region, ACCOUNT.accountId),
});

/** Resolves with the event's arguments, or rejects after `ms`. */
export function once<T extends unknown[] = unknown[]>(emitter: EventEmitter, event: string, ms = 5_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`timed out after ${ms} ms waiting for ${event}`));
    }, ms);
    const on = (...args: unknown[]) => {
      clearTimeout(timer);
      resolve(args as T);
    };
    emitter.once(event, on);
  });
}

/** Races a promise against a timeout. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

/** A real device SDK connection (MQTT 3.1.1 over mutual TLS), not yet connected. */
export function deviceConnection(options: {
  port: number;
  caCertPem: string;
  cert: { certPem: string; keyPem: string };
  clientId: string;
  clean?: boolean;
  will?: { topic: string; payload: string; retain?: boolean };
}): mqtt.MqttClientConnection {
  let builder = iot.AwsIotMqttConnectionConfigBuilder.new_mtls_builder(options.cert.certPem, options.cert.keyPem)
    .with_certificate_authority(options.caCertPem)
    .with_endpoint('127.0.0.1')
    .with_port(options.port)
    .with_client_id(options.clientId)
    .with_clean_session(options.clean ?? true)
    .with_keep_alive_seconds(30)
    .with_reconnect_min_sec(1)
    .with_reconnect_max_sec(2)
    .with_ping_timeout_ms(3_000)
    .with_protocol_operation_timeout_ms(5_000);
  if (options.will) {
    builder = builder.with_will(
      new mqtt.MqttWill(options.will.topic, mqtt.QoS.AtLeastOnce, options.will.payload, options.will.retain ?? false),
    );
  }
  return new mqtt.MqttClient().new_connection(builder.build());
}

/** Disconnects (freeing native resources) without letting a failure hide the test's own. */
export async function closeQuietly(connection: mqtt.MqttClientConnection | undefined): Promise<void> {
  if (!connection) return;
  try {
    await within(connection.disconnect(), 5_000, 'disconnect');
  } catch {
    // already closed or never connected
  }
}

/** MQTT's variable byte integer (3.1.1 section 2.2.3), for tests that write packets byte by byte. */
export function remainingLength(n: number): number[] {
  const out: number[] = [];
  let x = n;
  do {
    let byte = x % 128;
    x = Math.floor(x / 128);
    if (x > 0) byte |= 0x80;
    out.push(byte);
  } while (x > 0);
  return out;
}

/** A bare aedes (no TLS, no policies) on 127.0.0.1, for tests of what the broker relies on in aedes itself. */
export interface BareAedes {
  readonly aedes: Aedes;
  /** An mqtt.js client (MQTT 3.1.1 unless `protocolVersion` says 5), connected. */
  connect(options: {
    clientId: string;
    will?: { topic: string; payload: string; qos?: 0 | 1 };
    protocolVersion?: 4 | 5;
    clean?: boolean;
  }): Promise<MqttClient>;
  /** The CONNACK the client with this id last connected with. */
  connackOf(clientId: string): IConnackPacket | undefined;
  close(): Promise<void>;
}

export async function startBareAedes(
  options: AedesOptions = {},
  hooks: { onSocket?: (socket: Socket) => void } = {},
): Promise<BareAedes> {
  const aedes = new Aedes(options);
  await aedes.listen();
  const server = createServer((socket) => {
    hooks.onSocket?.(socket);
    aedes.handle(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const clients: MqttClient[] = [];
  const connacks = new Map<string, IConnackPacket>();
  return {
    aedes,
    async connect({ clientId, will, protocolVersion = 4, clean = true }) {
      const client = connect({
        host: '127.0.0.1',
        port,
        clientId,
        protocolVersion,
        clean,
        reconnectPeriod: 0,
        ...(will
          ? { will: { topic: will.topic, payload: Buffer.from(will.payload), qos: will.qos ?? 0, retain: false } }
          : {}),
      });
      clients.push(client);
      const connack = await within(
        new Promise<IConnackPacket>((resolve, reject) => {
          client.once('connect', resolve);
          client.once('error', reject);
        }),
        5_000,
        `connect ${clientId}`,
      );
      connacks.set(clientId, connack);
      return client;
    },
    connackOf: (clientId) => connacks.get(clientId),
    async close() {
      await Promise.all(clients.map((c) => c.endAsync(true)));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Where and as whom a test device connects. */
export interface DeviceEndpoint {
  readonly port: number;
  readonly caCertPem: string;
  readonly cert: { readonly certPem: string; readonly keyPem: string };
  readonly clientId: string;
}

/** mqtt.js options for a device over mutual TLS; `protocolVersion` 5 or 4 (MQTT 3.1.1). */
export function mqttjsOptions(
  device: DeviceEndpoint,
  options: Omit<IClientOptions, 'host' | 'port' | 'ca' | 'cert' | 'key' | 'clientId'> = {},
): IClientOptions {
  return {
    protocol: 'mqtts',
    host: '127.0.0.1',
    port: device.port,
    ca: device.caCertPem,
    cert: device.cert.certPem,
    key: device.cert.keyPem,
    clientId: device.clientId,
    protocolVersion: 5,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
    ...options,
  };
}

/** A connected mqtt.js client (MQTT 5 unless `protocolVersion` says otherwise). */
export function connectMqttjs(
  device: DeviceEndpoint,
  options: Omit<IClientOptions, 'host' | 'port' | 'ca' | 'cert' | 'key' | 'clientId'> = {},
): Promise<MqttClient> {
  return within(connectAsync(mqttjsOptions(device, options)), 10_000, `connect ${device.clientId}`);
}

/** A real aws-crt MQTT 5 client, connected, with what the broker told it. */
export interface Crt5Client {
  readonly client: mqtt5.Mqtt5Client;
  readonly connack: mqtt5.ConnackPacket;
  readonly settings: mqtt5.NegotiatedSettings;
  /** Messages received so far. */
  readonly received: mqtt5.PublishPacket[];
  /** The next message matching, or one already received. */
  message(match: (m: mqtt5.PublishPacket) => boolean, ms?: number): Promise<mqtt5.PublishPacket>;
  /** The reason code of the DISCONNECT the broker sends (undefined when the connection just drops). */
  readonly disconnected: Promise<number | undefined>;
  /** Stops (DISCONNECT, reason 0 unless given) and frees the native client. Idempotent. */
  stop(reasonCode?: number): Promise<void>;
}

/** Options of {@link connectCrt5}. */
export interface Crt5Options {
  readonly keepAliveSeconds?: number;
  /** Session expiry interval in the CONNECT; with it the client rejoins its session (clean start 0). */
  readonly sessionExpirySeconds?: number;
  readonly will?: { topic: string; payload: string };
}

/**
 * The CONNECT an aws-crt `Mqtt5Client` sends: keep-alive 30 s unless given, a session expiry
 * interval only when asked for one (MQTT 5's default 0 ends the session with the connection), a QoS 1 will.
 */
export function crt5ConnectProperties(
  clientId: string,
  options: Pick<Crt5Options, 'keepAliveSeconds' | 'sessionExpirySeconds' | 'will'>,
): mqtt5.ConnectPacket {
  return {
    clientId,
    keepAliveIntervalSeconds: options.keepAliveSeconds ?? 30,
    ...(options.sessionExpirySeconds === undefined
      ? {}
      : { sessionExpiryIntervalSeconds: options.sessionExpirySeconds }),
    ...(options.will
      ? { will: { topicName: options.will.topic, qos: mqtt5.QoS.AtLeastOnce, payload: options.will.payload } }
      : {}),
  };
}

function crt5Client(device: DeviceEndpoint, options: Crt5Options): mqtt5.Mqtt5Client {
  const builder = iot.AwsIotMqtt5ClientConfigBuilder.newDirectMqttBuilderWithMtlsFromMemory(
    '127.0.0.1',
    device.cert.certPem,
    device.cert.keyPem,
  )
    .withCertificateAuthority(device.caCertPem)
    .withPort(device.port)
    .withConnectProperties(crt5ConnectProperties(device.clientId, options))
    .withSessionBehavior(
      options.sessionExpirySeconds === undefined
        ? mqtt5.ClientSessionBehavior.Clean
        : mqtt5.ClientSessionBehavior.RejoinAlways,
    )
    // The SDK checks IoT Core's limits before sending by default: off, so the broker's answer is tested.
    .withExtendedValidationAndFlowControlOptions(mqtt5.ClientExtendedValidationAndFlowControl.None)
    // A refused or dropped client would reconnect by itself: not before the test has looked.
    .withMinReconnectDelayMs(30_000)
    .withMaxReconnectDelayMs(60_000)
    .withConnackTimeoutMs(5_000)
    .withAckTimeoutSeconds(10);
  return new mqtt5.Mqtt5Client(builder.build());
}

/** Connects a real aws-crt `Mqtt5Client`; rejects with the CONNACK reason code on a refusal. */
export async function connectCrt5(device: DeviceEndpoint, options: Crt5Options = {}): Promise<Crt5Client> {
  const client = crt5Client(device, options);
  const received: mqtt5.PublishPacket[] = [];
  const waiters = new Set<{ match: (m: mqtt5.PublishPacket) => boolean; resolve: (m: mqtt5.PublishPacket) => void }>();
  client.on('messageReceived', (e) => {
    received.push(e.message);
    for (const w of waiters) {
      if (w.match(e.message)) {
        waiters.delete(w);
        w.resolve(e.message);
      }
    }
  });
  client.on('error', () => undefined);
  const disconnected = new Promise<number | undefined>((resolve) => {
    client.once('disconnection', (e) => resolve(e.disconnect?.reasonCode as number | undefined));
  });
  let stopped = false;
  const stop = async (reasonCode?: number) => {
    if (stopped) return;
    stopped = true;
    const done = new Promise<void>((resolve) => client.once('stopped', () => resolve()));
    try {
      client.stop(reasonCode === undefined ? undefined : { reasonCode: reasonCode as mqtt5.DisconnectReasonCode });
      await within(done, 5_000, `${device.clientId} stopped`);
    } catch {
      // already stopped
    }
    client.close();
  };
  const outcome = new Promise<{ connack: mqtt5.ConnackPacket; settings: mqtt5.NegotiatedSettings }>(
    (resolve, reject) => {
      client.once('connectionSuccess', (e) => resolve({ connack: e.connack, settings: e.settings }));
      client.once('connectionFailure', (e) =>
        reject(
          Object.assign(new Error(`connect refused: ${String(e.error?.error_name ?? e.error)}`), {
            reasonCode: e.connack?.reasonCode as number | undefined,
          }),
        ),
      );
    },
  );
  client.start();
  try {
    const { connack, settings } = await within(outcome, 10_000, `connect ${device.clientId}`);
    return {
      client,
      connack,
      settings,
      received,
      message(match, ms = 5_000) {
        const seen = received.find(match);
        if (seen) return Promise.resolve(seen);
        return within(new Promise((resolve) => waiters.add({ match, resolve })), ms, `message at ${device.clientId}`);
      },
      disconnected,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

// ---- shared by the broker suites that run the real TLS broker ----------------------------------

/** An IoT resource ARN (`topic`, `topicfilter`, `client`) in the test account. */
export const arn = (kind: string, rest: string) => `arn:aws:iot:${ACCOUNT.region}:${ACCOUNT.accountId}:${kind}/${rest}`;

/** A named policy attached to a test certificate. */
export const policy = (name: string, ...Statement: IotPolicyDocument['Statement']): AttachedPolicy => ({
  name,
  document: { Version: '2012-10-17', Statement },
});

export const allowAll = policy('allow-all', { Effect: 'Allow', Action: 'iot:*', Resource: '*' });

/** A bus message's payload read as a JSON object. */
export const busJson = (m: BusMessage) => JSON.parse(m.payload.toString('utf8')) as Record<string, unknown>;

/** Collects the messages an in-process subscriber sees and lets a test wait for one. */
export class Inbox {
  readonly messages: BusMessage[] = [];
  readonly #waiters = new Set<{ match: (m: BusMessage) => boolean; resolve: (m: BusMessage) => void }>();

  readonly push = (m: BusMessage) => {
    this.messages.push(m);
    for (const w of this.#waiters) {
      if (w.match(m)) {
        this.#waiters.delete(w);
        w.resolve(m);
      }
    }
  };

  next(match: (m: BusMessage) => boolean, ms = 5_000): Promise<BusMessage> {
    const seen = this.messages.find(match);
    if (seen) return Promise.resolve(seen);
    return within(new Promise<BusMessage>((resolve) => this.#waiters.add({ match, resolve })), ms, 'bus message');
  }
}

export interface TlsBroker {
  readonly pki: TestPki;
  readonly identities: MemoryIdentities;
  readonly broker: Broker;
  readonly port: number;
}

/** A fresh PKI and an empty identity directory behind a started mutual-TLS broker on 127.0.0.1:0. */
export async function startTlsBroker(
  options: Omit<BrokerDeps, 'identities' | 'tls' | 'host' | 'port' | 'account'> = {},
): Promise<TlsBroker> {
  const pki = await createTestPki();
  const identities = new MemoryIdentities();
  const broker = createBroker({
    identities,
    tls: pki.serverTls,
    host: '127.0.0.1',
    port: 0,
    account: ACCOUNT,
    ...options,
  });
  const { port } = await broker.start();
  return { pki, identities, broker, port };
}

/**
 * The CONNACK IoT Core sends an MQTT 5 client ("MQTT 5 supported features"), as aws-crt reports it:
 * Receive Maximum 100, Maximum QoS 1, Maximum Packet Size 149504 (128 KiB payload + headers),
 * Topic Alias Maximum 8, no subscription identifiers, wildcard and shared subscriptions.
 */
export const IOT_CORE_CONNACK = {
  reasonCode: 0,
  receiveMaximum: 100,
  maximumQos: mqtt5.QoS.AtLeastOnce,
  retainAvailable: true,
  maximumPacketSize: 149_504,
  topicAliasMaximum: 8,
  wildcardSubscriptionsAvailable: true,
  subscriptionIdentifiersAvailable: false,
  sharedSubscriptionsAvailable: true,
} as const;
