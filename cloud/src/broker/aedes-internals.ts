import type { Readable } from 'node:stream';
import type { Aedes, AedesPublishPacket, Client, PublishPacket } from 'aedes';
import aedesMemoryPersistence from 'aedes-persistence';

/**
 * Everything the broker reads of aedes 1.x that aedes's types do not declare, in one place.
 * Each accessor is pinned by cloud/test/broker/aedes-internals.test.ts against a live aedes, so
 * an upgrade that moves one fails there by name. Moving to aedes 2 (MQTT 5): revisit this file
 * and that test, nothing else in the broker reaches past aedes's declared API.
 *
 * - `aedes.clients`: registered clients by id. aedes keeps it to close the older of two
 *   connections with one client id; the broker uses it to tell that takeover apart from other
 *   disconnects, and to drop one client's connection at the transport.
 * - `client._will`: the CONNECT's last will, set when the CONNECT is parsed (before
 *   authentication, where the policy's `LastWill` connect attribute needs it) and kept until the
 *   connection closes. aedes publishes the will with this very packet, payload buffer included.
 * - `client._disconnected`: set only when the client sent DISCONNECT (aedes's own test for
 *   whether to publish the will), so a close is told apart as client-initiated.
 * - `aedes.mq.length`: messages mqemitter queued behind the ones in flight.
 * - `packet.clientId`: the publishing client's id, which aedes adds to a client's PUBLISH before
 *   it reaches the bus (absent for in-process publishes).
 * - `aedes-persistence`: the in-memory persistence aedes creates when given none (a dependency
 *   of ours at the range aedes 1.2 itself uses); its callback-style declaration types
 *   `storeRetained` with a callback aedes 1.x does not pass, hence the narrower interface below.
 */

interface AedesState {
  readonly clients: Readonly<Record<string, Client | undefined>>;
  readonly mq: { readonly length: number };
}

interface ClientState {
  readonly _will?: WillPacket | null;
  readonly _disconnected?: boolean;
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
 * async function. aedes 1.x calls `storeRetained(packet)` without a callback and awaits the
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
