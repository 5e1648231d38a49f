import { createHash, randomUUID } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { checkTopicFilter, checkTopicName, isPublishableTopic, MQTT5_REASON } from '@pifleet/protocol';
import {
  Aedes,
  type AedesPublishPacket,
  type AuthenticateError,
  type Client,
  type PublishPacket,
  type SubscribePacket,
  type Subscription,
} from 'aedes';
import {
  type CertificateAttributes,
  compilePolicies,
  connectionThingName,
  type DistinguishedName,
  type IotAction,
  iotResourceArn,
  type NamedPolicy,
  type PolicyAuthorizer,
  type PolicyContext,
  type PolicyDecision,
} from '../core/policy/index.js';
import type { ThrottleCounters } from '../limits/counters.js';
import type { Limits } from '../limits/quotas.js';
import { type Logger, silentLogger } from '../logger.js';
import type {
  AccountContext,
  DeviceIdentity,
  IdentityDirectory,
  ServerTlsMaterial,
  ThingFacts,
} from '../ports/identity.js';
import {
  advertiseOnConnack,
  beforeAedesHandles,
  type ConnackCapabilities,
  disconnectedCleanly,
  dropPublish,
  gateQosDeliveries,
  heldFilters,
  type InboundPacket,
  lastWillOf,
  memoryPersistence,
  messageExpiryOf,
  onDeliveryWritten,
  onDisconnectPacket,
  onSubackWritten,
  publisherOf,
  queuedMessages,
  refuseConnackWith,
  registeredClient,
  setServerKeepAlive,
  subscriptionIdentifierOf,
  type WrittenSuback,
  wipeSession,
  writeMqtt5Packet,
} from './aedes-internals.js';
import { BROKER_ERRORS, BrokerError } from './errors.js';
import { createPacketSizeGuard } from './packet-guard.js';
import {
  connectedEvent,
  type DisconnectReason,
  disconnectedEvent,
  hasPresenceEvents,
  type SessionInfo,
} from './presence.js';
import { type MessageProperties, messagePropertiesOf, NO_PROPERTIES } from './properties.js';
import { type ConnectionQuota, createBrokerQuotas, DeliveryWindow, topicSizeQuota } from './quotas.js';
import { RetainedIndex, type RetainedPacket, withRetainedIndex } from './retained-index.js';
import { createSharedSubscriptions } from './shared-subscriptions.js';

export interface BrokerDeps {
  readonly identities: IdentityDirectory;
  readonly tls: ServerTlsMaterial;
  readonly host: string;
  /** 0 picks an ephemeral port; `start()` reports the real one. */
  readonly port: number;
  readonly account: AccountContext;
  readonly logger?: Logger;
  /**
   * true (default): every CONNECT, PUBLISH, SUBSCRIBE and delivery is authorized against the
   * certificate's registry status and IoT policies. false: a bare broker behind the same mutual
   * TLS (any certificate the CA issued connects and may do anything), as a benchmark baseline.
   */
  readonly policyChecks?: boolean;
  /** Milliseconds since the epoch, for presence timestamps. */
  readonly now?: () => number;
  /**
   * IoT Core's "persistent session expiry period" (seconds): how long a persistent session (MQTT
   * 3.1.1 clean session 0, MQTT 5 clean start 0 with a session expiry) outlives its connection. An
   * MQTT 5 client's own session expiry interval is clamped to it. AWS's default is one hour,
   * adjustable up to seven days; default {@link PERSISTENT_SESSION_EXPIRY.defaultSeconds}.
   */
  readonly persistentSessionExpirySeconds?: number;
  /**
   * IoT Core's quotas to enforce (the local core's `--limits`); default `off`: IoT Core's sizes,
   * no rates or counts. See quotas.ts for what is enforced and the README for the answers.
   */
  readonly limits?: Limits;
  /** Where breaches are counted (the core's `/quotas` and log). */
  readonly throttles?: ThrottleCounters;
}

/** IoT Core's persistent session expiry period: default 1 h, at most 7 days (AWS IoT Core quotas). */
export const PERSISTENT_SESSION_EXPIRY = Object.freeze({ defaultSeconds: 3_600, maxSeconds: 7 * 24 * 3_600 });

/**
 * What IoT Core advertises in an MQTT 5 CONNACK ("MQTT 5 supported features"): at most 100 QoS 1
 * messages in flight from the client, packets up to 149,504 bytes (a 128 KiB payload with room
 * for topic and properties), topic aliases 1–8, QoS up to 1, retained messages and wildcard
 * subscriptions, no subscription identifiers. The keep-alive range is IoT Core's 30–1200 s.
 */
export const MQTT5_SERVER_LIMITS = Object.freeze({
  receiveMaximum: 100,
  maximumPacketSize: 149_504,
  topicAliasMaximum: 8,
  minKeepAliveSeconds: 30,
  maxKeepAliveSeconds: 1_200,
});

/** A message seen by an in-process subscriber. */
export interface BusMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: 0 | 1 | 2;
  readonly retain: boolean;
  /** The MQTT client that published it; undefined for in-process publishes. */
  readonly clientId: string | undefined;
  /**
   * true when the before-acknowledgement handler (see {@link BrokerBus.acceptBeforeAck}) has
   * already taken this message: it must not be processed a second time from the bus.
   */
  readonly acceptedBeforeAck: boolean;
  /** true when the message is a client's last will, published because its connection ended. */
  readonly lastWill: boolean;
  /** Its MQTT 5 properties (none for MQTT 3.1.1 and for in-process publishes without them). */
  readonly properties: MessageProperties;
}

/** A retained message as the broker holds it. */
export interface RetainedMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: 0 | 1 | 2;
}

export type BusHandler = (message: BusMessage) => void | Promise<void>;

/**
 * Sees a client's QoS 1 PUBLISH after it is authorized and before the broker acknowledges it.
 * Returns a promise when the message must be made durable first (the broker sends PUBACK once it
 * resolves, and closes the connection without PUBACK if it rejects, so the client sends it
 * again), or undefined when the message needs nothing.
 */
export type BeforeAckHandler = (message: BusMessage) => Promise<void> | undefined;

/**
 * In-process access to the broker for the services that run beside it (shadow service, rules
 * engine). These bypass policy checks on their own side; deliveries to MQTT clients are still
 * authorized by each client's iot:Receive.
 */
export interface BrokerBus {
  publish(
    topic: string,
    payload: string | Uint8Array,
    options?: {
      qos?: 0 | 1;
      retain?: boolean;
      properties?: MessageProperties;
      /**
       * Deliver to this client id's connection only (other subscribers never see it). Use QoS 0:
       * a QoS 1 message queued for an offline session is not re-checked against `to`.
       */
      to?: string;
    },
  ): Promise<void>;
  /**
   * Subscribes a handler to an MQTT topic filter. If the handler returns a promise, the next
   * message waits for it (backpressure). Filters starting with a wildcard do not match `$` topics.
   * Resolves, once the subscription is in place, to a function that removes it.
   */
  subscribe(filter: string, handler: BusHandler): Promise<() => Promise<void>>;
  /**
   * Installs the one handler that takes clients' QoS 1 messages before they are acknowledged
   * (the rules engine: IoT Core acknowledges only what it will not lose). Returns a function that
   * removes it. A second handler replaces nothing: it throws.
   */
  acceptBeforeAck(handler: BeforeAckHandler): () => void;
  onClientConnected(listener: (session: SessionInfo) => void): () => void;
  onClientDisconnected(listener: (session: SessionInfo, reason: DisconnectReason) => void): () => void;
  /** Sessions currently connected, by client id: a copy, O(connections). */
  sessions(): ReadonlyMap<string, SessionInfo>;
  /** The connected session of one client id: O(1), for per-message lookups. */
  session(clientId: string): SessionInfo | undefined;
}

export interface Broker {
  /**
   * Makes the bus usable without accepting connections yet, so the services behind it (rules,
   * shadows) are in place before the first device can publish. `start()` opens it if needed.
   */
  open(): Promise<void>;
  /** Listens; resolves to the address actually bound. */
  start(): Promise<{ host: string; port: number }>;
  /** Closes every client connection (SERVER_INITIATED_DISCONNECT) and the listener. Idempotent. */
  stop(): Promise<void>;
  readonly bus: BrokerBus;
  /**
   * Drops a client's connection at the transport, as a network failure would: the socket is
   * destroyed without DISCONNECT, so the client's will is published and its disconnected event
   * says CONNECTION_LOST. Returns whether a client with that id was connected.
   */
  disconnectClient(clientId: string): boolean;
  /** The retained message on a topic, if there is one. */
  retained(topic: string): RetainedMessage | undefined;
  /** Messages waiting for one of the bus's in-flight slots (the rest are being delivered). */
  queuedMessages(): number;
  /**
   * Serves an MQTT connection on `stream` whose caller a listener authenticated itself (SigV4 on a
   * WebSocket upgrade) instead of with a client certificate: CONNECT, SUBSCRIBE, PUBLISH and every
   * delivery are authorized against `principal.policies` exactly as a device's against its IoT
   * policies, with the same quotas, limits and lifecycle events. Closes the stream when the broker
   * is not running.
   */
  serveSigned(stream: Duplex, principal: SignedPrincipal): void;
  /** Connection and message counts since the broker was created (the local core's `/metrics`). */
  stats(): BrokerStats;
}

export interface BrokerStats {
  /** Client connections open now. */
  readonly connections: number;
  /** Connections accepted (CONNACK sent), and ended by reason. */
  readonly connects: number;
  readonly disconnects: Readonly<Partial<Record<DisconnectReason, number>>>;
  /** PUBLISH packets from clients that passed every check and went onto the bus. */
  readonly messagesReceived: number;
  /** Messages handed to a client connection after its iot:Receive check (a QoS 1 resend counts again). */
  readonly messagesDelivered: number;
}

/** The caller of a connection authenticated by SigV4 (see {@link Broker.serveSigned}). */
export interface SignedPrincipal {
  /** IoT Core's `principalIdentifier` for it in lifecycle events: the access key id. */
  readonly principalId: string;
  /** The caller's IAM policies; the broker reads their IoT actions (iot:Connect, iot:Subscribe, …). */
  readonly policies: readonly NamedPolicy[];
  readonly sourceIp?: string;
  /** The server name (SNI) its TLS handshake asked for, for `iot:DomainName`. */
  readonly domainName?: string;
}

/** Per-connection state. */
interface Session {
  readonly client: Client;
  readonly certificateId: string;
  readonly certificate: CertificateAttributes;
  readonly ipAddress: string | undefined;
  readonly connectAttributes: readonly string[];
  identity: DeviceIdentity | undefined;
  authorizer: PolicyAuthorizer | undefined;
  /** action + NUL + resource name → allowed; cleared on identity change. */
  readonly decisions: Map<string, boolean>;
  info: SessionInfo | undefined;
  reason: DisconnectReason | undefined;
  /** The reason code of the DISCONNECT the client sent, if it sent one. */
  disconnectPacket: number | undefined;
  /** The connection's publish rate buckets. */
  readonly quota: ConnectionQuota;
  /** Set for a SigV4 connection: its policies stand in for the certificate's. */
  readonly signed?: SignedPrincipal;
}

const DECISION_CACHE_LIMIT = 512;
const noop = () => undefined;
/**
 * Of the messages the broker completes in one synchronous run, every this-many-th completes on a
 * fresh stack (see `unwindGuard`), bounding the recursion to a few hundred frames.
 */
const UNWIND_EVERY = 64;
/** CONNACK return code 5 (MQTT 3.1.1 section 3.2.2.3). */
const NOT_AUTHORIZED = 5 as AuthenticateError['returnCode'];
/** CONNACK return codes 2 and 3: identifier rejected, server unavailable. */
const IDENTIFIER_REJECTED = 2 as AuthenticateError['returnCode'];
const SERVER_UNAVAILABLE = 3 as AuthenticateError['returnCode'];

const DN_NAMES: Readonly<Record<string, string>> = {
  CN: 'CommonName',
  O: 'Organization',
  OU: 'OrganizationalUnit',
  C: 'Country',
  ST: 'State',
  L: 'Locality',
  serialNumber: 'SerialNumber',
  title: 'Title',
  dnQualifier: 'DistinguishedNameQualifier',
  emailAddress: 'EmailAddress',
  // The other fields IoT Core's certificate policy variables name, by OpenSSL's short names.
  SN: 'Surname',
  GN: 'GivenName',
  initials: 'Initials',
  pseudonym: 'Pseudonym',
  generationQualifier: 'GenerationQualifier',
};

function distinguishedName(raw: unknown): DistinguishedName {
  const out: Record<string, string> = {};
  if (!raw || typeof raw !== 'object') return out;
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    const name = DN_NAMES[k];
    if (name && typeof v === 'string') out[name] = v;
    else if (name && Array.isArray(v) && typeof v[0] === 'string') out[name] = v[0];
  }
  return out;
}

function refusal(code: string, message: string, data: Record<string, unknown>): BrokerError {
  return new BrokerError(code, message, { data });
}

/** A CONNECT refusal: aedes answers CONNACK with return code 5 (not authorized), then closes. */
function connectRefusal(code: string, message: string, data: Record<string, unknown>): AuthenticateError {
  return Object.assign(new BrokerError(code, message, { data }), { returnCode: NOT_AUTHORIZED });
}

/**
 * The local IoT Core's MQTT broker: aedes (MQTT 3.1.1) on a TLS server that requires a client
 * certificate issued by the local CA, with IoT Core's authentication, authorization, limits and
 * presence events. Constructing it does no I/O; `start()` listens.
 */
export function createBroker(deps: BrokerDeps): Broker {
  const log = (deps.logger ?? silentLogger()).child({ component: 'broker' });
  const checks = deps.policyChecks ?? true;
  const now = deps.now ?? Date.now;
  const account = deps.account;
  const sessionExpirySeconds = deps.persistentSessionExpirySeconds ?? PERSISTENT_SESSION_EXPIRY.defaultSeconds;
  if (
    !Number.isInteger(sessionExpirySeconds) ||
    sessionExpirySeconds < 1 ||
    sessionExpirySeconds > PERSISTENT_SESSION_EXPIRY.maxSeconds
  ) {
    throw new BrokerError(
      BROKER_ERRORS.badOption,
      `persistentSessionExpirySeconds must be a whole number of seconds from 1 to ${PERSISTENT_SESSION_EXPIRY.maxSeconds} (IoT Core's maximum, 7 days), got ${sessionExpirySeconds}`,
      { data: { persistentSessionExpirySeconds: sessionExpirySeconds } },
    );
  }
  // Token buckets need a clock that only moves forward at real speed: not `now`, which tests set.
  const quotas = createBrokerQuotas({
    now: () => performance.now(),
    ...(deps.limits === undefined ? {} : { limits: deps.limits }),
    ...(deps.throttles === undefined ? {} : { throttles: deps.throttles }),
  });
  /** SUBSCRIBE filters refused for a quota before aedes handles the packet (see `beforeSubscribe`). */
  const overQuotaFilters = new WeakSet<object>();
  /** A client's SUBSCRIBE packets with filters refused for a quota, by packet id, until their SUBACK. */
  const overQuotaSubscribes = new WeakMap<Client, Map<number, SubscribePacket>>();
  /** MQTT 3.1.1 persistent sessions waiting to expire, by client id (aedes expires MQTT 5 ones). */
  const expiring = new Map<string, NodeJS.Timeout>();

  const sessions = new Map<Client, Session>();
  const byCertificate = new Map<string, Set<Session>>();
  const connected = new Map<string, SessionInfo>();
  const versionNumbers = new Map<string, number>();
  const connectedListeners = new Set<(s: SessionInfo) => void>();
  const counts = { connects: 0, messagesReceived: 0, messagesDelivered: 0 };
  const disconnects: Partial<Record<DisconnectReason, number>> = {};
  const disconnectedListeners = new Set<(s: SessionInfo, r: DisconnectReason) => void>();

  let server: tls.Server | undefined;
  const sockets = new Set<Duplex>();
  /** Streams handed to serveSigned, with their callers, until aedes authenticates them. */
  const signedStreams = new WeakMap<object, SignedPrincipal>();
  let removeIdentityListener: (() => void) | undefined;
  let stopping = false;
  let opened = false;
  let beforeAck: BeforeAckHandler | undefined;
  /**
   * Payloads of messages the before-ack handler took. aedes wraps a PUBLISH into a new packet
   * object between authorization and delivery but keeps the payload buffer, so the buffer is
   * what identifies the message on the bus (a test checks this survives aedes upgrades).
   */
  const acceptedPayloads = new WeakSet<object>();
  /**
   * Payload buffers of the connected clients' last wills. aedes publishes a will with the very
   * buffer the CONNECT carried, so a bus message that is a will is recognised by identity (a test
   * pins this), as IoT Core's shadow service recognises and ignores LWT messages.
   */
  const willPayloads = new WeakSet<Buffer>();
  /**
   * Payload buffers of in-process messages addressed to one client id (`bus.publish`'s `to`):
   * fleet provisioning answers "through the same MQTT connection used to publish the API request",
   * and its answers carry private keys and ownership tokens that every other holder of the shared
   * claim certificate may subscribe to. Identified by buffer, as the wills are.
   */
  const addressedPayloads = new WeakMap<Buffer, string>();

  // ---- sessions -------------------------------------------------------------------------

  function newSession(client: Client): Session | undefined {
    const connectAttributes: string[] = [];
    if (!client.clean) connectAttributes.push('PersistentConnect');
    if (lastWillOf(client)) connectAttributes.push('LastWill');
    // What a connection has before its CONNECT is authorized, whichever way it authenticated.
    const fresh = {
      client,
      connectAttributes,
      identity: undefined,
      authorizer: undefined,
      decisions: new Map(),
      info: undefined,
      reason: undefined,
      disconnectPacket: undefined,
      quota: quotas.connection(),
    } satisfies Partial<Session>;
    const signed = signedStreams.get(client.conn);
    if (signed) {
      return {
        ...fresh,
        // The access key id: IoT Core's principal of a SigV4 connection (no certificate behind it).
        certificateId: signed.principalId,
        certificate: {},
        ipAddress: signed.sourceIp,
        signed,
      };
    }
    const socket = client.conn as tls.TLSSocket;
    if (typeof socket.getPeerCertificate !== 'function') return undefined;
    const peer = socket.getPeerCertificate();
    if (!peer?.raw) return undefined;
    const session: Session = {
      ...fresh,
      certificateId: createHash('sha256').update(peer.raw).digest('hex'),
      certificate: {
        subject: distinguishedName(peer.subject),
        issuer: distinguishedName(peer.issuer),
        ...(peer.serialNumber ? { serialNumber: peer.serialNumber } : {}),
        ...(peer.valid_from ? { notBefore: peer.valid_from } : {}),
        ...(peer.valid_to ? { notAfter: peer.valid_to } : {}),
      },
      ipAddress: socket.remoteAddress,
    };
    return session;
  }

  function track(session: Session): void {
    sessions.set(session.client, session);
    let set = byCertificate.get(session.certificateId);
    if (!set) {
      set = new Set();
      byCertificate.set(session.certificateId, set);
    }
    set.add(session);
    // A connection that closes after authentication but before aedes registers it never
    // reaches clientDisconnect; forget it when its socket closes.
    session.client.conn.once('close', () => {
      if (!session.info) untrack(session);
    });
  }

  function untrack(session: Session): void {
    sessions.delete(session.client);
    const set = byCertificate.get(session.certificateId);
    set?.delete(session);
    if (set?.size === 0) byCertificate.delete(session.certificateId);
  }

  /** The registry facts of the connection's thing: only when its client id names an attached thing. */
  function connectionThing(session: Session, identity: DeviceIdentity): ThingFacts | undefined {
    return identity.thingNames.includes(session.client.id) ? identity.things?.get(session.client.id) : undefined;
  }

  function policyContext(session: Session, identity: DeviceIdentity): PolicyContext {
    const thing = connectionThing(session, identity);
    return {
      region: account.region,
      accountId: account.accountId,
      clientId: session.client.id,
      thingNames: identity.thingNames,
      certificateId: session.certificateId,
      certificate: session.certificate,
      connectAttributes: session.connectAttributes,
      ...(session.ipAddress ? { sourceIp: session.ipAddress } : {}),
      ...domainNameOf(session),
      ...(thing
        ? {
            thing: {
              attributes: thing.attributes,
              ...(thing.thingTypeName === undefined ? {} : { thingTypeName: thing.thingTypeName }),
            },
          }
        : {}),
    };
  }

  /** `iot:DomainName`: the server name (SNI) the client's TLS handshake asked for, if it sent one. */
  function domainNameOf(session: Session): { domainName?: string } {
    const servername = (session.client.conn as tls.TLSSocket).servername;
    return typeof servername === 'string' && servername !== '' ? { domainName: servername } : {};
  }

  function setIdentity(session: Session, identity: DeviceIdentity): void {
    session.identity = identity;
    // A thing group's policies apply on top of the certificate's, to the connection of that thing only.
    const groupPolicies = connectionThing(session, identity)?.groupPolicies ?? [];
    const policies = groupPolicies.length === 0 ? identity.policies : [...identity.policies, ...groupPolicies];
    session.authorizer = compilePolicies(policies, policyContext(session, identity), { now });
    session.decisions.clear();
  }

  /** A SigV4 connection's context: no certificate and no thing, its own source address and server name. */
  function authorizeSigned(session: Session, signed: SignedPrincipal): void {
    const context: PolicyContext = {
      region: account.region,
      accountId: account.accountId,
      clientId: session.client.id,
      thingNames: [],
      connectAttributes: session.connectAttributes,
      ...(signed.sourceIp === undefined ? {} : { sourceIp: signed.sourceIp }),
      ...(signed.domainName === undefined ? {} : { domainName: signed.domainName }),
    };
    session.authorizer = compilePolicies(signed.policies, context, { now });
  }

  function decide(
    session: Session,
    action: IotAction,
    kind: 'client' | 'topic' | 'topicfilter',
    name: string,
  ): boolean {
    const key = `${action}\u0000${name}`;
    const cached = session.decisions.get(key);
    if (cached !== undefined) return cached;
    const decision: PolicyDecision = session.authorizer
      ? session.authorizer.authorize(action, iotResourceArn(account, kind, name))
      : { allowed: false, reason: 'implicit-deny' };
    // A decision that depends on the time of the request (aws:CurrentTime) holds for this request only.
    if (session.authorizer?.cacheable !== false) {
      if (session.decisions.size >= DECISION_CACHE_LIMIT) session.decisions.clear();
      session.decisions.set(key, decision.allowed);
    }
    if (!decision.allowed) {
      log.debug(
        { clientId: session.client.id, certificateId: session.certificateId, action, resource: name, ...decision },
        'policy denied',
      );
    }
    return decision.allowed;
  }

  /** Closes a session's connection, recording why (for its disconnected event). */
  function drop(session: Session, reason: DisconnectReason): void {
    session.reason ??= reason;
    // MQTT 5 can say why: a certificate or policy that no longer allows the connection is 0x87.
    const client = session.client;
    if (reason !== 'AUTH_ERROR' || client.version !== 5) {
      client.close();
    } else if (client.connected || !client.connecting) {
      client.disconnect({ reasonCode: MQTT5_REASON.NOT_AUTHORIZED });
    } else {
      // CONNACK sent, queued messages still going out: aedes would close without the DISCONNECT.
      client.once('connected', () => client.disconnect({ reasonCode: MQTT5_REASON.NOT_AUTHORIZED }));
    }
  }

  function identityChanged(certificateId: string): void {
    const set = byCertificate.get(certificateId);
    if (!set || set.size === 0) return;
    const identity = deps.identities.identityOf(certificateId);
    for (const session of [...set]) {
      if (identity?.status !== 'ACTIVE') {
        log.info(
          { clientId: session.client.id, certificateId, status: identity?.status ?? 'DELETED' },
          'closing connection of certificate no longer active',
        );
        drop(session, 'AUTH_ERROR');
        continue;
      }
      setIdentity(session, identity);
      if (!decide(session, 'iot:Connect', 'client', session.client.id)) {
        log.info({ clientId: session.client.id, certificateId }, 'closing connection no longer allowed to connect');
        drop(session, 'AUTH_ERROR');
      }
    }
  }

  // ---- aedes hooks ----------------------------------------------------------------------

  function markDuplicate(client: Client): void {
    const previous = registeredClient(aedes, client.id);
    if (previous && previous !== client) {
      const old = sessions.get(previous);
      if (old) old.reason ??= 'DUPLICATE_CLIENTID';
    }
  }

  const authenticate: NonNullable<ConstructorParameters<typeof Aedes>[0]>['authenticate'] = (client, _u, _p, done) => {
    if (Buffer.byteLength(client.id) > quotas.clientIdBytes) {
      quotas.hit('clientIdBytes', client.id.slice(0, 64));
      log.info({ clientId: client.id.slice(0, 64) }, 'connect refused: client id too long');
      // CONNACK 2 (identifier rejected); MQTT 5 0x85 (Client Identifier not valid).
      done(
        Object.assign(
          new BrokerError(BROKER_ERRORS.quotaExceeded, `client id longer than ${quotas.clientIdBytes} bytes`, {
            data: { quota: 'clientIdBytes' },
          }),
          { returnCode: IDENTIFIER_REJECTED },
        ),
        null,
      );
      return;
    }
    const session = newSession(client);
    if (!session) {
      done(connectRefusal(BROKER_ERRORS.noCertificate, 'no client certificate', { clientId: client.id }), null);
      return;
    }
    if (checks && session.signed) {
      authorizeSigned(session, session.signed);
      if (!decide(session, 'iot:Connect', 'client', client.id)) {
        const data = { clientId: client.id, principalId: session.certificateId };
        log.info(data, 'connect refused: iot:Connect denied');
        done(connectRefusal(BROKER_ERRORS.connectDenied, 'iot:Connect denied', data), null);
        return;
      }
    } else if (checks) {
      const identity = deps.identities.identityOf(session.certificateId);
      const data = { clientId: client.id, certificateId: session.certificateId };
      if (!identity) {
        log.info(data, 'connect refused: certificate unknown to the registry');
        done(connectRefusal(BROKER_ERRORS.unknownCertificate, 'certificate not registered', data), null);
        return;
      }
      if (identity.status !== 'ACTIVE') {
        log.info({ ...data, status: identity.status }, 'connect refused: certificate not active');
        done(connectRefusal(BROKER_ERRORS.inactiveCertificate, 'certificate not active', data), null);
        return;
      }
      setIdentity(session, identity);
      if (!decide(session, 'iot:Connect', 'client', client.id)) {
        log.info(data, 'connect refused: iot:Connect denied');
        done(connectRefusal(BROKER_ERRORS.connectDenied, 'iot:Connect denied', data), null);
        return;
      }
    }
    // After authentication: a CONNECT the certificate or policy refuses is answered for that (0x87,
    // CONNACK 5), and only an acceptable one uses the connect rates and the connection count.
    const overQuota = quotas.admitConnect(client.id, sessions.size, registeredClient(aedes, client.id) !== undefined);
    if (overQuota) {
      // MQTT 5 says which: 0x9F for a rate, 0x97 for the connection count. MQTT 3.1.1 has no such
      // code; IoT Core does not document its answer, and CONNACK 3 (server unavailable) is the one
      // that tells a client to come back later rather than to fix its credentials.
      refuseConnackWith(
        client.conn,
        overQuota.rate ? MQTT5_REASON.CONNECTION_RATE_EXCEEDED : MQTT5_REASON.QUOTA_EXCEEDED,
      );
      done(
        Object.assign(
          new BrokerError(BROKER_ERRORS.quotaExceeded, `quota exceeded: ${overQuota.quota}`, {
            data: { clientId: client.id, quota: overQuota.quota },
          }),
          { returnCode: SERVER_UNAVAILABLE },
        ),
        null,
      );
      return;
    }
    track(session);
    markDuplicate(client);
    done(null, true);
  };

  const authorizePublish: NonNullable<ConstructorParameters<typeof Aedes>[0]>['authorizePublish'] = (
    client,
    packet,
    done,
  ) => {
    if (!client) {
      done(null);
      return;
    }
    const session = sessions.get(client);
    const v5 = client.version === 5;
    // A will is authorized while its connection closes: refuse quietly, mark nothing.
    // MQTT 3.1.1 has no way to say why: IoT Core closes the connection, and so does aedes on an error.
    const refuse = (reason: DisconnectReason, code: string, message: string) => {
      if (session && !client.closed) session.reason ??= reason;
      log.info({ clientId: client.id, topic: packet.topic, code }, 'publish refused, closing connection');
      done(refusal(code, message, { clientId: client.id, topic: packet.topic }));
    };
    // MQTT 5, policy denied: aedes answers a QoS 1 PUBLISH with PUBACK 0x87 and drops a QoS 0 one,
    // and the connection stays open, as IoT Core does.
    const deny = (code: string, message: string) => {
      if (!v5) {
        refuse('AUTH_ERROR', code, message);
        return;
      }
      log.info({ clientId: client.id, topic: packet.topic, code }, 'publish refused (PUBACK 0x87 for QoS 1)');
      done(refusal(code, message, { clientId: client.id, topic: packet.topic }));
    };
    // MQTT 5, a reason code aedes has no path for: answered here, then dropped (neither
    // acknowledged again nor published by aedes).
    const answer = (reasonCode: number, code: string, message: string) => {
      log.info(
        { clientId: client.id, topic: packet.topic, code, reasonCode, reason: message },
        'publish refused with a reason code',
      );
      if (packet.qos === 1 && packet.messageId !== undefined) {
        writeMqtt5Packet(client, { cmd: 'puback', messageId: packet.messageId, reasonCode });
      }
      dropPublish(packet);
      done(null);
    };
    const disconnectWith = (reasonCode: number, code: string, message: string) => {
      if (session && !client.closed) session.reason ??= 'CLIENT_ERROR';
      log.info(
        { clientId: client.id, topic: packet.topic, code, reasonCode },
        `publish refused, disconnecting: ${message}`,
      );
      dropPublish(packet);
      client.disconnect({ reasonCode });
      done(null);
    };
    const size = packet.payload ? Buffer.byteLength(packet.payload as Buffer | string) : 0;
    if (size > quotas.messageBytes) {
      quotas.hit('messageBytes', client.id);
      const message = `payload of ${size} bytes exceeds ${quotas.messageBytes}`;
      if (v5) disconnectWith(MQTT5_REASON.PACKET_TOO_LARGE, BROKER_ERRORS.payloadTooLarge, message);
      else refuse('CLIENT_ERROR', BROKER_ERRORS.payloadTooLarge, message);
      return;
    }
    const topic = packet.topic;
    const invalid = checkTopicName(topic, quotas.topicLimits);
    if (invalid) {
      const sizeQuota = topicSizeQuota(invalid);
      if (sizeQuota) quotas.hit(sizeQuota, client.id);
      if (v5) answer(MQTT5_REASON.TOPIC_NAME_INVALID, BROKER_ERRORS.invalidTopic, invalid);
      else refuse('CLIENT_ERROR', BROKER_ERRORS.invalidTopic, invalid);
      return;
    }
    // Reserved topics only where IoT Core allows Publish: no forged presence events or shadow responses.
    if (!isPublishableTopic(topic)) {
      if (v5) answer(MQTT5_REASON.TOPIC_NAME_INVALID, BROKER_ERRORS.reservedTopic, 'topic is reserved for the broker');
      else refuse('AUTH_ERROR', BROKER_ERRORS.reservedTopic, 'topic is reserved for the broker');
      return;
    }
    const throttled =
      quotas.admitPublish(session?.quota, size, client.id) ??
      (packet.retain && size > 0 && retainedIndex.get(topic) === undefined
        ? quotas.admitRetained(retainedIndex.size, client.id)
        : undefined);
    if (throttled) {
      // IoT Core keeps the connection. MQTT 5: a QoS 1 PUBLISH gets PUBACK 0x97 (Quota exceeded).
      // MQTT 3.1.1 has no failure PUBACK: none is sent, so the client still holds the message and
      // sends it again. QoS 0 is dropped. Not logged here: the counters log it, summarised.
      if (v5 && packet.qos === 1 && packet.messageId !== undefined) {
        writeMqtt5Packet(client, {
          cmd: 'puback',
          messageId: packet.messageId,
          reasonCode: MQTT5_REASON.QUOTA_EXCEEDED,
        });
      }
      dropPublish(packet);
      done(null);
      return;
    }
    if (!checks) {
      done(null);
      return;
    }
    if (packet.qos === 2) {
      // MQTT 5: a QoS above the CONNACK's Maximum QoS is answered with DISCONNECT 0x9B (MQTT 5.0 3.2.2.3.4).
      if (v5) disconnectWith(MQTT5_REASON.QOS_NOT_SUPPORTED, BROKER_ERRORS.qosNotSupported, 'QoS 2 is not supported');
      else refuse('CLIENT_ERROR', BROKER_ERRORS.qosNotSupported, 'QoS 2 is not supported');
      return;
    }
    if (
      !session ||
      !decide(session, 'iot:Publish', 'topic', topic) ||
      (packet.retain && !decide(session, 'iot:RetainPublish', 'topic', topic))
    ) {
      deny(BROKER_ERRORS.publishDenied, packet.retain ? 'iot:Publish/iot:RetainPublish denied' : 'iot:Publish denied');
      return;
    }
    acceptThenAck(client, packet, done);
  };

  /**
   * aedes (1.x and 2) writes PUBACK first and publishes afterwards, so a QoS 1 message acknowledged to a
   * device was only in memory: a crash then lost it, and the device had already deleted it. The
   * before-ack handler runs here instead, in the authorization step that precedes the PUBACK.
   */
  function acceptThenAck(client: Client, packet: PublishPacket, done: (err: Error | null) => void): void {
    const handler = beforeAck;
    if (packet.qos !== 1 || handler === undefined || client.closed) {
      done(null);
      return;
    }
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    packet.payload = payload;
    let pending: Promise<void> | undefined;
    try {
      pending = handler({
        topic: packet.topic,
        payload,
        qos: 1,
        retain: packet.retain,
        clientId: client.id,
        acceptedBeforeAck: true,
        lastWill: willPayloads.has(payload),
        properties: messagePropertiesOf(packet),
      });
    } catch (err) {
      pending = Promise.reject(err);
    }
    if (pending === undefined) {
      done(null);
      return;
    }
    acceptedPayloads.add(payload);
    pending.then(
      () => done(null),
      (err: unknown) => {
        // Not durable, so not acknowledged: closing without PUBACK makes the client send it again.
        acceptedPayloads.delete(payload);
        log.warn({ err, clientId: client.id, topic: packet.topic }, 'message not accepted, closing without PUBACK');
        const session = sessions.get(client);
        if (session && !client.closed) session.reason ??= 'SERVER_ERROR';
        if (client.version === 5) {
          // aedes would answer an MQTT 5 error with PUBACK 0x87, which tells the device to give the
          // message up; a DISCONNECT (0x80) without PUBACK keeps it in the device's session instead.
          dropPublish(packet);
          client.disconnect({ reasonCode: MQTT5_REASON.UNSPECIFIED_ERROR });
          done(null);
          return;
        }
        done(refusal(BROKER_ERRORS.notAccepted, 'message could not be made durable', { clientId: client.id }));
      },
    );
  }

  const authorizeSubscribe: NonNullable<ConstructorParameters<typeof Aedes>[0]>['authorizeSubscribe'] = (
    client,
    sub,
    done,
  ) => {
    if (overQuotaFilters.has(sub)) {
      done(null, null);
      return;
    }
    const subscriptionIdentifier = subscriptionIdentifierOf(sub);
    if (subscriptionIdentifier !== undefined && client.version === 5) {
      // The CONNACK said Subscription Identifiers Available 0; MQTT 5.0 (3.2.2.3.12) answers a
      // SUBSCRIBE that carries one anyway with DISCONNECT 0xA1.
      log.info(
        { clientId: client.id, filter: sub.topic, subscriptionIdentifier },
        'subscription identifier refused, disconnecting',
      );
      const session = sessions.get(client);
      if (session && !client.closed) session.reason ??= 'CLIENT_ERROR';
      client.disconnect({ reasonCode: MQTT5_REASON.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED });
      done(null, null);
      return;
    }
    // `$share/...` (renamed before aedes saw it): iot:Subscribe is checked on `$share/{group}/{filter}`.
    const shared = shares.authorize(client, sub, (resource) => {
      if (!checks) return true;
      const session = sessions.get(client);
      return session !== undefined && decide(session, 'iot:Subscribe', 'topicfilter', resource);
    });
    if (shared !== undefined) {
      done(null, shared);
      return;
    }
    const invalid = checkTopicFilter(sub.topic, quotas.topicLimits);
    if (invalid) {
      const sizeQuota = topicSizeQuota(invalid);
      if (sizeQuota) quotas.hit(sizeQuota, client.id);
      log.debug({ clientId: client.id, filter: sub.topic, reason: invalid }, 'subscribe refused: invalid filter');
      done(null, null);
      return;
    }
    if (!checks) {
      done(null, sub);
      return;
    }
    const session = sessions.get(client);
    if (!session || !decide(session, 'iot:Subscribe', 'topicfilter', sub.topic)) {
      done(null, null);
      return;
    }
    // IoT Core grants at most QoS 1.
    const granted: Subscription = sub.qos > 1 ? { ...sub, qos: 1 } : sub;
    done(null, granted);
  };

  const authorizeForward: NonNullable<ConstructorParameters<typeof Aedes>[0]>['authorizeForward'] = (
    client,
    packet,
  ) => {
    const to = Buffer.isBuffer(packet.payload) ? addressedPayloads.get(packet.payload) : undefined;
    if (to !== undefined && client.id !== to) return null;
    if (checks) {
      const session = sessions.get(client);
      if (!session || !decide(session, 'iot:Receive', 'topic', packet.topic)) return null;
    }
    counts.messagesDelivered++;
    return packet;
  };

  /**
   * Before aedes handles a SUBSCRIBE: the QoS is capped at 1 (see preConnect), and the filters the
   * subscription quotas refuse are marked, to be refused by authorizeSubscribe and answered 0x97
   * over MQTT 5 (see `rewriteSuback`). The whole packet is seen here, which the per-filter hook is not.
   */
  const beforeSubscribe = (client: Client, packet: InboundPacket) => {
    if (packet.cmd !== 'subscribe') return;
    const subs = packet.subscriptions;
    for (const sub of subs) if (sub.qos > 1) sub.qos = 1;
    const held = heldFilters(client);
    let fresh = 0;
    for (const sub of subs) if (!Object.hasOwn(held, sub.topic)) fresh++;
    const refusal = quotas.admitSubscribe(subs.length, fresh, Object.keys(held).length, client.id);
    if (!refusal) return;
    // Filters per SUBSCRIBE: the whole packet. The other quotas: the last new filters, over the count.
    let left = refusal.refused;
    for (let i = subs.length - 1; i >= 0 && left > 0; i--) {
      const sub = subs[i] as Subscription;
      if (refusal.quota !== 'topicFiltersPerSubscribe' && Object.hasOwn(held, sub.topic)) continue;
      overQuotaFilters.add(sub);
      left--;
    }
    if (client.version === 5 && packet.messageId !== undefined) {
      let pending = overQuotaSubscribes.get(client);
      if (!pending) {
        pending = new Map();
        overQuotaSubscribes.set(client, pending);
      }
      pending.set(packet.messageId, packet);
    }
  };

  /** An MQTT 5 SUBACK says 0x97 (Quota exceeded) for the filters a quota refused, not aedes's 0x87. */
  function rewriteSuback(client: Client, suback: WrittenSuback): void {
    const pending = overQuotaSubscribes.get(client);
    const packet = pending?.get(suback.messageId);
    if (!pending || !packet) return;
    pending.delete(suback.messageId);
    packet.subscriptions.forEach((sub, i) => {
      if (overQuotaFilters.has(sub) && suback.granted[i] === MQTT5_REASON.NOT_AUTHORIZED) {
        suback.granted[i] = MQTT5_REASON.QUOTA_EXCEEDED;
      }
    });
  }

  /**
   * IoT Core keeps an MQTT 5 keep-alive within 30–1200 s and says so with Server Keep Alive in the
   * CONNACK (0, no keep-alive, becomes 1200). aedes's `keepaliveLimit` would do the v5 half but also
   * refuse MQTT 3.1.1 clients outside it, which IoT Core does not, so the value is set here.
   */
  const preConnect: NonNullable<ConstructorParameters<typeof Aedes>[0]>['preConnect'] = (client, packet, done) => {
    if (packet.protocolVersion === 5) {
      const asked = packet.keepalive ?? 0;
      const { minKeepAliveSeconds: min, maxKeepAliveSeconds: max } = MQTT5_SERVER_LIMITS;
      if (asked === 0 || asked > max) setServerKeepAlive(client, max);
      else if (asked < min) setServerKeepAlive(client, min);
    }
    // IoT Core grants at most QoS 1. aedes answers a SUBSCRIBE with the QoS it asked for, whatever
    // authorizeSubscribe grants, so the request itself is lowered before aedes reads it (SUBACK,
    // stored session and deliveries then agree). Registered while the CONNECT is handled: any
    // SUBSCRIBE after it in the same read is emitted later.
    beforeAedesHandles(client, (packet) => beforeSubscribe(client, packet));
    done(null, true);
  };

  /**
   * The CONNACK capabilities aedes does not advertise itself (see advertiseOnConnack), over aedes's
   * Shared Subscription Available 0: shared subscriptions are served by shared-subscriptions.ts.
   */
  const capabilities: ConnackCapabilities = Object.freeze({
    maximumQoS: 1,
    retainAvailable: true,
    wildcardSubscriptionAvailable: true,
    subscriptionIdentifiersAvailable: false,
    sharedSubscriptionAvailable: true,
  });
  const connackCapabilities = (): ConnackCapabilities => capabilities;

  const retainedIndex = new RetainedIndex<RetainedPacket>();
  const aedes = new Aedes({
    // IoT Core allows 128-byte client ids (aedes's default of 23 is MQTT 3.1's, the only version it
    // checks); authenticate checks the quota for every version.
    maxClientsIdLength: Math.min(quotas.clientIdBytes, 65_535),
    persistence: withRetainedIndex(memoryPersistence(), retainedIndex),
    // MQTT 5 (aedes ignores these for 3.1.1): advertised in the CONNACK; aedes enforces the topic
    // alias range (DISCONNECT 0x94) and the packet size (DISCONNECT 0x95), not the receive maximum.
    topicAliasMaximum: MQTT5_SERVER_LIMITS.topicAliasMaximum,
    maximumPacketSize: MQTT5_SERVER_LIMITS.maximumPacketSize,
    receiveMaximum: MQTT5_SERVER_LIMITS.receiveMaximum,
    sessionExpiryIntervalLimit: sessionExpirySeconds,
    preConnect,
    authenticate,
    authorizePublish,
    authorizeSubscribe,
    authorizeForward,
  });
  const shares = createSharedSubscriptions({
    bus: aedes,
    // Each delivery to a group member is authorized as any delivery is (iot:Receive on the topic).
    canReceive: (client, topic) => {
      if (!checks) return true;
      const session = sessions.get(client);
      return session !== undefined && decide(session, 'iot:Receive', 'topic', topic);
    },
    logger: log,
  });

  // ---- stack guard ----------------------------------------------------------------------

  // aedes's message bus (mqemitter) runs at most 100 messages at a time and queues the rest; when
  // one completes (aedes's `published` hook, the publishing client's `nextBatch`) it starts the
  // next queued one from inside that completion. A message whose listeners all finish
  // synchronously (none match, or only synchronous bus subscribers) completes at once and starts
  // the next: six frames deeper per queued message. Thousands queued behind a slow
  // (backpressured) in-process subscriber overflowed the stack. Deferring our hooks' callbacks
  // would not help: the chain runs through mqemitter, not through them. This listener sees every
  // message and lets every UNWIND_EVERY-th message of one synchronous run complete from
  // setImmediate, which ends the chain; the rest complete synchronously as before, so a message
  // outside such a run gains no latency.
  let syncRun = 0;
  const endRun = () => {
    syncRun = 0;
  };
  const unwindGuard = (_packet: AedesPublishPacket, cb: () => void) => {
    if (syncRun === 0) queueMicrotask(endRun);
    if (++syncRun % UNWIND_EVERY === 0) setImmediate(cb);
    else cb();
  };
  aedes.subscribe('#', unwindGuard, () => {});

  // ---- packet size guard ----------------------------------------------------------------

  /**
   * Closes a connection whose next packet declares more than the broker accepts (see
   * packet-guard.ts), as IoT Core closes one that sends a message over 128 KB. It watches the bytes
   * aedes reads: with aedes's 'readable' listener on the socket, a 'data' listener is called with
   * each chunk `read()` returns and does not make the stream flow (Node.js stream docs, "Choose
   * one API style"), so the guard sees exactly what the parser gets, before the parser buffers it.
   */
  function guardPacketSize(socket: Duplex, remoteAddress: string | undefined): void {
    const guard = createPacketSizeGuard();
    const onData = (chunk: Buffer) => {
      const scan = guard.scan(chunk);
      if (scan.ok) return;
      socket.off('data', onData);
      const session = [...sessions.values()].find((s) => s.client.conn === socket);
      log.info(
        { clientId: session?.client.id, remoteAddress, ...scan },
        'packet refused from its fixed header (too large or malformed), closing connection',
      );
      if (session?.client.version === 5 && session.client.connected) {
        // MQTT 5 says why: DISCONNECT 0x95 (Packet too large), as IoT Core does.
        session.reason ??= 'CLIENT_ERROR';
        session.client.disconnect({
          reasonCode: scan.reason === 'too-large' ? MQTT5_REASON.PACKET_TOO_LARGE : MQTT5_REASON.MALFORMED_PACKET,
        });
      } else if (session) drop(session, 'CLIENT_ERROR');
      else socket.destroy();
    };
    socket.on('data', onData);
  }

  // ---- in-flight window -----------------------------------------------------------------

  /**
   * IoT Core's in-flight quota: at most `inFlightMessagesPerClient` QoS 1 messages sent to a client
   * and not acknowledged; the rest wait, in order, until PUBACKs free slots (AWS: further messages
   * are delayed, not dropped). aedes sends without such a window, so the client's QoS 1 delivery
   * function is wrapped: a message over the window waits here and the bus moves on. A message is
   * matched to its write by aedes's message counter, so one the writer does not send (refused
   * by iot:Receive, expired) gives its slot back. Waiting messages of a clean session are gone with
   * its connection, as its queue is; a persistent session's are in aedes's store already.
   */
  function windowDeliveries(client: Client, socket: Duplex): void {
    const limit = quotas.inFlightPerClient;
    if (limit === undefined) return;
    // aedes numbers the messages of one broker (brokerCounter); this broker is the only one, so the
    // counter alone is the key (a number: 0.19 µs per delivery through the window, 0.56 with a string key, measured).
    const keyOf = (p: { readonly brokerCounter?: unknown }) => p.brokerCounter;
    const scheduled = new Set<unknown>();
    gateQosDeliveries(client, (original) => {
      const send = (packet: AedesPublishPacket, done: () => void) => {
        const key = keyOf(packet);
        scheduled.add(key);
        original(packet, () => {
          if (scheduled.delete(key)) window.settled(false);
          done();
        });
      };
      const window = new DeliveryWindow<AedesPublishPacket>(limit, (packet) => send(packet, noop));
      onDeliveryWritten(socket, (written) => {
        if (written.qos !== 1) return;
        if (scheduled.delete(keyOf(written))) window.settled(true);
        else window.sentOutside();
      });
      beforeAedesHandles(client, (packet) => {
        if (packet.cmd === 'puback') window.acknowledged();
      });
      return (packet, done) => {
        if (packet.qos === 0) {
          original(packet, done);
          return;
        }
        if (window.offer(packet)) {
          send(packet, done);
          return;
        }
        quotas.hit('inFlightMessagesPerClient', client.id);
        done();
      };
    });
  }

  // ---- presence -------------------------------------------------------------------------

  function publishPresence(topic: string, event: object): void {
    aedes.publish(
      { cmd: 'publish', topic, payload: Buffer.from(JSON.stringify(event)), qos: 1, retain: false, dup: false },
      (err) => {
        if (err) log.debug({ err, topic }, 'presence event not published');
      },
    );
  }

  aedes.on('client', (client) => {
    const will = lastWillOf(client);
    if (will && Buffer.isBuffer(will.payload)) willPayloads.add(will.payload);
    // A persistent MQTT 3.1.1 session resumed in time does not expire.
    const timer = expiring.get(client.id);
    if (timer) {
      clearTimeout(timer);
      expiring.delete(client.id);
    }
    const session = sessions.get(client);
    if (!session) return;
    onDisconnectPacket(client, (reasonCode) => {
      session.disconnectPacket ??= reasonCode;
    });
    const versionNumber = versionNumbers.get(client.id) ?? 0;
    versionNumbers.set(client.id, versionNumber + 1);
    const info: SessionInfo = {
      clientId: client.id,
      certificateId: session.certificateId,
      thingName: session.identity
        ? connectionThingName({
            region: account.region,
            accountId: account.accountId,
            clientId: client.id,
            thingNames: session.identity.thingNames,
          })
        : undefined,
      sessionIdentifier: randomUUID(),
      ipAddress: session.ipAddress,
      versionNumber,
      connectedAt: now(),
      protocol: client.version === 5 ? '5' : '3.1.1',
    };
    session.info = info;
    connected.set(client.id, info);
    counts.connects++;
    log.debug({ clientId: client.id, certificateId: session.certificateId }, 'client connected');
    if (hasPresenceEvents(client.id)) {
      const { topic, event } = connectedEvent(info, now());
      publishPresence(topic, event);
    }
    for (const listener of connectedListeners) listener(info);
  });

  // aedes emits this once a message is on the bus (refused and dropped ones never get here).
  aedes.on('publish', (_packet, client) => {
    if (client) counts.messagesReceived++;
  });

  aedes.on('keepaliveTimeout', (client) => {
    const session = sessions.get(client);
    if (session) session.reason ??= 'MQTT_KEEP_ALIVE_TIMEOUT';
  });

  aedes.on('clientDisconnect', (client) => {
    const session = sessions.get(client);
    if (!session) return;
    untrack(session);
    const info = session.info;
    if (!info) return;
    if (connected.get(client.id) === info) connected.delete(client.id);
    expireLater(client);
    const reason: DisconnectReason =
      session.reason ??
      (stopping
        ? 'SERVER_INITIATED_DISCONNECT'
        : // An MQTT 5 DISCONNECT asking for the will (0x04) is still the client's own disconnect.
          disconnectedCleanly(client) || session.disconnectPacket !== undefined
          ? 'CLIENT_INITIATED_DISCONNECT'
          : // Any other DISCONNECT aedes sent an MQTT 5 client (topic alias 0x94, packet size 0x95,
            // protocol error 0x82) was the client's fault.
            client.version === 5 && client.disconnectReasonCode !== null && client.disconnectReasonCode > 0
            ? 'CLIENT_ERROR'
            : 'CONNECTION_LOST');
    log.debug({ clientId: client.id, reason }, 'client disconnected');
    disconnects[reason] = (disconnects[reason] ?? 0) + 1;
    if (hasPresenceEvents(client.id)) {
      const { topic, event } = disconnectedEvent(info, reason, now());
      publishPresence(topic, event);
    }
    for (const listener of disconnectedListeners) listener(info, reason);
  });

  /**
   * aedes keeps an MQTT 3.1.1 persistent session (clean session 0) forever; IoT Core discards it,
   * queued messages included, once the persistent session expiry period passes without a
   * reconnect. (aedes expires MQTT 5 sessions itself, clamped to the same period.)
   */
  function expireLater(client: Client): void {
    if (client.version === 5 || client.clean || stopping || aedes.closed) return;
    const clientId = client.id;
    const previous = expiring.get(clientId);
    if (previous) clearTimeout(previous);
    const timer = setTimeout(() => {
      expiring.delete(clientId);
      if (registeredClient(aedes, clientId)) return;
      log.debug({ clientId }, 'persistent session expired');
      wipeSession(aedes, client);
    }, sessionExpirySeconds * 1_000);
    timer.unref();
    expiring.set(clientId, timer);
  }

  aedes.on('clientError', (client, err) => {
    log.debug({ clientId: client.id, err: err.message }, 'client error');
  });
  aedes.on('connectionError', (_client, err) => {
    log.debug({ err: err.message }, 'connection error before CONNECT');
  });
  // aedes's types leave out the 'error' event its EventEmitter base has.
  const emitter: NodeJS.EventEmitter = aedes;
  emitter.on('error', (err: Error) => {
    log.error({ err }, 'broker error');
  });

  // ---- bus ------------------------------------------------------------------------------

  const bus: BrokerBus = {
    publish(topic, payload, options = {}) {
      const packet: PublishPacket = {
        cmd: 'publish',
        topic,
        payload: typeof payload === 'string' ? Buffer.from(payload) : Buffer.from(payload),
        qos: options.qos ?? 0,
        retain: options.retain ?? false,
        dup: false,
      };
      if (options.to !== undefined) addressedPayloads.set(packet.payload as Buffer, options.to);
      if (options.properties && options.properties !== NO_PROPERTIES) {
        packet.properties = { ...options.properties } as NonNullable<PublishPacket['properties']>;
      }
      return new Promise((resolve, reject) => {
        if (aedes.closed) {
          reject(new BrokerError(BROKER_ERRORS.notStarted, 'broker is not running', { data: { topic } }));
          return;
        }
        aedes.publish(packet, (err) => (err ? reject(err) : resolve()));
      });
    },
    subscribe(filter, handler) {
      const wildcardFirst = filter.startsWith('+') || filter.startsWith('#');
      const deliver = (packet: AedesPublishPacket, cb: () => void) => {
        if (wildcardFirst && packet.topic.startsWith('$')) {
          cb();
          return;
        }
        const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
        const message: BusMessage = {
          topic: packet.topic,
          payload,
          qos: packet.qos,
          retain: packet.retain,
          clientId: publisherOf(packet),
          acceptedBeforeAck: acceptedPayloads.has(payload),
          lastWill: willPayloads.has(payload),
          properties: messagePropertiesOf(packet),
        };
        let result: void | Promise<void>;
        try {
          result = handler(message);
        } catch (err) {
          log.error({ err, topic: packet.topic, filter }, 'in-process subscriber failed');
          cb();
          return;
        }
        if (result && typeof result.then === 'function') {
          result.then(cb, (err: unknown) => {
            log.error({ err, topic: packet.topic, filter }, 'in-process subscriber failed');
            cb();
          });
        } else {
          cb();
        }
      };
      return new Promise((resolve) => {
        aedes.subscribe(filter, deliver, () =>
          resolve(() => new Promise<void>((done) => aedes.unsubscribe(filter, deliver, () => done()))),
        );
      });
    },
    acceptBeforeAck(handler) {
      if (beforeAck !== undefined) {
        throw new BrokerError(BROKER_ERRORS.handlerInstalled, 'a before-ack handler is already installed');
      }
      beforeAck = handler;
      return () => {
        if (beforeAck === handler) beforeAck = undefined;
      };
    },
    onClientConnected(listener) {
      connectedListeners.add(listener);
      return () => connectedListeners.delete(listener);
    },
    onClientDisconnected(listener) {
      disconnectedListeners.add(listener);
      return () => disconnectedListeners.delete(listener);
    },
    sessions: () => new Map(connected),
    session: (clientId) => connected.get(clientId),
  };

  // ---- lifecycle ------------------------------------------------------------------------

  async function open(): Promise<void> {
    if (opened) return;
    if (aedes.closed && stopping) throw new BrokerError(BROKER_ERRORS.notStarted, 'a stopped broker cannot reopen');
    opened = true;
    stopping = false;
    await aedes.listen();
    removeIdentityListener = deps.identities.onIdentityChange(identityChanged);
  }

  /** Hands one connection's stream to aedes with the broker's hooks on it (TLS socket or WebSocket stream). */
  function serve(stream: Duplex, remoteAddress: string | undefined): void {
    advertiseOnConnack(stream, connackCapabilities);
    const client = aedes.handle(stream);
    windowDeliveries(client, stream);
    onSubackWritten(stream, (suback) => rewriteSuback(client, suback));
    shares.attach(client);
    // After handle(): aedes's 'readable' listener must already be there (see guardPacketSize).
    guardPacketSize(stream, remoteAddress);
  }

  return {
    bus,
    open,
    serveSigned(stream, principal) {
      if (!server || stopping || aedes.closed) {
        stream.destroy();
        return;
      }
      signedStreams.set(stream, principal);
      // Until CONNECT it is no aedes client: stop() ends it with the sockets that never connected.
      sockets.add(stream);
      stream.once('close', () => sockets.delete(stream));
      serve(stream, principal.sourceIp);
    },
    disconnectClient(clientId) {
      const client = registeredClient(aedes, clientId);
      if (!client) return false;
      client.conn.destroy();
      return true;
    },
    retained(topic) {
      const packet = retainedIndex.get(topic);
      if (!packet) return undefined;
      // An MQTT 5 retained message with a message expiry is gone once it passes, as aedes treats
      // it for a new subscriber (aedes drops it from the store only then).
      const expiry = messageExpiryOf(packet);
      if (expiry !== undefined && expiry <= Date.now()) return undefined;
      const { payload } = packet;
      return {
        topic: packet.topic,
        payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload),
        qos: packet.qos ?? 0,
      };
    },
    queuedMessages: () => queuedMessages(aedes),
    stats: () => ({ ...counts, connections: connected.size, disconnects: { ...disconnects } }),
    async start() {
      if (server) throw new BrokerError('BROKER_ALREADY_STARTED', 'broker already started');
      await open();
      const srv = tls.createServer({
        ca: deps.tls.caCertPem,
        cert: deps.tls.serverCertPem,
        key: deps.tls.serverKeyPem,
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
        handshakeTimeout: 10_000,
      });
      srv.on('connection', (socket: Socket) => {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
      });
      srv.on('secureConnection', (socket) => {
        socket.setNoDelay(true);
        serve(socket, socket.remoteAddress);
      });
      srv.on('tlsClientError', (err, socket) => {
        log.debug({ err: err.message, remoteAddress: socket.remoteAddress }, 'TLS handshake refused');
      });
      server = srv;
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(deps.port, deps.host, () => {
          srv.off('error', reject);
          resolve();
        });
      });
      const address = srv.address() as AddressInfo;
      log.info({ host: deps.host, port: address.port, policyChecks: checks }, 'broker listening');
      return { host: deps.host, port: address.port };
    },
    async stop() {
      if (!opened) return;
      opened = false;
      const srv = server;
      server = undefined;
      stopping = true;
      removeIdentityListener?.();
      removeIdentityListener = undefined;
      for (const timer of expiring.values()) clearTimeout(timer);
      expiring.clear();
      const closed = srv ? new Promise<void>((resolve) => srv.close(() => resolve())) : Promise.resolve();
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      // Connections that never completed CONNECT are not aedes clients; end them too.
      for (const socket of sockets) socket.destroy();
      await closed;
      log.info({}, 'broker stopped');
    },
  };
}
