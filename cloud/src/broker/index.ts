export {
  type BeforeAckHandler,
  type Broker,
  type BrokerBus,
  type BrokerDeps,
  type BrokerStats,
  type BusHandler,
  type BusMessage,
  createBroker,
  type RetainedMessage,
  type SignedPrincipal,
} from './broker.js';
export { BROKER_ERRORS, BrokerError } from './errors.js';
export {
  type ConnectedEvent,
  connectedEvent,
  type DisconnectedEvent,
  type DisconnectReason,
  disconnectedEvent,
  hasPresenceEvents,
  type SessionInfo,
} from './presence.js';
export {
  createWebSocketListener,
  MQTT_WEBSOCKET_PATH,
  MQTT_WEBSOCKET_SUBPROTOCOL,
  type WebSocketListener,
  type WebSocketListenerDeps,
} from './websocket-listener.js';
