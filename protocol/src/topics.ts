import { LIMITS } from './limits.js';

/**
 * Topic names. Only this module builds topic strings; everything else calls it.
 *
 * Application topics live under `pifleet/{thingName}/...` (three levels, well inside the
 * seven-slash limit for non-reserved topics). AWS reserved topics are built exactly as the
 * AWS IoT Developer Guide spells them ("Reserved topics").
 */
export const APP_PREFIX = 'pifleet';

/**
 * UTF-8 length of a string without encoding it (the agent sizes every reading it batches; an
 * encode per call was a visible share of a simulated fleet's CPU). A lone surrogate counts as
 * U+FFFD (3 bytes), as TextEncoder would write it.
 */
export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        // A surrogate pair: 2 UTF-16 units, 4 bytes.
        n += 2;
        i++;
      } else n += 2;
    } else n += 2;
  }
  return n;
}

const NAME_PATTERN = /^[a-zA-Z0-9:_-]+$/;

/** Thing names: 1–128 characters of `[a-zA-Z0-9:_-]` (AWS IoT CreateThing). */
export function isValidThingName(name: unknown): name is string {
  return (
    typeof name === 'string' && name.length >= 1 && name.length <= LIMITS.maxThingNameLength && NAME_PATTERN.test(name)
  );
}

/** Named shadow names: 1–64 characters of `[a-zA-Z0-9:_-]`; `$` prefixes are reserved by AWS. */
export function isValidShadowName(name: unknown): name is string {
  return (
    typeof name === 'string' && name.length >= 1 && name.length <= LIMITS.maxShadowNameLength && NAME_PATTERN.test(name)
  );
}

/** MQTT client ids: 1–128 UTF-8 bytes, no wildcard or control characters. */
export function isValidClientId(id: unknown): id is string {
  if (typeof id !== 'string' || id.length === 0) return false;
  if (utf8Length(id) > LIMITS.maxClientIdBytes) return false;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  return !/[\u0000-\u001f#+]/.test(id);
}

function assertThingName(name: string): string {
  if (!isValidThingName(name)) {
    throw new TypeError(`invalid thing name ${JSON.stringify(name)}: use 1-128 characters of a-z A-Z 0-9 : _ -`);
  }
  return name;
}

function assertShadowName(name: string): string {
  if (!isValidShadowName(name)) {
    throw new TypeError(`invalid shadow name ${JSON.stringify(name)}: use 1-64 characters of a-z A-Z 0-9 : _ -`);
  }
  return name;
}

/** Application topics of one thing. */
export const appTopics = {
  /** Device → cloud: telemetry batches ({@link TelemetryBatch}). */
  telemetry: (thing: string) => `${APP_PREFIX}/${assertThingName(thing)}/telemetry`,
  /** Device → cloud: online/offline status ({@link StatusMessage}); retained. */
  status: (thing: string) => `${APP_PREFIX}/${assertThingName(thing)}/status`,
  /** Cloud → device: one-shot commands. */
  commands: (thing: string) => `${APP_PREFIX}/${assertThingName(thing)}/commands`,
  /** Cloud → subscribers: threshold alerts raised by the alert rule. */
  alerts: (thing: string) => `${APP_PREFIX}/${assertThingName(thing)}/alerts`,
} as const;

/** The kinds of application topic a thing has (`pifleet/{thing}/{kind}`). */
export type AppTopicKind = keyof typeof appTopics;

/** Topic filters that match every thing's application topic of one kind. */
export const appTopicFilters = {
  telemetry: `${APP_PREFIX}/+/telemetry`,
  status: `${APP_PREFIX}/+/status`,
  commands: `${APP_PREFIX}/+/commands`,
  alerts: `${APP_PREFIX}/+/alerts`,
} as const satisfies Record<AppTopicKind, string>;

/**
 * An application topic as an IoT policy resource: the thing is a policy variable
 * (`${iot:Connection.Thing.ThingName}`) or a wildcard (`*`), so it is not checked as a thing name.
 */
export function appTopicResource(kind: AppTopicKind, thingPattern: string): string {
  return `${APP_PREFIX}/${thingPattern}/${kind}`;
}

/**
 * An application topic as an IoT SQL substitution template, for a rule action that addresses the
 * thing an expression yields: `appTopicTemplate('alerts', 'topic(2)')` is `pifleet/${topic(2)}/alerts`
 * (the thing of the incoming application topic is its second level).
 */
export function appTopicTemplate(kind: AppTopicKind, thingExpression: string): string {
  return `${APP_PREFIX}/\${${thingExpression}}/${kind}`;
}

export type ShadowOperation = 'get' | 'update' | 'delete';
export type ShadowTopicSuffix =
  | 'get'
  | 'get/accepted'
  | 'get/rejected'
  | 'update'
  | 'update/accepted'
  | 'update/rejected'
  | 'update/delta'
  | 'update/documents'
  | 'delete'
  | 'delete/accepted'
  | 'delete/rejected';

/** The shadow's topic prefix: classic `$aws/things/T/shadow`, named `$aws/things/T/shadow/name/N`. */
export function shadowTopicPrefix(thing: string, shadowName?: string): string {
  const base = `$aws/things/${assertThingName(thing)}/shadow`;
  return shadowName === undefined ? base : `${base}/name/${assertShadowName(shadowName)}`;
}

export function shadowTopic(thing: string, shadowName: string | undefined, suffix: ShadowTopicSuffix): string {
  return `${shadowTopicPrefix(thing, shadowName)}/${suffix}`;
}

/** Every reserved topic of one shadow, by name. */
export function shadowTopics(thing: string, shadowName?: string) {
  const p = shadowTopicPrefix(thing, shadowName);
  return {
    get: `${p}/get`,
    getAccepted: `${p}/get/accepted`,
    getRejected: `${p}/get/rejected`,
    update: `${p}/update`,
    updateAccepted: `${p}/update/accepted`,
    updateRejected: `${p}/update/rejected`,
    updateDelta: `${p}/update/delta`,
    updateDocuments: `${p}/update/documents`,
    delete: `${p}/delete`,
    deleteAccepted: `${p}/delete/accepted`,
    deleteRejected: `${p}/delete/rejected`,
  } as const;
}

const ANY_THING_SHADOW = '$aws/things/+/shadow';

/** Topic filters that match a shadow topic of every thing (the cloud's subscriptions, not a device's). */
export const shadowTopicFilters = {
  /** Every shadow topic of every thing, classic and named, requests and responses alike. */
  all: `${ANY_THING_SHADOW}/#`,
  /** One topic of every thing's classic shadow: `classic('update/delta')` is `$aws/things/+/shadow/update/delta`. */
  classic: (suffix: ShadowTopicSuffix) => `${ANY_THING_SHADOW}/${suffix}`,
  /** One topic of every named shadow of every thing: `$aws/things/+/shadow/name/+/update/delta`. */
  named: (suffix: ShadowTopicSuffix) => `${ANY_THING_SHADOW}/name/+/${suffix}`,
} as const;

export interface ParsedShadowTopic {
  readonly thingName: string;
  /** Undefined for the classic (unnamed) shadow. */
  readonly shadowName: string | undefined;
  readonly operation: ShadowOperation;
  /** Undefined for a request topic; otherwise the response or event kind. */
  readonly response: 'accepted' | 'rejected' | 'delta' | 'documents' | undefined;
}

const RESPONSES: Record<ShadowOperation, readonly string[]> = {
  get: ['accepted', 'rejected'],
  update: ['accepted', 'rejected', 'delta', 'documents'],
  delete: ['accepted', 'rejected'],
};

/** Parses a reserved shadow topic; returns undefined for anything else (including wildcards). */
export function parseShadowTopic(topic: string): ParsedShadowTopic | undefined {
  const parts = topic.split('/');
  if (parts.length < 5 || parts[0] !== '$aws' || parts[1] !== 'things' || parts[3] !== 'shadow') return undefined;
  const thingName = parts[2];
  if (!isValidThingName(thingName)) return undefined;
  let rest = parts.slice(4);
  let shadowName: string | undefined;
  if (rest[0] === 'name') {
    shadowName = rest[1];
    if (!isValidShadowName(shadowName)) return undefined;
    rest = rest.slice(2);
  }
  const [op, response, ...extra] = rest;
  if (extra.length > 0 || (op !== 'get' && op !== 'update' && op !== 'delete')) return undefined;
  if (response !== undefined && !RESPONSES[op].includes(response)) return undefined;
  return {
    thingName,
    shadowName,
    operation: op,
    response: response as ParsedShadowTopic['response'],
  };
}

/** Parses an application topic `pifleet/{thing}/{kind}`. */
export function parseAppTopic(topic: string): { thingName: string; kind: AppTopicKind } | undefined {
  const parts = topic.split('/');
  if (parts.length !== 3 || parts[0] !== APP_PREFIX) return undefined;
  const [, thingName, kind] = parts;
  if (!isValidThingName(thingName)) return undefined;
  if (kind !== 'telemetry' && kind !== 'status' && kind !== 'commands' && kind !== 'alerts') return undefined;
  return { thingName, kind };
}

/**
 * Basic Ingest: a device publishes to `$aws/rules/{ruleName}/{topic}` to hand a message to one rule
 * without the broker delivering it to subscribers ("Reducing messaging costs with Basic Ingest").
 * The rule's `topic()` sees `{topic}` only. Undefined for any other topic.
 */
export function parseBasicIngestTopic(topic: string): { ruleName: string; topic: string } | undefined {
  const prefix = '$aws/rules/';
  if (!topic.startsWith(prefix)) return undefined;
  const cut = topic.indexOf('/', prefix.length);
  return cut < 0
    ? { ruleName: topic.slice(prefix.length), topic: '' }
    : { ruleName: topic.slice(prefix.length, cut), topic: topic.slice(cut + 1) };
}

/** Presence lifecycle topics IoT Core publishes for every client connection. */
export const presenceTopics = {
  connected: (clientId: string) => `$aws/events/presence/connected/${clientId}`,
  disconnected: (clientId: string) => `$aws/events/presence/disconnected/${clientId}`,
  connectedFilter: '$aws/events/presence/connected/+',
  disconnectedFilter: '$aws/events/presence/disconnected/+',
  allFilter: '$aws/events/presence/+/+',
} as const;

export function parsePresenceTopic(
  topic: string,
): { eventType: 'connected' | 'disconnected'; clientId: string } | undefined {
  const parts = topic.split('/');
  if (parts.length !== 5 || parts[0] !== '$aws' || parts[1] !== 'events' || parts[2] !== 'presence') return undefined;
  const [, , , eventType, clientId] = parts;
  if ((eventType !== 'connected' && eventType !== 'disconnected') || !clientId) return undefined;
  return { eventType, clientId };
}

export function isReservedTopic(topic: string): boolean {
  return topic.startsWith('$');
}

const PAYLOAD_FORMATS = new Set(['json', 'cbor']);

/**
 * Whether a client (an MQTT device or a data-plane Publish) may publish to `topic`. Every topic not
 * starting with `$` may be; of the reserved ones, only those the AWS IoT Developer Guide ("Reserved
 * topics") lists with the Publish operation: shadow get/update/delete requests (classic and named),
 * jobs requests, Device Defender metrics, streams get/describe, fleet-provisioning requests and
 * basic ingest (`$aws/rules/{rule}/...`). Response and event topics (`.../update/accepted`,
 * `$aws/events/...`), `$SYS/...` and any other `$` topic are AWS IoT's to publish.
 */
export function isPublishableTopic(topic: string): boolean {
  if (!isReservedTopic(topic)) return true;
  const p = topic.split('/');
  if (p[0] !== '$aws') return false;
  const format = (i: number) => p.length === i + 1 && PAYLOAD_FORMATS.has(p[i] as string);
  switch (p[1]) {
    case 'things': {
      if (!p[2]) return false;
      switch (p[3]) {
        case 'shadow': {
          const shadow = parseShadowTopic(topic);
          return shadow !== undefined && shadow.response === undefined;
        }
        case 'jobs':
          // jobs/get, jobs/start-next, jobs/{jobId}/get, jobs/{jobId}/update
          if (p.length === 5) return p[4] === 'get' || p[4] === 'start-next';
          return p.length === 6 && !!p[4] && (p[5] === 'get' || p[5] === 'update');
        case 'defender':
          return p[4] === 'metrics' && format(5);
        case 'streams':
          return !!p[4] && (p[5] === 'get' || p[5] === 'describe') && format(6);
        default:
          return false;
      }
    }
    case 'certificates':
      return (p[2] === 'create' || p[2] === 'create-from-csr') && format(3);
    case 'provisioning-templates':
      return !!p[2] && p[3] === 'provision' && format(4);
    case 'rules':
      return !!p[2];
    default:
      return false;
  }
}

/** IoT Core's topic size quotas (the local core reads them from its limits; default AWS's). */
export interface TopicLimits {
  readonly maxTopicBytes: number;
  readonly maxTopicSlashes: number;
}

const DEFAULT_TOPIC_LIMITS: TopicLimits = Object.freeze({
  maxTopicBytes: LIMITS.maxTopicBytes,
  maxTopicSlashes: LIMITS.maxTopicSlashes,
});

/**
 * Checks a topic name used in PUBLISH. Returns a reason, or undefined when valid:
 * non-empty, at most 256 UTF-8 bytes, no wildcards or NUL, and at most 7 slashes not counting
 * an AWS reserved prefix (see countedSlashes).
 */
export function checkTopicName(topic: string, limits: TopicLimits = DEFAULT_TOPIC_LIMITS): string | undefined {
  if (topic.length === 0) return 'topic is empty';
  if (utf8Length(topic) > limits.maxTopicBytes) return `topic is longer than ${limits.maxTopicBytes} bytes`;
  if (topic.includes('\u0000')) return 'topic contains a NUL character';
  if (topic.includes('+') || topic.includes('#')) return 'topic name contains a wildcard';
  if (countedSlashes(topic) > limits.maxTopicSlashes) {
    return `topic has more than ${limits.maxTopicSlashes} forward slashes`;
  }
  return undefined;
}

/** Checks a topic filter used in SUBSCRIBE (MQTT 3.1.1 section 4.7 wildcard rules plus IoT's limits). */
export function checkTopicFilter(filter: string, limits: TopicLimits = DEFAULT_TOPIC_LIMITS): string | undefined {
  if (filter.length === 0) return 'topic filter is empty';
  if (utf8Length(filter) > limits.maxTopicBytes) return `topic filter is longer than ${limits.maxTopicBytes} bytes`;
  if (filter.includes('\u0000')) return 'topic filter contains a NUL character';
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i] as string;
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) {
      return "'#' must be a whole level and the last one";
    }
    if (level.includes('+') && level !== '+') return "'+' must be a whole level";
  }
  if (countedSlashes(filter) > limits.maxTopicSlashes) {
    return `topic filter has more than ${limits.maxTopicSlashes} forward slashes`;
  }
  return undefined;
}

function slashCount(s: string, from = 0): number {
  let n = 0;
  for (let i = from; i < s.length; i++) if (s.charCodeAt(i) === 47) n++;
  return n;
}

const BASIC_INGEST_PREFIX = '$aws/rules/';

/**
 * The slashes IoT Core counts against its limit: all of an application topic's; of a Basic Ingest
 * topic (`$aws/rules/{rule}/...`) only those after the reserved prefix, which AWS does not count;
 * none of another `$` topic's, whose shape AWS defines (isPublishableTopic checks it).
 */
function countedSlashes(topic: string): number {
  if (!isReservedTopic(topic)) return slashCount(topic);
  if (!topic.startsWith(BASIC_INGEST_PREFIX)) return 0;
  const ruleEnd = topic.indexOf('/', BASIC_INGEST_PREFIX.length);
  return ruleEnd < 0 ? 0 : slashCount(topic, ruleEnd + 1);
}

/**
 * MQTT topic matching. A filter whose first level is a wildcard does not match topics that
 * start with `$` (MQTT 3.1.1 section 4.7.2).
 */
export function topicMatches(filter: string, topic: string): boolean {
  if (filter === topic) return true;
  const f = filter.split('/');
  const t = topic.split('/');
  if ((f[0] === '+' || f[0] === '#') && topic.startsWith('$')) return false;
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/**
 * The topic filters the web console follows for its live view, wherever it runs (the local core's
 * bus, or MQTT over WebSocket to AWS IoT Core): presence, telemetry, alerts, and the classic
 * shadow's documents and deletions of every thing. An operator's policy must allow subscribing to
 * exactly these (and receiving what they match).
 */
export const consoleFeedFilters = {
  presence: presenceTopics.allFilter,
  telemetry: appTopicFilters.telemetry,
  alerts: appTopicFilters.alerts,
  shadowDocuments: shadowTopicFilters.classic('update/documents'),
  shadowDeleted: shadowTopicFilters.classic('delete/accepted'),
} as const;
