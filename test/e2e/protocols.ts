import { MQTT_PROTOCOLS, type MqttProtocol } from '@pifleet/protocol';

/**
 * The protocol matrix of the end-to-end suites: every case that runs on both MQTT versions runs
 * once per entry, against one core, so each case's things carry the protocol in their name
 * (`tag`: thing names may not contain a dot) and the two runs never share a thing, a shadow or a
 * telemetry log entry.
 */
export interface ProtocolCase {
  readonly protocol: MqttProtocol;
  /** `m5` or `m311`: thing-name-safe. */
  readonly tag: string;
}

export const protocolTag = (protocol: MqttProtocol): string => `m${protocol.replaceAll('.', '')}`;

export const PROTOCOL_CASES: readonly ProtocolCase[] = MQTT_PROTOCOLS.map((protocol) => ({
  protocol,
  tag: protocolTag(protocol),
}));
