import { LIMITS, ownValue, parseJson } from '@pifleet/protocol';
import { API_RATE_QUOTAS } from './api-quotas.js';

/**
 * IoT Core's quotas, as the local core enforces them. Each has AWS's published default (AWS
 * General Reference, "AWS IoT Core endpoints and quotas", and the AWS IoT Developer Guide's quota
 * and Device Shadow pages); `--limits off` lifts the rates and counts, `--limits-file` changes
 * single values. What happens on a breach is the enforcing module's business (broker, shadow
 * service, HTTP server) and is listed in the README's quotas table.
 *
 * `kind` decides what `off` does: a `rate` or `count` is a throttle a load test may want lifted;
 * a `size` shapes the wire contract (a device that sends a 200 KB payload locally would fail in
 * AWS), so it stays unless a file changes it.
 */
export type QuotaKind = 'rate' | 'count' | 'size';

export interface QuotaSpec {
  /** AWS's default value. */
  readonly aws: number;
  readonly kind: QuotaKind;
  /** What is counted, per what: shown in the ready line's neighbourhood (help, README). */
  readonly unit: string;
  readonly description: string;
}

const rate = (aws: number, unit: string, description: string): QuotaSpec => ({ aws, kind: 'rate', unit, description });
const count = (aws: number, unit: string, description: string): QuotaSpec => ({
  aws,
  kind: 'count',
  unit,
  description,
});
const size = (aws: number, unit: string, description: string): QuotaSpec => ({ aws, kind: 'size', unit, description });

export const QUOTAS = {
  // Message broker: connections.
  connectsPerSecondPerAccount: rate(500, 'CONNECT/s per account', 'MQTT CONNECT requests per second, whole account'),
  connectsPerSecondPerClientId: rate(
    1,
    'CONNECT/s per client id',
    'MQTT CONNECT requests per second with one client id',
  ),
  connectionsPerAccount: count(500_000, 'connections per account', 'concurrent client connections'),
  clientIdBytes: size(LIMITS.maxClientIdBytes, 'bytes', 'client id length (UTF-8)'),
  // Message broker: publishing.
  publishesPerSecondPerConnection: rate(
    LIMITS.maxPublishesPerSecondPerConnection,
    'PUBLISH/s per connection',
    'inbound publish requests per second on one connection',
  ),
  publishBytesPerSecondPerConnection: rate(
    512 * 1024,
    'bytes/s per connection',
    'inbound payload bytes per second on one connection',
  ),
  inboundPublishesPerSecondPerAccount: rate(
    20_000,
    'PUBLISH/s per account',
    'inbound publish requests per second, whole account',
  ),
  messageBytes: size(LIMITS.maxMessageBytes, 'bytes', 'payload size of one message'),
  topicBytes: size(LIMITS.maxTopicBytes, 'bytes', 'topic name or filter length (UTF-8)'),
  topicSlashes: size(
    LIMITS.maxTopicSlashes,
    'slashes',
    'forward slashes in a topic or filter, not counting the reserved prefix of an `$aws/...` topic',
  ),
  inFlightMessagesPerClient: count(
    100,
    'unacknowledged QoS 1 messages per client',
    'QoS 1 messages sent to a client and not yet acknowledged',
  ),
  retainedMessagesPerAccount: count(500_000, 'retained messages per account', 'retained messages stored'),
  // Message broker: subscriptions.
  subscriptionsPerConnection: count(50, 'subscriptions per connection', 'topic filters one connection holds'),
  topicFiltersPerSubscribe: count(8, 'filters per SUBSCRIBE', 'topic filters in one SUBSCRIBE packet'),
  subscriptionsPerSecondPerAccount: rate(
    200,
    'subscriptions/s per account',
    'topic filters subscribed per second, whole account',
  ),
  // Device Shadow.
  shadowRequestsPerSecondPerThing: rate(20, 'requests/s per thing', 'Device Shadow requests per second for one thing'),
  shadowInFlightPerThing: count(
    LIMITS.maxShadowInFlightPerThing,
    'requests in flight per thing',
    'Device Shadow requests for one thing not yet answered',
  ),
  shadowDocumentBytes: size(LIMITS.maxShadowDocumentBytes, 'bytes', 'state part of a shadow document'),
  shadowDepth: size(LIMITS.maxShadowDepth, 'levels', 'nesting depth of desired and reported'),
  // Control plane: one rate per API operation (api-quotas.ts has the table and its source).
  ...API_RATE_QUOTAS,
} as const satisfies Record<string, QuotaSpec>;

export type QuotaName = keyof typeof QUOTAS;
export const QUOTA_NAMES = Object.freeze(Object.keys(QUOTAS) as QuotaName[]);

export type LimitsMode = 'aws' | 'off';
export const LIMITS_MODES: readonly LimitsMode[] = ['aws', 'off'];

/**
 * The limits a core runs with: a value per quota, or `null` where the quota is not enforced.
 * Frozen; built by {@link resolveLimits}.
 */
export interface Limits {
  readonly mode: LimitsMode;
  readonly values: Readonly<Record<QuotaName, number | null>>;
  /** Quotas whose value differs from AWS's default (what the ready line lists). */
  readonly changed: Readonly<Partial<Record<QuotaName, number | null>>>;
}

/** The value of one quota, or undefined when it is not enforced. */
export function limitOf(limits: Limits, name: QuotaName): number | undefined {
  return limits.values[name] ?? undefined;
}

/** A single value to change: a positive number, or null to stop enforcing that quota. */
export type LimitOverrides = Readonly<Partial<Record<QuotaName, number | null>>>;

/** IoT Core's defaults, or (`off`) no rates and counts; then the overrides. */
export function resolveLimits(mode: LimitsMode, overrides: LimitOverrides = {}): Limits {
  const values = {} as Record<QuotaName, number | null>;
  const changed: Partial<Record<QuotaName, number | null>> = {};
  for (const name of QUOTA_NAMES) {
    const spec: QuotaSpec = QUOTAS[name];
    const base = mode === 'off' && spec.kind !== 'size' ? null : spec.aws;
    const override = overrides[name];
    const value = override === undefined ? base : override;
    values[name] = value;
    if (value !== spec.aws) changed[name] = value;
  }
  return Object.freeze({ mode, values: Object.freeze(values), changed: Object.freeze(changed) });
}

/** Reads a limits file: a JSON object of quota name → positive number or null. Every problem at once. */
export function parseLimitOverrides(
  text: string,
): { ok: true; value: LimitOverrides } | { ok: false; problems: string[] } {
  const json = parseJson(text);
  if (!json.ok) return { ok: false, problems: [`not valid JSON (${json.message})`] };
  const raw = json.value;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { ok: false, problems: ['must be a JSON object of quota name → number or null'] };
  }
  const problems: string[] = [];
  const value: Partial<Record<QuotaName, number | null>> = {};
  for (const [key, v] of Object.entries(raw)) {
    if (ownValue(QUOTAS, key) === undefined) {
      const hint = QUOTA_NAMES.find((n) => n.toLowerCase() === key.toLowerCase());
      problems.push(
        hint
          ? `unknown quota "${key}" (did you mean "${hint}"?)`
          : `unknown quota "${key}" (known: ${QUOTA_NAMES.join(', ')})`,
      );
      continue;
    }
    if (v === null || (typeof v === 'number' && Number.isFinite(v) && v > 0 && v <= Number.MAX_SAFE_INTEGER)) {
      value[key as QuotaName] = v;
    } else {
      problems.push(`${key}: must be a positive number or null (not enforced), got ${JSON.stringify(v)}`);
    }
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, value };
}
