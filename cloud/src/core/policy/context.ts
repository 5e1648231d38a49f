import { attributeKey, normalizeKey } from './keys.js';
import { isoSeconds } from './operands.js';
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
  /** `iot:DomainName`: the server name the client asked for in its TLS handshake (SNI), when it sent one. */
  readonly domainName?: string;
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

/**
 * A certificate validity date as the date operators read it: the TLS layer reports OpenSSL's
 * `Mar  3 07:19:06 2026 GMT`; the policy sees ISO 8601 (`2026-03-03T07:19:06Z`), a form
 * DateLessThan and friends accept. A date that does not parse is passed on as it is.
 */
function validityDate(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? text : isoSeconds(ms);
}

/**
 * Builds the key → value table of a context, by {@link normalizeKey}'s form. The time keys
 * (aws:CurrentTime, aws:EpochTime) are not in it: they change while the connection lasts, and
 * the evaluator reads them per request.
 */
export function contextValues(ctx: PolicyContext): ReadonlyMap<string, ContextValue> {
  const values = new Map<string, ContextValue>();
  const put = (key: string, value: ContextValue) => {
    if (value !== undefined) values.set(normalizeKey(key), value);
  };
  const thing = connectionThingName(ctx);
  put('iot:ClientId', ctx.clientId);
  put('iot:Connection.Thing.ThingName', thing);
  put('iot:Connection.Thing.IsAttached', thing === undefined ? 'false' : 'true');
  // Type and attributes belong to the connection's thing only (the client id must be its name).
  if (thing !== undefined && ctx.thing) {
    put('iot:Connection.Thing.ThingTypeName', ctx.thing.thingTypeName);
    for (const [name, value] of Object.entries(ctx.thing.attributes)) values.set(attributeKey(name), value);
  }
  put('iot:ConnectAttributes', ctx.connectAttributes ?? []);
  put('iot:DomainName', ctx.domainName);
  put('aws:SourceIp', ctx.sourceIp);
  // Every MQTT connection to the broker is mutual TLS: there is no plaintext listener.
  put('aws:SecureTransport', 'true');
  const cert = ctx.certificate;
  if (cert) {
    for (const [field, dn] of [
      ['Subject', cert.subject],
      ['Issuer', cert.issuer],
    ] as const) {
      for (const [attr, value] of Object.entries(dn ?? {})) put(`iot:Certificate.${field}.${attr}`, value);
    }
    put('iot:Certificate.SerialNumber', cert.serialNumber);
    put('iot:Certificate.Validity.NotBefore', validityDate(cert.notBefore));
    put('iot:Certificate.Validity.NotAfter', validityDate(cert.notAfter));
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
    const value = values.get(normalizeKey(key));
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
