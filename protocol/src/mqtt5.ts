/**
 * MQTT 5 reason codes (MQTT 5.0 section 2.4) with the names AWS IoT Core's documentation and the
 * device SDKs use, and the protocol versions pifleet speaks. Shared by the agent's transports (to
 * say why the broker refused something), the local IoT Core and the tests.
 */

/** The MQTT protocol versions of the agent's config and the CLIs: `'5'` (the default) or `'3.1.1'`. */
export type MqttProtocol = '5' | '3.1.1';
export const MQTT_PROTOCOLS: readonly MqttProtocol[] = ['5', '3.1.1'];

export const MQTT5_REASON = {
  SUCCESS: 0x00,
  GRANTED_QOS_1: 0x01,
  NO_MATCHING_SUBSCRIBERS: 0x10,
  UNSPECIFIED_ERROR: 0x80,
  MALFORMED_PACKET: 0x81,
  PROTOCOL_ERROR: 0x82,
  IMPLEMENTATION_SPECIFIC_ERROR: 0x83,
  UNSUPPORTED_PROTOCOL_VERSION: 0x84,
  CLIENT_IDENTIFIER_NOT_VALID: 0x85,
  BAD_USERNAME_OR_PASSWORD: 0x86,
  NOT_AUTHORIZED: 0x87,
  SERVER_UNAVAILABLE: 0x88,
  SERVER_BUSY: 0x89,
  BANNED: 0x8a,
  SERVER_SHUTTING_DOWN: 0x8b,
  KEEP_ALIVE_TIMEOUT: 0x8d,
  SESSION_TAKEN_OVER: 0x8e,
  TOPIC_FILTER_INVALID: 0x8f,
  TOPIC_NAME_INVALID: 0x90,
  PACKET_IDENTIFIER_IN_USE: 0x91,
  RECEIVE_MAXIMUM_EXCEEDED: 0x93,
  TOPIC_ALIAS_INVALID: 0x94,
  PACKET_TOO_LARGE: 0x95,
  MESSAGE_RATE_TOO_HIGH: 0x96,
  QUOTA_EXCEEDED: 0x97,
  ADMINISTRATIVE_ACTION: 0x98,
  PAYLOAD_FORMAT_INVALID: 0x99,
  RETAIN_NOT_SUPPORTED: 0x9a,
  QOS_NOT_SUPPORTED: 0x9b,
  USE_ANOTHER_SERVER: 0x9c,
  SERVER_MOVED: 0x9d,
  SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: 0x9e,
  CONNECTION_RATE_EXCEEDED: 0x9f,
  MAXIMUM_CONNECT_TIME: 0xa0,
  SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: 0xa1,
  WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED: 0xa2,
} as const;

export type Mqtt5ReasonName = keyof typeof MQTT5_REASON;

const NAMES = new Map<number, Mqtt5ReasonName>(
  (Object.entries(MQTT5_REASON) as [Mqtt5ReasonName, number][]).map(([name, code]) => [code, name]),
);

/**
 * The name of a reason code, e.g. `NOT_AUTHORIZED` for 0x87; `REASON_0xNN` for a code MQTT 5 does
 * not define. (0x00 reads SUCCESS; in a SUBACK it means granted QoS 0, in a DISCONNECT normal.)
 */
export function mqtt5ReasonName(code: number): string {
  return NAMES.get(code) ?? `REASON_0x${code.toString(16).padStart(2, '0')}`;
}

/** Whether a reason code reports a failure (0x80 and above, MQTT 5.0 section 2.4). */
export function isMqtt5Failure(code: number): boolean {
  return code >= 0x80;
}
