import type { PublishPacket } from 'aedes';

/**
 * The MQTT 5 PUBLISH properties IoT Core carries from publisher to subscribers, to the rules
 * engine (`get_user_property()`, `get_mqtt_property()`) and out of the republish action. Names are
 * mqtt-packet's. A message published over MQTT 3.1.1 (or in process without properties) has none.
 */
export interface MessageProperties {
  readonly payloadFormatIndicator?: boolean;
  readonly messageExpiryInterval?: number;
  readonly contentType?: string;
  readonly responseTopic?: string;
  readonly correlationData?: Buffer;
  readonly userProperties?: Readonly<Record<string, string | readonly string[]>>;
}

export const NO_PROPERTIES: MessageProperties = Object.freeze({});

/** The message properties of a PUBLISH as aedes hands it over (topic alias and the rest left out). */
export function messagePropertiesOf(packet: PublishPacket): MessageProperties {
  const p = packet.properties;
  if (!p) return NO_PROPERTIES;
  const out: {
    -readonly [K in keyof MessageProperties]: MessageProperties[K];
  } = {};
  if (p.payloadFormatIndicator !== undefined) out.payloadFormatIndicator = p.payloadFormatIndicator;
  if (p.messageExpiryInterval !== undefined) out.messageExpiryInterval = p.messageExpiryInterval;
  if (p.contentType !== undefined) out.contentType = p.contentType;
  if (p.responseTopic !== undefined) out.responseTopic = p.responseTopic;
  if (p.correlationData !== undefined) out.correlationData = p.correlationData;
  if (p.userProperties !== undefined) out.userProperties = p.userProperties;
  return Object.keys(out).length === 0 ? NO_PROPERTIES : out;
}
