import { type MessageProperties, NO_PROPERTIES } from '../broker/properties.js';

/**
 * The MQTT 5 properties of an IoT data-plane Publish, read from the request as
 * `@aws-sdk/client-iot-data-plane` sends them (IoT API Reference, "Publish"):
 *
 *   x-amz-mqtt5-user-properties           header  base64 of a JSON array of objects, e.g.
 *                                                  `[{"deviceName":"alpha"},{"deviceCnt":"45"}]`
 *   x-amz-mqtt5-payload-format-indicator  header  `UTF8_DATA` | `UNSPECIFIED_BYTES`
 *   x-amz-mqtt5-correlation-data          header  base64 of the binary correlation data
 *   contentType, responseTopic            query   UTF-8 strings (a response topic has no wildcards)
 *   messageExpiry                         query   whole seconds
 *
 * Pure: no I/O. A bad value is refused as a whole (the message is not published with some of its
 * properties dropped), with a message naming the parameter as the API spells it.
 */

export const PUBLISH_PROPERTY_HEADERS = {
  userProperties: 'x-amz-mqtt5-user-properties',
  payloadFormatIndicator: 'x-amz-mqtt5-payload-format-indicator',
  correlationData: 'x-amz-mqtt5-correlation-data',
} as const;

/** MQTT 5's Message Expiry Interval is a four-byte integer (MQTT 5.0 section 3.3.2.3.3). */
export const MAX_MESSAGE_EXPIRY_SECONDS = 0xffff_ffff;

/**
 * An MQTT 5 UTF-8 string or binary field holds at most 65,535 bytes (a two-byte length). Longer
 * values could not be written to a subscriber at all, so they are refused here, not at delivery.
 */
export const MAX_MQTT_FIELD_BYTES = 0xffff;

export type RequestHeaders = Readonly<Record<string, string | readonly string[] | undefined>>;

export type PublishPropertiesResult =
  | { readonly ok: true; readonly properties: MessageProperties }
  | { readonly ok: false; readonly message: string };

type Mutable = { -readonly [K in keyof MessageProperties]: MessageProperties[K] };

const FORMAT_INDICATORS: ReadonlyMap<string, boolean> = new Map([
  ['UTF8_DATA', true],
  ['UNSPECIFIED_BYTES', false],
]);

/** Standard base64 (RFC 4648 section 4), padding optional; nothing Buffer would silently skip. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;

function decodeBase64(text: string): Buffer | undefined {
  return BASE64.test(text) ? Buffer.from(text, 'base64') : undefined;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Why a string cannot be an MQTT 5 UTF-8 string field, or undefined when it can. */
function mqttStringProblem(text: string): string | undefined {
  // MQTT 5.0 section 1.5.4: U+0000 must not appear; a receiver closes the connection on it.
  if (text.includes('\u0000')) return 'must not contain a NUL character';
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_MQTT_FIELD_BYTES) return `is ${bytes} bytes of UTF-8, more than MQTT's ${MAX_MQTT_FIELD_BYTES}`;
  return undefined;
}

/** One header's value; a repeated header arrives joined or as a list, and is refused. */
function header(headers: RequestHeaders, name: string): string | undefined | { readonly repeated: true } {
  const value = headers[name];
  if (value === undefined || typeof value === 'string') return value;
  return value.length === 1 ? value[0] : { repeated: true };
}

function isDigits(text: string): boolean {
  return /^[0-9]+$/.test(text);
}

/**
 * The user properties a JSON array of objects names, in order: each object's members are
 * key/value pairs, and a key given more than once keeps every value (MQTT 5 allows repeated
 * keys). Keys are data: `__proto__` or `constructor` is an ordinary key.
 */
function parseUserProperties(
  encoded: string,
): { ok: true; value: Record<string, string | string[]> | undefined } | { ok: false; message: string } {
  const bad = (why: string) => ({ ok: false as const, message: `userProperties${why}` });
  const bytes = decodeBase64(encoded);
  if (bytes === undefined) return bad(' must be base64-encoded JSON');
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(bytes));
  } catch {
    return bad(' must be a JSON array of objects, e.g. [{"deviceName": "alpha"}]; it is not JSON');
  }
  if (!Array.isArray(parsed)) return bad(' must be a JSON array of objects, e.g. [{"deviceName": "alpha"}]');
  // No prototype, and members defined rather than assigned: a `__proto__` key stays a key.
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  let count = 0;
  for (const [i, element] of parsed.entries()) {
    if (element === null || typeof element !== 'object' || Array.isArray(element)) {
      return bad(`[${i}] must be an object of string values`);
    }
    for (const [key, value] of Object.entries(element as Record<string, unknown>)) {
      if (typeof value !== 'string') return bad(`[${i}].${key} must be a string, not ${JSON.stringify(value)}`);
      const problem = mqttStringProblem(key) ?? mqttStringProblem(value);
      if (problem !== undefined) return bad(`[${i}].${key} ${problem}`);
      const seen = Object.hasOwn(out, key) ? out[key] : undefined;
      const next = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
      Object.defineProperty(out, key, { value: next, enumerable: true, writable: true, configurable: true });
      count++;
    }
  }
  return { ok: true, value: count === 0 ? undefined : out };
}

export function parsePublishProperties(query: URLSearchParams, headers: RequestHeaders): PublishPropertiesResult {
  const out: Mutable = {};
  const fail = (message: string): PublishPropertiesResult => ({ ok: false, message });

  const users = header(headers, PUBLISH_PROPERTY_HEADERS.userProperties);
  if (typeof users === 'object') return fail('userProperties must be given once');
  if (users !== undefined) {
    const parsed = parseUserProperties(users);
    if (!parsed.ok) return fail(parsed.message);
    if (parsed.value !== undefined) out.userProperties = parsed.value;
  }

  const format = header(headers, PUBLISH_PROPERTY_HEADERS.payloadFormatIndicator);
  if (typeof format === 'object') return fail('payloadFormatIndicator must be given once');
  if (format !== undefined) {
    const flag = FORMAT_INDICATORS.get(format);
    if (flag === undefined) {
      return fail(`payloadFormatIndicator must be UTF8_DATA or UNSPECIFIED_BYTES, not ${JSON.stringify(format)}`);
    }
    out.payloadFormatIndicator = flag;
  }

  const correlation = header(headers, PUBLISH_PROPERTY_HEADERS.correlationData);
  if (typeof correlation === 'object') return fail('correlationData must be given once');
  if (correlation !== undefined) {
    const bytes = decodeBase64(correlation);
    if (bytes === undefined) return fail('correlationData must be base64-encoded');
    if (bytes.byteLength > MAX_MQTT_FIELD_BYTES) {
      return fail(`correlationData is ${bytes.byteLength} bytes, more than MQTT's ${MAX_MQTT_FIELD_BYTES}`);
    }
    out.correlationData = bytes;
  }

  const contentType = query.get('contentType');
  if (contentType !== null) {
    const problem = mqttStringProblem(contentType);
    if (problem !== undefined) return fail(`contentType ${problem}`);
    out.contentType = contentType;
  }

  const responseTopic = query.get('responseTopic');
  if (responseTopic !== null) {
    if (responseTopic === '') return fail('responseTopic must not be empty');
    if (responseTopic.includes('+') || responseTopic.includes('#')) {
      return fail('responseTopic must not contain wildcard characters');
    }
    const problem = mqttStringProblem(responseTopic);
    if (problem !== undefined) return fail(`responseTopic ${problem}`);
    out.responseTopic = responseTopic;
  }

  const expiry = query.get('messageExpiry');
  if (expiry !== null) {
    const seconds = isDigits(expiry) && expiry.length <= 10 ? Number(expiry) : Number.NaN;
    if (!(seconds <= MAX_MESSAGE_EXPIRY_SECONDS)) {
      return fail(
        `messageExpiry must be a whole number of seconds from 0 to ${MAX_MESSAGE_EXPIRY_SECONDS}, not ${JSON.stringify(expiry)}`,
      );
    }
    out.messageExpiryInterval = seconds;
  }

  return { ok: true, properties: Object.keys(out).length === 0 ? NO_PROPERTIES : out };
}
