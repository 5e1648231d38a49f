import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';
import type {
  Aedes,
  AedesPublishPacket,
  Client,
  PublishPacket,
  SubscribePacket,
  Subscription,
  UnsubscribePacket,
} from 'aedes';
import aedesMemoryPersistence from 'aedes-persistence';

/**
 * Everything the broker reads or changes of aedes 2 (2.0.0-beta.1, MQTT 5) that aedes's types do not
 * declare, in one place. Each accessor is pinned by cloud/test/broker/aedes-internals.test.ts against
 * a live aedes, so an upgrade (the GA release) that moves one fails there by name; nothing else in
 * the broker reaches past aedes's declared API.
 *
 * - `aedes.clients`: registered clients by id. aedes keeps it to close the older of two
 *   connections with one client id; the broker uses it to tell that takeover apart from other
 *   disconnects, and to drop one client's connection at the transport.
 * - `client._will`: the CONNECT's last will, set when the CONNECT is parsed (before
 *   authentication, where the policy's `LastWill` connect attribute needs it) and kept until the
 *   connection closes. aedes publishes the will with this very packet, payload buffer included.
 * - `client._disconnected`: set when the client sent DISCONNECT without asking for its will (aedes's
 *   own test for whether to publish the will). An MQTT 5 DISCONNECT with reason 0x04 leaves it
 *   unset, so the DISCONNECT itself is watched on `client._parser` (see `onDisconnectPacket`).
 * - `client._serverKeepAlive`: the MQTT 5 Server Keep Alive aedes puts in the CONNACK and uses. aedes
 *   sets it only from its `keepaliveLimit` option, which also refuses MQTT 3.1.1 clients outside the
 *   limit; IoT Core instead clamps a v5 keep-alive into 30–1200 s, so the broker sets it itself.
 * - `packet._notAuthorized`: aedes's mark on a PUBLISH it must neither acknowledge nor publish (its v5
 *   answer to a refused publish). The broker sets it when it has answered the PUBLISH itself with a
 *   reason code aedes does not give (0x90), or is disconnecting the client (0x95, 0x9B).
 * - `sub.subscriptionIdentifier`: aedes copies a SUBSCRIBE's Subscription Identifier onto each
 *   subscription before authorization.
 * - `packet.messageExpiry`: the absolute expiry aedes stamps on a message with an MQTT 5 message
 *   expiry interval (kept on queued and retained packets).
 * - `aedes._wipeSession(client)`: what aedes does when an MQTT 5 session expires (subscriptions,
 *   queued messages, will). aedes keeps an MQTT 3.1.1 persistent session forever; IoT Core ends it
 *   after the persistent session expiry period, so the broker expires it with the same call.
 * - `aedes.mq.length`: messages mqemitter queued behind the ones in flight.
 * - `packet.clientId`: the publishing client's id, which aedes adds to a client's PUBLISH before
 *   it reaches the bus (absent for in-process publishes).
 * - the CONNACK's capability properties: aedes 2 writes a fixed set (and "shared subscriptions not
 *   available") with no hook to change them, so `advertiseOnConnack` adds IoT Core's (Maximum QoS
 *   1, no Subscription Identifiers, ...) where aedes serializes the CONNACK: mqtt-packet's
 *   `writeToStream`, the instance aedes itself imports, wrapped once per process. The wrapper
 *   touches only CONNACK packets written to a stream registered here, which no MQTT client writes.
 * - `client._parser` 'packet' (shared subscriptions): a listener put before aedes's own rewrites a
 *   SUBSCRIBE or UNSUBSCRIBE before aedes handles it (see `beforeAedesHandles`); the same writer wrap
 *   as the CONNACK's shows the PUBLISH packets aedes writes to a client (`onPublishWritten`).
 * - `client.subscriptions`: the filters a client holds, by filter (the subscriptions-per-connection
 *   quota counts them).
 * - `client.deliverQoS`: aedes's per-client QoS 1 delivery (assigned in the Client constructor,
 *   captured by each subscription); the in-flight window of quotas.ts wraps it (`gateQosDeliveries`).
 * - quota refusals (quotas.ts): aedes maps an authenticate error to an MQTT 5 CONNACK reason only
 *   from a 3.1.1 return code, and answers a refused subscription 0x87; the same writer wrap puts
 *   IoT Core's 0x9F/0x97 in a refusal CONNACK (`refuseConnackWith`) and 0x97 in a SUBACK
 *   (`onSubackWritten`) on streams registered here.
 * - `aedes-persistence`: the in-memory persistence aedes creates when given none (a dependency
 *   of ours at the range aedes itself uses); its callback-style declaration types `storeRetained`
 *   with a callback aedes does not pass, hence the narrower interface below.
 */

interface AedesState {
  readonly clients: Readonly<Record<string, Client | undefined>>;
  readonly mq: { readonly length: number };
  _wipeSession(client: Client): void;
}

interface ClientState {
  readonly _will?: WillPacket | null;
  readonly _disconnected?: boolean;
  _serverKeepAlive?: number;
  readonly _parser?: EventEmitter;
}

/** A client's last will as aedes keeps it (the CONNECT's will). */
export interface WillPacket {
  readonly topic: string;
  readonly payload: Buffer | string;
  readonly qos: 0 | 1 | 2;
  readonly retain: boolean;
}

/** The client registered under an id, if one is. */
export function registeredClient(aedes: Aedes, clientId: string): Client | undefined {
  const clients = (aedes as unknown as AedesState).clients;
  return Object.hasOwn(clients, clientId) ? clients[clientId] : undefined;
}

/** The client's last will, from its CONNECT until its connection closes. */
export function lastWillOf(client: Client): WillPacket | undefined {
  return (client as unknown as ClientState)._will ?? undefined;
}

/** Whether the client ended its connection with DISCONNECT. */
export function disconnectedCleanly(client: Client): boolean {
  return (client as unknown as ClientState)._disconnected === true;
}

/** Messages accepted by aedes's bus and waiting for an in-flight slot. */
export function queuedMessages(aedes: Aedes): number {
  return (aedes as unknown as AedesState).mq.length;
}

/** The id of the MQTT client that published a message; undefined for in-process publishes. */
export function publisherOf(packet: AedesPublishPacket): string | undefined {
  const clientId = (packet as PublishPacket & { clientId?: unknown }).clientId;
  return typeof clientId === 'string' ? clientId : undefined;
}

/**
 * The parts of an aedes persistence (aedes-persistence's `CallBackPersistence`) the broker
 * touches: the retained-message methods aedes calls, and `setup`, which aedes requires to be an
 * async function. aedes (1.x and 2) calls `storeRetained(packet)` without a callback and awaits the
 * promise it returns.
 */
export interface AedesPersistence {
  setup(broker: Aedes): Promise<unknown>;
  storeRetained(packet: never, cb?: never): unknown;
  createRetainedStream(pattern: string): Readable;
  createRetainedStreamCombi(patterns: string[]): Readable;
}

/** A new in-memory persistence, the one aedes creates when given none. */
export function memoryPersistence(): AedesPersistence {
  // The package is CommonJS (`module.exports = factory`), so an ESM default import is the factory;
  // its declaration file says `export default`, which TypeScript reads as a `.default` property.
  const create = aedesMemoryPersistence as unknown as () => AedesPersistence;
  return create();
}

/**
 * Sets the MQTT 5 Server Keep Alive (seconds) aedes advertises in the CONNACK and enforces. Call it
 * from `preConnect` (before aedes builds the CONNACK); MQTT 3.1.1 clients are left alone.
 */
export function setServerKeepAlive(client: Client, seconds: number): void {
  (client as unknown as ClientState)._serverKeepAlive = seconds;
}

/**
 * Calls `listener` with the reason code of the DISCONNECT packet the client sends (0 for MQTT
 * 3.1.1). Register it once the client is connected; aedes removes it when the connection closes.
 */
export function onDisconnectPacket(client: Client, listener: (reasonCode: number) => void): void {
  const parser = (client as unknown as ClientState)._parser;
  parser?.on('packet', (packet: { cmd?: string; reasonCode?: number }) => {
    if (packet.cmd === 'disconnect') listener(packet.reasonCode ?? 0);
  });
}

/**
 * Makes aedes neither acknowledge nor publish this PUBLISH once its authorization succeeds: the
 * broker has answered it (or is disconnecting the client) itself.
 */
export function dropPublish(packet: PublishPacket): void {
  (packet as PublishPacket & { _notAuthorized?: boolean })._notAuthorized = true;
}

/** The Subscription Identifier of the SUBSCRIBE a subscription came in, if it had one. */
export function subscriptionIdentifierOf(sub: Subscription): number | undefined {
  const id = (sub as Subscription & { subscriptionIdentifier?: unknown }).subscriptionIdentifier;
  return typeof id === 'number' ? id : undefined;
}

/**
 * When a message stops being deliverable (ms since the epoch, aedes's clock: `Date.now()`): aedes
 * stamps `messageExpiry` on a message published with an MQTT 5 message expiry interval, and keeps
 * it on the packet it queues or retains. Undefined for a message without one.
 */
export function messageExpiryOf(packet: object): number | undefined {
  const expiry = (packet as { messageExpiry?: unknown }).messageExpiry;
  return typeof expiry === 'number' ? expiry : undefined;
}

/** Ends a disconnected client's session as aedes ends an expired MQTT 5 one. */
export function wipeSession(aedes: Aedes, client: Client): void {
  (aedes as unknown as AedesState)._wipeSession(client);
}

// ---- mqtt-packet, the instance aedes imports ------------------------------------------------

type WriteToStream = ((packet: object, stream: object, options?: object) => boolean) & { cacheNumbers?: boolean };
interface MqttPacketModule {
  writeToStream: WriteToStream;
}

let mqttPacket: MqttPacketModule | undefined;
function aedesMqttPacket(): MqttPacketModule {
  if (!mqttPacket) {
    // Resolved from aedes's own location, so it is the module object aedes's writer calls through.
    const fromHere = createRequire(import.meta.url);
    mqttPacket = createRequire(fromHere.resolve('aedes'))('mqtt-packet') as MqttPacketModule;
  }
  return mqttPacket;
}

/** A packet written to a client connection as aedes writes one (MQTT 5 serialization). */
export function writeMqtt5Packet(client: Client, packet: { cmd: string } & Record<string, unknown>): void {
  if (client.closed || client.conn.destroyed) return;
  aedesMqttPacket().writeToStream(packet, client.conn, { protocolVersion: 5 });
}

/** The CONNACK capability properties the broker adds (mqtt-packet's names). */
export interface ConnackCapabilities {
  readonly maximumQoS?: 0 | 1;
  readonly retainAvailable?: boolean;
  readonly wildcardSubscriptionAvailable?: boolean;
  readonly subscriptionIdentifiersAvailable?: boolean;
  readonly sharedSubscriptionAvailable?: boolean;
}

const connackExtras = new WeakMap<object, () => ConnackCapabilities>();
let connackWrapped = false;

function wrapConnackWriter(): void {
  if (connackWrapped) return;
  const mod = aedesMqttPacket();
  const original = mod.writeToStream;
  const wrapped: WriteToStream = function writeToStream(packet, stream, options) {
    const p = packet as { cmd?: string; reasonCode?: number; properties?: Record<string, unknown> };
    // Only a successful MQTT 5 CONNACK carries capabilities (aedes leaves them off a refusal).
    if (p.cmd === 'connack' && p.reasonCode === 0 && p.properties) {
      const extra = connackExtras.get(stream);
      if (extra) Object.assign(p.properties, extra());
    } else if (p.cmd === 'connack' && p.reasonCode !== undefined && p.reasonCode !== 0) {
      const code = connackRefusals.get(stream);
      if (code !== undefined) p.reasonCode = code;
    } else if (p.cmd === 'suback') {
      subackRewriters.get(stream)?.(packet as WrittenSuback);
    }
    if (p.cmd === 'publish') {
      publishWatchers.get(stream)?.(packet as WrittenPublish);
      qos1Counters.get(stream)?.(packet as WrittenPublish);
    }
    return original(packet, stream, options);
  };
  // mqtt.js and aedes toggle the writer's number cache through this property: keep it the original's.
  Object.defineProperty(wrapped, 'cacheNumbers', {
    get: () => original.cacheNumbers,
    set: (value: boolean) => {
      original.cacheNumbers = value;
    },
  });
  mod.writeToStream = wrapped;
  connackWrapped = true;
}

/**
 * Adds `capabilities()` to the successful MQTT 5 CONNACK aedes writes on `stream` (the socket handed
 * to `aedes.handle`), over aedes's own values. MQTT 3.1.1 CONNACKs have no properties and are left
 * alone.
 */
export function advertiseOnConnack(stream: object, capabilities: () => ConnackCapabilities): void {
  wrapConnackWriter();
  connackExtras.set(stream, capabilities);
}

const connackRefusals = new WeakMap<object, number>();

/**
 * Makes the MQTT 5 refusal CONNACK aedes writes on `stream` carry `reasonCode` instead of the one
 * aedes maps from an authenticate error's 3.1.1 return code (aedes can only say 0x80–0x88 that way;
 * a quota needs 0x97 or 0x9F). An MQTT 3.1.1 CONNACK has no reason code and keeps its return code.
 */
export function refuseConnackWith(stream: object, reasonCode: number): void {
  wrapConnackWriter();
  connackRefusals.set(stream, reasonCode);
}

/** A SUBACK as aedes writes it: one granted QoS or reason code per filter, in the packet's order. */
export interface WrittenSuback {
  readonly cmd: 'suback';
  readonly messageId: number;
  granted: number[];
}

const subackRewriters = new WeakMap<object, (packet: WrittenSuback) => void>();

/**
 * Calls `rewrite` with each SUBACK aedes writes on `stream`, before it is serialized, so a refusal
 * can say why (aedes answers every refused filter 0x87 over MQTT 5, 0x80 over 3.1.1).
 */
export function onSubackWritten(stream: object, rewrite: (packet: WrittenSuback) => void): void {
  wrapConnackWriter();
  subackRewriters.set(stream, rewrite);
}

const qos1Counters = new WeakMap<object, (packet: WrittenPublish) => void>();

/**
 * Calls `listener` with each PUBLISH aedes writes on `stream`, like `onPublishWritten` (which the
 * shared subscriptions hold), for the in-flight window of quotas.ts.
 */
export function onDeliveryWritten(stream: object, listener: (packet: WrittenPublish) => void): void {
  wrapConnackWriter();
  qos1Counters.set(stream, listener);
}

/** aedes's per-client QoS 1 delivery function, which its subscriptions capture when they are made. */
export type DeliverQoS = (packet: AedesPublishPacket, done: () => void) => void;

/**
 * Puts `gate` in front of a client's `deliverQoS` (aedes 2.0.0-beta.1 assigns it in the Client
 * constructor and every QoS 1 subscription captures it when it is made), so call it right after
 * `aedes.handle()`, before any SUBSCRIBE or session restore.
 */
export function gateQosDeliveries(client: Client, gate: (original: DeliverQoS) => DeliverQoS): void {
  const state = client as unknown as { deliverQoS?: DeliverQoS };
  if (typeof state.deliverQoS !== 'function') {
    throw new TypeError('aedes client has no deliverQoS (aedes changed: see aedes-internals.ts)');
  }
  state.deliverQoS = gate(state.deliverQoS.bind(client));
}

/** The topic filters a client holds: aedes's `client.subscriptions`, keyed by filter (not in its types). */
export function heldFilters(client: Client): Readonly<Record<string, unknown>> {
  return (client as unknown as { readonly subscriptions?: Record<string, unknown> }).subscriptions ?? {};
}

/** A PUBLISH as aedes writes it to a client: its packet identifier assigned (QoS 1). */
export interface WrittenPublish {
  readonly cmd: 'publish';
  readonly messageId?: number;
  readonly topic: string;
  readonly payload: Buffer | string;
  readonly qos: 0 | 1 | 2;
  readonly properties?: PublishPacket['properties'];
  /** aedes's duplicate check: the id and counter of the message (from the packet aedes was given). */
  readonly brokerId?: unknown;
  readonly brokerCounter?: unknown;
  /** aedes's absolute message expiry (ms since the epoch), when the message has one. */
  readonly messageExpiry?: unknown;
}

const publishWatchers = new WeakMap<object, (packet: WrittenPublish) => void>();

/**
 * Calls `listener` with each PUBLISH aedes writes on `stream` (the socket handed to `aedes.handle`),
 * as it writes it: the only place the packet identifier aedes gives a QoS 1 delivery is visible
 * (shared subscriptions match a member's PUBACK to it). Same writer wrap as `advertiseOnConnack`.
 */
export function onPublishWritten(stream: object, listener: (packet: WrittenPublish) => void): void {
  wrapConnackWriter();
  publishWatchers.set(stream, listener);
}

/** A packet as the client's parser emits it: SUBSCRIBE, UNSUBSCRIBE and PUBACK typed, the rest opaque. */
export type InboundPacket =
  | SubscribePacket
  | UnsubscribePacket
  | { readonly cmd: 'puback'; readonly messageId: number }
  | { readonly cmd: 'other' };

/**
 * Runs `listener` on every packet the client's parser emits, before aedes's own handler sees it,
 * so a SUBSCRIBE or UNSUBSCRIBE can be rewritten in place (aedes 2.0.0-beta.1 refuses an MQTT 5
 * `$share/...` filter before any hook of its own runs). aedes reads packets through one 'packet'
 * listener on `client._parser`, added in the Client constructor, and queues them there until its
 * CONNACK; a listener put first sees each packet as it is parsed, queued or not. Call it right after
 * `aedes.handle()`, before any byte is read.
 */
export function beforeAedesHandles(client: Client, listener: (packet: InboundPacket) => void): void {
  const parser = (client as unknown as ClientState)._parser;
  if (!parser) throw new TypeError('aedes client has no packet parser (aedes changed: see aedes-internals.ts)');
  parser.prependListener('packet', listener);
}
