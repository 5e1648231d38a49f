import { type JsonValue, MAX_JSON_DEPTH, parseJson } from '@pifleet/protocol';

/**
 * The MQTT 5 PUBLISH properties a rule can read with `get_mqtt_property()` and
 * `get_user_properties()` (names as mqtt-packet decodes them). A message published over MQTT
 * 3.1.1, or over HTTP without them, has none: every such function returns Undefined for it.
 */
export interface MqttMessageProperties {
  readonly payloadFormatIndicator?: boolean;
  readonly contentType?: string;
  readonly responseTopic?: string;
  readonly correlationData?: Uint8Array;
  readonly messageExpiryInterval?: number;
  /** In wire order; a key sent more than once holds its values in order. */
  readonly userProperties?: Readonly<Record<string, string | readonly string[]>>;
}

/** A message as the broker hands it to the rules engine. */
export interface IotMessage {
  readonly topic: string;
  readonly payload: Uint8Array | string;
  /** MQTT client id of the publisher; `clientid()` returns "n/a" without one, as AWS does for HTTP. */
  readonly clientId?: string;
  /** Certificate id (thumbprint) or IAM identity that published; `principal()`. */
  readonly principal?: string;
  /** Milliseconds since the epoch at which the broker received the message; `timestamp()`. */
  readonly timestamp?: number;
  /** `traceid()`; Undefined without one. */
  readonly traceId?: string;
  /** The PUBLISH's MQTT 5 properties; absent for MQTT 3.1.1. */
  readonly properties?: MqttMessageProperties;
}

/** The payload decoded once: JSON when it is UTF-8 JSON, raw bytes otherwise. */
export type PayloadBody = { readonly json: true; readonly value: JsonValue } | { readonly json: false };

/** A message with its payload decoded; build it once with {@link prepareMessage} and evaluate many rules. */
export interface PreparedMessage extends IotMessage {
  readonly body: PayloadBody;
  readonly bytes: Uint8Array;
}

/** Things an evaluation may need from outside; all optional so evaluation stays pure and testable. */
export interface EvalContext {
  /** `timestamp()` when the message carries no timestamp. */
  readonly now?: () => number;
  /** `newuuid()`; defaults to crypto.randomUUID. */
  readonly newUuid?: () => string;
  /** `rand()`; defaults to Math.random. */
  readonly random?: () => number;
  /** `accountid()`; Undefined without one. */
  readonly accountId?: string;
  /**
   * `get_thing_shadow(thing, [shadowName,] roleArn)`: the shadow document (classic when shadowName
   * is undefined), or undefined when there is none. Must be synchronous; without it the function
   * returns Undefined.
   */
  readonly getThingShadow?: (thingName: string, shadowName: string | undefined) => JsonValue | undefined;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function mayBeJson(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 32 || c === 9 || c === 10 || c === 13) continue;
    // { [ " - digits t f n
    return c === 123 || c === 91 || c === 34 || c === 45 || (c >= 48 && c <= 57) || c === 116 || c === 102 || c === 110;
  }
  return false;
}

/**
 * Decodes a payload the way the rules engine sees it: parsed JSON, or opaque bytes. JSON nested
 * deeper than {@link MAX_JSON_DEPTH} levels is opaque bytes too: everything the engine does with
 * a value afterwards (equality, `=`/`IN`, serializing outputs and templates) recurses, and a
 * device's 10,000-level payload must not overflow the stack of the process that runs every
 * device's rules. `SELECT *` still passes such a payload on unchanged, as bytes.
 */
export function decodePayload(payload: Uint8Array | string): PayloadBody {
  let text: string | undefined;
  if (typeof payload === 'string') {
    text = payload;
  } else {
    try {
      text = utf8.decode(payload);
    } catch {
      text = undefined;
    }
  }
  if (text !== undefined && mayBeJson(text)) {
    const parsed = parseJson(text);
    if (parsed.ok) return { json: true, value: parsed.value };
  }
  return { json: false };
}

/** Decodes the payload once; the bytes of a string payload are encoded only if a rule asks for them. */
export function prepareMessage(message: IotMessage | PreparedMessage): PreparedMessage {
  if ('body' in message) return message;
  const body = decodePayload(message.payload);
  const { payload } = message;
  let bytes: Uint8Array | undefined = typeof payload === 'string' ? undefined : payload;
  return {
    ...message,
    body,
    get bytes(): Uint8Array {
      if (bytes === undefined) bytes = Buffer.from(payload as string, 'utf8');
      return bytes;
    },
  };
}
