/**
 * The condition keys and policy variables of IoT Core policies, as the AWS IoT Developer Guide
 * lists them ("Basic AWS IoT Core policy variables", "Thing policy variables", "X.509 certificate
 * AWS IoT Core policy variables", "Connect policy examples" for iot:ConnectAttributes) with the
 * IAM global keys an MQTT connection has (aws:SourceIp, aws:SecureTransport, aws:CurrentTime,
 * aws:EpochTime). Names are case-insensitive, as IAM reads them; the attribute name inside
 * `iot:Connection.Thing.Attributes[...]` keeps its case, as thing attributes do.
 */

/** Subject and issuer fields the certificate variables name (iot:Certificate.Subject.<field>). */
export const CERTIFICATE_DN_FIELDS = [
  'DistinguishedNameQualifier',
  'Country',
  'Organization',
  'OrganizationalUnit',
  'State',
  'CommonName',
  'SerialNumber',
  'Title',
  'Surname',
  'GivenName',
  'Initials',
  'Pseudonym',
  'GenerationQualifier',
] as const;

const ATTRIBUTE_KEY = /^iot:connection\.thing\.attributes\[(.+)\]$/i;
const ATTRIBUTE_PREFIX = 'iot:connection.thing.attributes[';

/** The lookup form of a key: lower case, except a thing attribute's name. */
export function normalizeKey(key: string): string {
  const attribute = ATTRIBUTE_KEY.exec(key);
  return attribute ? `${ATTRIBUTE_PREFIX}${attribute[1]}]` : key.toLowerCase();
}

/** The lookup form of one thing attribute's key. */
export function attributeKey(name: string): string {
  return `${ATTRIBUTE_PREFIX}${name}]`;
}

/** Keys whose value is the time of the request, not a fact of the connection. */
export const TIME_KEYS: ReadonlySet<string> = new Set(['aws:currenttime', 'aws:epochtime']);

const STATIC_KEYS: ReadonlySet<string> = new Set([
  'iot:clientid',
  'iot:domainname',
  'iot:connectattributes',
  'iot:connection.thing.thingname',
  'iot:connection.thing.thingtypename',
  'iot:connection.thing.isattached',
  'aws:sourceip',
  'aws:securetransport',
  'iot:certificate.serialnumber',
  'iot:certificate.validity.notbefore',
  'iot:certificate.validity.notafter',
  ...CERTIFICATE_DN_FIELDS.flatMap((f) => [`iot:certificate.subject.${f}`, `iot:certificate.issuer.${f}`]).map((k) =>
    k.toLowerCase(),
  ),
]);

/**
 * Keys AWS documents that the local IoT Core does not have the facts for: refused at CreatePolicy
 * rather than evaluated as absent, so a policy does not behave differently here without saying so.
 */
const NOT_LOCAL: readonly (readonly [RegExp, string])[] = [
  [
    // `.List` (every value) and an index (one value other than the first) of a multi-valued field.
    /^iot:certificate\.(subject|issuer)\.[a-z]+\.(list|\d+)$/,
    'the broker reads the first value of each certificate name field only',
  ],
  [
    /^iot:certificate\.(subject|issuer)\.alternativename\./,
    "the broker does not read the certificate's alternative names",
  ],
  [/^cognito-identity\.amazonaws\.com:/, 'the local IoT Core has no Amazon Cognito identities'],
];

export type KeyKind =
  | { readonly known: true; readonly time: boolean }
  | { readonly known: false; readonly reason: string };

/** Whether the local IoT Core evaluates a condition key (or resolves a policy variable). */
export function keyKind(key: string): KeyKind {
  const k = normalizeKey(key);
  if (TIME_KEYS.has(k)) return { known: true, time: true };
  if (STATIC_KEYS.has(k) || k.startsWith(ATTRIBUTE_PREFIX)) return { known: true, time: false };
  for (const [pattern, why] of NOT_LOCAL) {
    if (pattern.test(k)) return { known: false, reason: `is not evaluated by the local IoT Core: ${why}` };
  }
  return { known: false, reason: 'is not a key IoT Core sets for an MQTT connection' };
}
