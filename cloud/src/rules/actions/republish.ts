import { checkTopicName, parseShadowTopic } from '@pifleet/protocol';
import type { MessageProperties } from '../../broker/properties.js';
import {
  type CompiledTemplate,
  type EvalContext,
  type PreparedMessage,
  serializeOutput,
} from '../../core/iotsql/index.js';
import type { RepublishHeaders } from '../definitions.js';
import { RuleActionError } from './errors.js';
import type { CompiledAction, RepublishTarget } from './types.js';

const AWS_NAME = 'RepublishAction';

/**
 * Where a rendered republish topic goes, or why it cannot. As in IoT Core, a reserved topic is
 * written with `$$` (`$$aws/things/pi-01/shadow/update` republishes to `$aws/things/…`), and
 * only the Device Shadow's request topics (get, update, delete of a classic or named shadow) are
 * allowed; a single leading `$`, the shadow service's own response topics, jobs, lifecycle events
 * and every other reserved topic are refused.
 */
export function resolveRepublishTopic(rendered: string): { ok: true; topic: string } | { ok: false; reason: string } {
  let topic = rendered;
  if (topic.startsWith('$$')) {
    topic = topic.slice(1);
    const shadow = parseShadowTopic(topic);
    if (shadow === undefined || shadow.response !== undefined) {
      return {
        ok: false,
        reason: `republishing to the reserved topic ${topic} is not supported (only shadow request topics)`,
      };
    }
  } else if (topic.startsWith('$')) {
    return { ok: false, reason: `topic ${topic} is reserved; write $$ to republish to a shadow topic` };
  }
  const invalid = checkTopicName(topic);
  return invalid === undefined
    ? { ok: true, topic }
    : { ok: false, reason: `topic ${JSON.stringify(topic)}: ${invalid}` };
}

/** IoT's limits on `RepublishAction.headers` (IoT API Reference, MqttHeaders and UserProperty). */
export const REPUBLISH_HEADER_LIMITS = {
  /** Every header value, and a user property's key and value, as written in the rule. */
  maxLength: 1024,
  minUserProperties: 1,
  maxUserProperties: 100,
  /** MQTT 5's Message Expiry Interval is a four-byte integer. */
  maxMessageExpiry: 0xffff_ffff,
} as const;

const FORMAT_INDICATORS: ReadonlyMap<string, boolean> = new Map([
  ['UTF8_DATA', true],
  ['UNSPECIFIED_BYTES', false],
]);

/** Strict base64 (padding optional, as Java's decoder takes it); undefined when it is not. */
function decodeBase64(text: string): Buffer | undefined {
  const bytes = Buffer.from(text, 'base64');
  const unpadded = (s: string) => s.replace(/=+$/, '');
  return unpadded(bytes.toString('base64')) === unpadded(text) ? bytes : undefined;
}

function checkResponseTopic(topic: string): string | undefined {
  if (topic.includes('+') || topic.includes('#')) return 'must not contain wildcard characters';
  if (topic.includes('\u0000')) return 'must not contain a NUL character';
  return undefined;
}

type MutableProperties = { -readonly [K in keyof MessageProperties]: MessageProperties[K] };
type ScalarHeader = Exclude<keyof RepublishHeaders, 'userProperties'>;

function isDigits(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/**
 * Each header: sets its MQTT 5 property from a rendered value, or returns why the value cannot be
 * that property (then `out` is unchanged).
 */
const HEADERS: Readonly<Record<ScalarHeader, (text: string, out: MutableProperties) => string | undefined>> = {
  payloadFormatIndicator(text, out) {
    const flag = FORMAT_INDICATORS.get(text);
    if (flag === undefined) return `must be UTF8_DATA or UNSPECIFIED_BYTES, not ${JSON.stringify(text)}`;
    out.payloadFormatIndicator = flag;
    return undefined;
  },
  contentType(text, out) {
    out.contentType = text;
    return undefined;
  },
  responseTopic(text, out) {
    const problem = checkResponseTopic(text);
    if (problem === undefined) out.responseTopic = text;
    return problem;
  },
  correlationData(text, out) {
    const bytes = decodeBase64(text);
    if (bytes === undefined) return 'must be base64-encoded';
    out.correlationData = bytes;
    return undefined;
  },
  messageExpiry(text, out) {
    const { maxMessageExpiry } = REPUBLISH_HEADER_LIMITS;
    const seconds = isDigits(text) && text.length <= 10 ? Number(text) : Number.NaN;
    if (!(seconds <= maxMessageExpiry)) {
      return `must be a whole number of seconds from 0 to ${maxMessageExpiry}, not ${JSON.stringify(text)}`;
    }
    out.messageExpiryInterval = seconds;
    return undefined;
  },
};

const SCALAR_HEADERS = Object.keys(HEADERS) as ScalarHeader[];

/**
 * What can be known of a republish action's headers when the rule is created: every value within
 * IoT's length limit, 1 to 100 user properties, and each value that is not a template (has no
 * `${`) already what it must render to. A template's result is checked when it renders.
 * Returns the problems, each naming its header as IoT's API spells it.
 */
export function checkRepublishHeaders(headers: RepublishHeaders, isTemplate: (text: string) => boolean): string[] {
  const problems: string[] = [];
  const { maxLength, minUserProperties, maxUserProperties } = REPUBLISH_HEADER_LIMITS;
  for (const name of SCALAR_HEADERS) {
    const text = headers[name];
    if (text === undefined) continue;
    if (text.length > maxLength) {
      problems.push(`headers.${name} is longer than ${maxLength} characters`);
    } else if (text !== '' && !isTemplate(text)) {
      const problem = HEADERS[name](text, {});
      if (problem !== undefined) problems.push(`headers.${name} ${problem}`);
    }
  }
  const users = headers.userProperties;
  if (users !== undefined) {
    if (users.length < minUserProperties || users.length > maxUserProperties) {
      problems.push(
        `headers.userProperties must have ${minUserProperties} to ${maxUserProperties} entries, not ${users.length}`,
      );
    }
    users.forEach(({ key, value }, i) => {
      if (key.length > maxLength)
        problems.push(`headers.userProperties[${i}].key is longer than ${maxLength} characters`);
      if (value.length > maxLength) {
        problems.push(`headers.userProperties[${i}].value is longer than ${maxLength} characters`);
      }
    });
  }
  return problems;
}

/** A republish action's headers with each value compiled as a substitution template. */
export interface CompiledHeaders {
  readonly scalars: readonly (readonly [ScalarHeader, CompiledTemplate])[];
  readonly userProperties: readonly (readonly [key: CompiledTemplate, value: CompiledTemplate])[];
}

export function compileHeaders(
  headers: RepublishHeaders,
  compile: (where: string, text: string) => CompiledTemplate,
): CompiledHeaders {
  const scalars: [ScalarHeader, CompiledTemplate][] = [];
  for (const name of SCALAR_HEADERS) {
    const text = headers[name];
    if (text !== undefined) scalars.push([name, compile(`headers.${name}`, text)]);
  }
  const userProperties = (headers.userProperties ?? []).map(
    ({ key, value }, i) =>
      [compile(`headers.userProperties[${i}].key`, key), compile(`headers.userProperties[${i}].value`, value)] as const,
  );
  return { scalars, userProperties };
}

/**
 * Renders the headers for one message into the MQTT 5 properties of the republished message.
 * A header that renders empty (a template over an absent property, say an MQTT 3.1.1 message's
 * `${get_mqtt_property('content_type')}`) is left out; a user property is kept as rendered (an
 * empty value is a valid user property). Throws the reason a header cannot be set.
 */
export function renderHeaders(headers: CompiledHeaders, message: PreparedMessage, ctx: EvalContext): MessageProperties {
  const out: MutableProperties = {};
  for (const [name, template] of headers.scalars) {
    const text = template.render(message, ctx);
    if (text === '') continue;
    const problem = HEADERS[name](text, out);
    if (problem !== undefined) throw new Error(`headers.${name} ${problem}`);
  }
  if (headers.userProperties.length > 0) {
    // mqtt-packet's shape: a key sent more than once holds its values in order. Own keys only, so
    // a rendered key such as __proto__ stays a key.
    const users: Record<string, string | string[]> = Object.create(null);
    for (const [keyTemplate, valueTemplate] of headers.userProperties) {
      const key = keyTemplate.render(message, ctx);
      const value = valueTemplate.render(message, ctx);
      const had = Object.hasOwn(users, key) ? users[key] : undefined;
      users[key] = had === undefined ? value : typeof had === 'string' ? [had, value] : [...had, value];
    }
    out.userProperties = users;
  }
  return out;
}

/**
 * Republish action: the SELECT output, serialized, to the rendered topic on the local broker.
 *
 * The action completes once the message is handed to the broker, not when every subscriber has
 * it (as in IoT Core, delivery is not part of the action). Waiting for delivery would deadlock
 * under backpressure: the broker delivers a bounded number of messages at once, and those slots
 * can all be held by deliveries waiting for this very queue to drain. A delivery that fails later
 * goes to `onDeliveryFailure`.
 */
export function republishAction(
  topicTemplate: CompiledTemplate,
  qos: 0 | 1,
  target: RepublishTarget,
  onDeliveryFailure: (topic: string, err: unknown) => void,
  headers?: CompiledHeaders,
): CompiledAction {
  return {
    awsName: AWS_NAME,
    async run({ message, output, ctx }) {
      const rendered = topicTemplate.render(message, ctx);
      const resolved = resolveRepublishTopic(rendered);
      if (!resolved.ok) throw new RuleActionError(AWS_NAME, rendered, `Failed to republish: ${resolved.reason}.`);
      let properties: MessageProperties | undefined;
      if (headers !== undefined) {
        try {
          properties = renderHeaders(headers, message, ctx);
        } catch (err) {
          const reason = err instanceof Error ? err.message : String(err);
          throw new RuleActionError(
            AWS_NAME,
            resolved.topic,
            `Failed to republish to ${resolved.topic}: ${reason}.`,
            err,
          );
        }
      }
      let delivery: Promise<void>;
      try {
        delivery = target.publish(
          resolved.topic,
          serializeOutput(output),
          properties === undefined ? { qos } : { qos, properties },
        );
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        throw new RuleActionError(AWS_NAME, resolved.topic, `Failed to republish to ${resolved.topic}: ${reason}`, err);
      }
      delivery.catch((err: unknown) => onDeliveryFailure(resolved.topic, err));
    },
  };
}
