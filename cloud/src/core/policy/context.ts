import type { PatternPart } from './wildcard.js';

/** The IoT policy actions the MQTT broker authorizes. */
export const IOT_ACTIONS = ['iot:Connect', 'iot:Publish', 'iot:RetainPublish', 'iot:Subscribe', 'iot:Receive'] as const;
export type IotAction = (typeof IOT_ACTIONS)[number];

/** Subject or issuer fields of the client certificate, by IoT's attribute names (CommonName, Organization, …). */
export type DistinguishedName = Readonly<Partial<Record<string, string>>>;

/** Facts about the client certificate that `${iot:Certificate.*}` variables can name. */
export interface CertificateAttributes {
  readonly subject?: DistinguishedName;
  readonly issuer?: DistinguishedName;
  readonly serialNumber?: string;
  readonly notBefore?: string;
  readonly notAfter?: string;
}

/**
 * Everything about one MQTT connection that policy evaluation may read. All of it is fixed for
 * the life of the connection (or until the registry changes the identity), so a connection's
 * policies are compiled once against it.
 */
export interface PolicyContext {
  readonly region: string;
  readonly accountId: string;
  /** The MQTT client id of the connection. */
  readonly clientId: string;
  /** Things the certificate is attached to. */
  readonly thingNames: readonly string[];
  readonly certificateId?: string;
  readonly certificate?: CertificateAttributes;
  /** `iot:ConnectAttributes`: `PersistentConnect` (clean session off) and/or `LastWill`. */
  readonly connectAttributes?: readonly string[];
  readonly sourceIp?: string;
  /**
   * Registry facts of the connection's thing (see connectionThingName), for
   * `${iot:Connection.Thing.Attributes[name]}` and `${iot:Connection.Thing.ThingTypeName}`.
   */
  readonly thing?: { readonly attributes: Readonly<Record<string, string>>; readonly thingTypeName?: string };
}

/** A value of a condition key or policy variable: one string, a set of strings, or absent. */
export type ContextValue = string | readonly string[] | undefined;

/**
 * The connection's thing: the client id, when a thing of that name is attached to the
 * certificate (AWS IoT's non-exclusive thing association). Otherwise there is none, and
 * `${iot:Connection.Thing.ThingName}` does not resolve.
 */
export function connectionThingName(ctx: PolicyContext): string | undefined {
  return ctx.thingNames.includes(ctx.clientId) ? ctx.clientId : undefined;
}

/** Builds the lower-cased key → value table of a context. */
export function contextValues(ctx: PolicyContext): ReadonlyMap<string, ContextValue> {
  const values = new Map<string, ContextValue>();
  const put = (key: string, value: ContextValue) => {
    if (value !== undefined) values.set(key.toLowerCase(), value);
  };
  const thing = connectionThingName(ctx);
  put('iot:ClientId', ctx.clientId);
  put('iot:Connection.Thing.ThingName', thing);
  put('iot:Connection.Thing.IsAttached', thing === undefined ? 'false' : 'true');
  put('iot:ConnectAttributes', ctx.connectAttributes ?? []);
  put('aws:SourceIp', ctx.sourceIp);
  put('aws:Region', ctx.region);
  put('aws:AccountId', ctx.accountId);
  const cert = ctx.certificate;
  if (cert) {
    for (const [field, dn] of [
      ['Subject', cert.subject],
      ['Issuer', cert.issuer],
    ] as const) {
      for (const [attr, value] of Object.entries(dn ?? {})) put(`iot:Certificate.${field}.${attr}`, value);
    }
    put('iot:Certificate.SerialNumber', cert.serialNumber);
    put('iot:Certificate.Validity.NotBefore', cert.notBefore);
    put('iot:Certificate.Validity.NotAfter', cert.notAfter);
  }
  return values;
}

const VARIABLE = /\$\{([^}]*)\}/g;

/**
 * Splits a policy string into literal text (where `*` and `?` stay wildcards) and resolved
 * variable values (matched verbatim, as IAM does). `${*}`, `${?}` and `${$}` stand for those
 * characters literally; `${key, 'default'}` falls back to the default. Returns undefined when
 * a variable does not resolve to a single value: such a resource or condition value matches
 * nothing.
 */
export function resolveVariables(text: string, values: ReadonlyMap<string, ContextValue>): PatternPart[] | undefined {
  if (!text.includes('${')) return [{ kind: 'wild', text }];
  const parts: PatternPart[] = [];
  let last = 0;
  for (const match of text.matchAll(VARIABLE)) {
    const start = match.index;
    if (start > last) parts.push({ kind: 'wild', text: text.slice(last, start) });
    last = start + match[0].length;
    const inner = (match[1] ?? '').trim();
    if (inner === '*' || inner === '?' || inner === '$') {
      parts.push({ kind: 'exact', text: inner });
      continue;
    }
    const comma = inner.indexOf(',');
    const key = (comma < 0 ? inner : inner.slice(0, comma)).trim();
    const fallback = comma < 0 ? undefined : /^'(.*)'$/.exec(inner.slice(comma + 1).trim())?.[1];
    const value = values.get(key.toLowerCase());
    if (typeof value === 'string') parts.push({ kind: 'exact', text: value });
    else if (fallback !== undefined) parts.push({ kind: 'exact', text: fallback });
    else return undefined;
  }
  if (last < text.length) parts.push({ kind: 'wild', text: text.slice(last) });
  return parts;
}

/** The resource ARNs the broker asks about. */
export function iotResourceArn(
  ctx: Pick<PolicyContext, 'region' | 'accountId'>,
  kind: 'client' | 'topic' | 'topicfilter',
  name: string,
): string {
  return `arn:aws:iot:${ctx.region}:${ctx.accountId}:${kind}/${name}`;
}
