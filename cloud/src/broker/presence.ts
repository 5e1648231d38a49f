import { type MqttProtocol, presenceTopics } from '@pifleet/protocol';

/** Why a connection ended, with IoT Core's names ("Lifecycle events"). */
export type DisconnectReason =
  | 'AUTH_ERROR'
  | 'CLIENT_INITIATED_DISCONNECT'
  | 'CLIENT_ERROR'
  | 'CONNECTION_LOST'
  | 'DUPLICATE_CLIENTID'
  | 'FORBIDDEN_ACCESS'
  | 'MQTT_KEEP_ALIVE_TIMEOUT'
  | 'SERVER_ERROR'
  | 'SERVER_INITIATED_DISCONNECT'
  | 'THROTTLED';

/** What the broker knows about one client session, for presence events and listeners. */
export interface SessionInfo {
  readonly clientId: string;
  /**
   * IoT Core's principalIdentifier: the lowercase hex SHA-256 of the client certificate, or the
   * access key id of a SigV4 (WebSocket) connection.
   */
  readonly certificateId: string;
  /** The connection's thing: the client id when a thing of that name is attached to the certificate. */
  readonly thingName: string | undefined;
  readonly sessionIdentifier: string;
  readonly ipAddress: string | undefined;
  /** Increases with every connection of the same client id; connected and disconnected share it. */
  readonly versionNumber: number;
  readonly connectedAt: number;
  /** The MQTT version the client connected with. */
  readonly protocol: MqttProtocol;
}

export interface ConnectedEvent {
  clientId: string;
  timestamp: number;
  eventType: 'connected';
  sessionIdentifier: string;
  principalIdentifier: string;
  ipAddress?: string;
  versionNumber: number;
}

export interface DisconnectedEvent {
  clientId: string;
  timestamp: number;
  eventType: 'disconnected';
  sessionIdentifier: string;
  principalIdentifier: string;
  clientInitiatedDisconnect: boolean;
  disconnectReason: DisconnectReason;
  versionNumber: number;
}

/** IoT Core publishes no lifecycle events for client ids with MQTT wildcards. */
export function hasPresenceEvents(clientId: string): boolean {
  return !clientId.includes('#') && !clientId.includes('+');
}

export function connectedEvent(session: SessionInfo, timestamp: number): { topic: string; event: ConnectedEvent } {
  const event: ConnectedEvent = {
    clientId: session.clientId,
    timestamp,
    eventType: 'connected',
    sessionIdentifier: session.sessionIdentifier,
    principalIdentifier: session.certificateId,
    versionNumber: session.versionNumber,
  };
  if (session.ipAddress !== undefined) event.ipAddress = session.ipAddress;
  return { topic: presenceTopics.connected(session.clientId), event };
}

export function disconnectedEvent(
  session: SessionInfo,
  reason: DisconnectReason,
  timestamp: number,
): { topic: string; event: DisconnectedEvent } {
  return {
    topic: presenceTopics.disconnected(session.clientId),
    event: {
      clientId: session.clientId,
      timestamp,
      eventType: 'disconnected',
      sessionIdentifier: session.sessionIdentifier,
      principalIdentifier: session.certificateId,
      clientInitiatedDisconnect: reason === 'CLIENT_INITIATED_DISCONNECT',
      disconnectReason: reason,
      versionNumber: session.versionNumber,
    },
  };
}
