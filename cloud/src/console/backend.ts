import type { JsonObject, MqttProtocol, Reading } from '@pifleet/protocol';

/**
 * What the web console reads and writes, whatever serves the fleet: the local IoT Core in the same
 * process (`local-backend.ts`: its registry, shadow service and broker bus), or an AWS account
 * (`aws-backend.ts`: the IoT control and data planes, the stack's command/query API with SigV4,
 * and MQTT over WebSocket with SigV4 for the live feed). The console's fleet picture, live feed,
 * routes and page are the same for both.
 */

/** One message of the live feed: a topic and its payload, as the broker delivered it. */
export interface ConsoleMessage {
  readonly topic: string;
  readonly payload: Buffer;
}

/** What is known of a thing's presence when the console starts. */
export interface ThingPresence {
  readonly thingName: string;
  readonly connected: boolean;
  /** When it last connected (or disconnected), ms since the epoch, when known. */
  readonly at?: number;
  /** Why it disconnected (IoT's `disconnectReason`), when it did. */
  readonly reason?: string;
  /** The MQTT version of its connection, when the backend knows. */
  readonly protocol?: MqttProtocol;
  /** Time of its newest stored reading, when the backend knows. */
  readonly lastReadingAt?: number;
}

/** The session a client id has now (the local core only: it knows each connection's thing and protocol). */
export interface ConsoleSession {
  readonly thingName?: string | undefined;
  readonly protocol?: MqttProtocol;
}

/** A desired-state write: the shadow version it was built on (none: unconditional). */
export interface DesiredWrite {
  readonly desired: JsonObject;
  readonly version?: number;
  readonly clientToken: string;
}

/**
 * The answer to a desired-state write: 200 with the shadow's new version, 409 when the shadow is
 * at another version, or another status with the service's message (400 invalid, 413 too large, …).
 */
export type DesiredWriteResult =
  | { readonly status: 200; readonly version: number | undefined }
  | { readonly status: number; readonly message: string };

export interface ConsoleBackend {
  /** `local` or `aws`: the page says which it is looking at. */
  readonly kind: 'local' | 'aws';
  /** Every registered thing's name. */
  listThings(): Promise<string[]>;
  /**
   * Whether a thing is registered: at once when the backend can say so cheaply (the local registry),
   * or a promise (a control-plane call). The console shows messages only of registered things.
   */
  hasThing(thingName: string): boolean | Promise<boolean>;
  /** The classic shadow's document; null when the thing has none. */
  readShadow(thingName: string): Promise<JsonObject | null>;
  /** Writes the desired section of the classic shadow. */
  writeDesired(thingName: string, write: DesiredWrite): Promise<DesiredWriteResult>;
  /** Presence of these things when the console starts (things the backend knows nothing of are left out). */
  presence(things: readonly string[]): Promise<readonly ThingPresence[]>;
  /** Follows an MQTT topic filter; resolves with the function that stops following it. */
  subscribe(filter: string, handler: (message: ConsoleMessage) => void): Promise<() => Promise<void>>;
  /** The session of a client id, where the backend knows it (else the client id is taken as the thing name). */
  session?(clientId: string): ConsoleSession | undefined;
  /** A thing's stored readings in a time range, oldest first (a thing view opened after they arrived). */
  history?(thingName: string, from: number, to: number): Promise<Reading[]>;
  /** Releases connections and clients. */
  close?(): Promise<void>;
}
