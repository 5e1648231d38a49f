import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * AWS Signature Version 4 verification, as the SigV4 specification defines the canonical request,
 * the string to sign and the signing key: the header form (`Authorization: AWS4-HMAC-SHA256 ...`)
 * for the HTTP APIs, and the query form (a presigned URL) as IoT Core's device gateway checks an
 * MQTT-over-WebSocket upgrade. The server recomputes the signature from what it actually received,
 * so a changed body, path, query or signed header fails verification.
 */

/** A request as it arrived on the wire. */
export interface SignedRequestParts {
  readonly method: string;
  /** The path exactly as sent (still percent-encoded), without the query string. */
  readonly rawPath: string;
  /** The query string as sent, without the leading `?` (may be empty). */
  readonly rawQuery: string;
  /** Header name/value pairs in arrival order (Node's `rawHeaders` pairs). */
  readonly rawHeaders: readonly string[];
  readonly body: Uint8Array;
}

export interface SigV4VerifierOptions {
  /** The region a signature must be scoped to. */
  readonly region: string;
  /** Signing names (services) a signature may be scoped to, e.g. `iot`, `iotdata`, `execute-api`. */
  readonly services: readonly string[];
  /** The secret access key of a known access key id, or undefined. */
  readonly secretFor: (accessKeyId: string) => string | undefined;
  /** Current time in ms since the epoch. */
  readonly now: () => number;
  /** Allowed clock skew between the signer and this server. Default 15 minutes, as AWS allows. */
  readonly maxSkewMs?: number;
}

export interface SigV4Principal {
  readonly accessKeyId: string;
  readonly service: string;
  readonly region: string;
}

export type SigV4Failure = {
  readonly ok: false;
  /** AWS error name for `x-amzn-ErrorType`. */
  readonly errorType:
    | 'MissingAuthenticationTokenException'
    | 'IncompleteSignatureException'
    | 'UnrecognizedClientException'
    | 'InvalidSignatureException';
  readonly message: string;
};

export type SigV4Result = ({ readonly ok: true } & SigV4Principal) | SigV4Failure;

const ALGORITHM = 'AWS4-HMAC-SHA256';
const DEFAULT_MAX_SKEW_MS = 15 * 60 * 1000;
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

const fail = (errorType: SigV4Failure['errorType'], message: string): SigV4Failure => ({
  ok: false,
  errorType,
  message,
});

/** RFC 3986 percent-encoding of everything but the unreserved characters, as SigV4 requires. */
export function uriEncode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * The canonical URI: the path normalized (empty, `.` and `..` segments resolved) and each segment
 * URI-encoded once more, because every service but S3 signs the doubly-encoded path.
 */
export function canonicalUri(rawPath: string): string {
  const segments: string[] = [];
  for (const segment of rawPath.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(uriEncode(segment));
  }
  const trailing = segments.length > 0 && rawPath.endsWith('/') ? '/' : '';
  return `/${segments.join('/')}${trailing}`;
}

/** The canonical query string, or undefined when the query cannot be percent-decoded. */
export function canonicalQuery(rawQuery: string): string | undefined {
  if (rawQuery === '') return '';
  const pairs: Array<[string, string]> = [];
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const rawKey = eq === -1 ? part : part.slice(0, eq);
    const rawValue = eq === -1 ? '' : part.slice(eq + 1);
    try {
      pairs.push([uriEncode(decodeURIComponent(rawKey)), uriEncode(decodeURIComponent(rawValue))]);
    } catch {
      return undefined;
    }
  }
  pairs.sort(([ka, va], [kb, vb]) => (ka < kb ? -1 : ka > kb ? 1 : va < vb ? -1 : va > vb ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

function headerValues(rawHeaders: readonly string[]): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] as string).toLowerCase();
    const value = (rawHeaders[i + 1] as string).trim().replace(/\s+/g, ' ');
    const list = map.get(name);
    if (list) list.push(value);
    else map.set(name, [value]);
  }
  return map;
}

const sha256Hex = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');
const hmac = (key: string | Buffer, data: string): Buffer => createHmac('sha256', key).update(data).digest();

/** Derives the SigV4 signing key for a date (YYYYMMDD), region and service. */
export function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  return hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), 'aws4_request');
}

export interface ParsedAuthorization {
  readonly accessKeyId: string;
  readonly date: string;
  readonly region: string;
  readonly service: string;
  readonly signedHeaders: readonly string[];
  readonly signature: string;
}

export function parseAuthorization(header: string): ParsedAuthorization | string {
  if (!header.startsWith(`${ALGORITHM} `)) return `Authorization header requires the ${ALGORITHM} algorithm.`;
  const fields = new Map<string, string>();
  for (const part of header.slice(ALGORITHM.length + 1).split(',')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const credential = fields.get('Credential');
  const signedHeaders = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (credential === undefined || signedHeaders === undefined || signature === undefined) {
    return "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.";
  }
  const scope = credential.split('/');
  if (scope.length !== 5 || scope[4] !== 'aws4_request' || scope.some((s) => s === '')) {
    return 'Credential must have the form <access key id>/<date>/<region>/<service>/aws4_request.';
  }
  if (!/^[0-9a-f]{64}$/.test(signature)) return 'Signature must be 64 lowercase hexadecimal characters.';
  const [accessKeyId, date, region, service] = scope as [string, string, string, string, string];
  return { accessKeyId, date, region, service, signedHeaders: signedHeaders.split(';'), signature };
}

export function parseAmzDate(value: string): number | undefined {
  const m = AMZ_DATE.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m as unknown as [string, string, string, string, string, string, string];
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * Builds the canonical request (exported for tests and for signing helpers). `uri` defaults to the
 * doubly-encoded, normalized path every service but S3 signs; S3 passes the path as sent.
 */
export function canonicalRequest(
  request: SignedRequestParts,
  signedHeaders: readonly string[],
  payloadHash: string,
  uri: string = canonicalUri(request.rawPath),
): string | undefined {
  const query = canonicalQuery(request.rawQuery);
  if (query === undefined) return undefined;
  const headers = headerValues(request.rawHeaders);
  const canonicalHeaders = signedHeaders.map((name) => `${name}:${(headers.get(name) ?? []).join(',')}\n`).join('');
  return [request.method.toUpperCase(), uri, query, canonicalHeaders, signedHeaders.join(';'), payloadHash].join('\n');
}

/** Verifies a request's SigV4 signature; never throws. */
export function verifySigV4(request: SignedRequestParts, options: SigV4VerifierOptions): SigV4Result {
  const headers = headerValues(request.rawHeaders);
  const authorization = headers.get('authorization');
  if (authorization === undefined || authorization.length === 0) {
    return fail('MissingAuthenticationTokenException', 'Missing Authentication Token');
  }
  if (authorization.length > 1)
    return fail('IncompleteSignatureException', 'Only one Authorization header is allowed.');
  const parsed = parseAuthorization(authorization[0] as string);
  if (typeof parsed === 'string') return fail('IncompleteSignatureException', parsed);

  const amzDate = headers.get('x-amz-date')?.[0];
  if (amzDate === undefined) {
    return fail('IncompleteSignatureException', "Authorization header requires existence of an 'X-Amz-Date' header.");
  }
  const signedAt = parseAmzDate(amzDate);
  if (signedAt === undefined) return fail('IncompleteSignatureException', `X-Amz-Date '${amzDate}' is not valid.`);

  const signed = parsed.signedHeaders;
  const sortedUnique = signed.every((h, i) => h === h.toLowerCase() && (i === 0 || (signed[i - 1] as string) < h));
  if (!sortedUnique) {
    return fail('IncompleteSignatureException', 'SignedHeaders must be lowercase, sorted and without duplicates.');
  }
  if (!signed.includes('host')) return fail('IncompleteSignatureException', "SignedHeaders must include 'host'.");
  if (!signed.includes('x-amz-date')) {
    return fail('IncompleteSignatureException', "SignedHeaders must include 'x-amz-date'.");
  }

  const secret = options.secretFor(parsed.accessKeyId);
  if (secret === undefined || headers.has('x-amz-security-token')) {
    return fail('UnrecognizedClientException', 'The security token included in the request is invalid.');
  }

  const now = options.now();
  const skew = options.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
  if (Math.abs(now - signedAt) > skew) {
    return fail(
      'InvalidSignatureException',
      `Signature expired: ${amzDate} is outside the allowed clock skew of ${Math.round(skew / 60000)} minutes.`,
    );
  }
  if (parsed.date !== amzDate.slice(0, 8)) {
    return fail('InvalidSignatureException', 'Credential date does not match the X-Amz-Date date.');
  }
  if (parsed.region !== options.region) {
    return fail('InvalidSignatureException', `Credential should be scoped to a valid region, not '${parsed.region}'.`);
  }
  if (!options.services.includes(parsed.service)) {
    return fail(
      'InvalidSignatureException',
      `Credential should be scoped to correct service, not '${parsed.service}'.`,
    );
  }

  const canonical = canonicalRequest(request, signed, sha256Hex(request.body));
  if (canonical === undefined) return fail('InvalidSignatureException', 'The query string is not validly encoded.');
  if (!signatureMatches(parsed.signature, secret, parsed, amzDate, canonical)) return mismatch();
  return { ok: true, accessKeyId: parsed.accessKeyId, service: parsed.service, region: parsed.region };
}

/** Whether `given` (hex) is the signature of `canonical` under the secret and the credential's scope. */
function signatureMatches(
  given: string,
  secret: string,
  scope: { readonly date: string; readonly region: string; readonly service: string },
  amzDate: string,
  canonical: string,
): boolean {
  const credentialScope = `${scope.date}/${scope.region}/${scope.service}/aws4_request`;
  const stringToSign = [ALGORITHM, amzDate, credentialScope, sha256Hex(canonical)].join('\n');
  const expected = createHmac('sha256', signingKey(secret, scope.date, scope.region, scope.service))
    .update(stringToSign)
    .digest();
  const bytes = Buffer.from(given, 'hex');
  return bytes.length === expected.length && timingSafeEqual(bytes, expected);
}

const mismatch = () =>
  fail(
    'InvalidSignatureException',
    'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
  );

export interface SigV4QueryOptions extends SigV4VerifierOptions {
  /**
   * The session token that must come with an access key id (temporary credentials), or undefined
   * for a long-term key, with which no token may come. Default: every key is long-term.
   */
  readonly sessionTokenFor?: (accessKeyId: string) => string | undefined;
}

/** SigV4's longest presigned lifetime (seven days). */
const MAX_EXPIRES_SEC = 604_800;
/**
 * The payload hash of a presigned WebSocket upgrade: the SHA-256 of its empty body, as AWS IoT's
 * own signing example computes it and the device SDK's CRT signs (`AwsSignedBodyValue.EmptySha256`).
 */
const EMPTY_SHA256 = sha256Hex('');
/** The query parameters a presigned signature does not cover. */
const UNSIGNED_QUERY_PARAMS = new Set(['X-Amz-Signature', 'X-Amz-Security-Token']);

/** The query's parameters by decoded name (values decoded), or undefined when one cannot be decoded. */
function queryParams(rawQuery: string): Map<string, string[]> | undefined {
  const params = new Map<string, string[]>();
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    let key: string;
    let value: string;
    try {
      key = decodeURIComponent(eq === -1 ? part : part.slice(0, eq));
      value = decodeURIComponent(eq === -1 ? '' : part.slice(eq + 1));
    } catch {
      return undefined;
    }
    const list = params.get(key);
    if (list) list.push(value);
    else params.set(key, [value]);
  }
  return params;
}

/** The raw query without the parameters named (by their decoded names). */
function queryWithout(rawQuery: string, names: ReadonlySet<string>): string {
  return rawQuery
    .split('&')
    .filter((part) => {
      const eq = part.indexOf('=');
      try {
        return !names.has(decodeURIComponent(eq === -1 ? part : part.slice(0, eq)));
      } catch {
        return true;
      }
    })
    .join('&');
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Verifies a request presigned in its query string (`X-Amz-Algorithm`, `X-Amz-Credential`,
 * `X-Amz-Date`, `X-Amz-SignedHeaders`, `X-Amz-Signature`, optionally `X-Amz-Expires`) as AWS IoT
 * Core's device gateway verifies the upgrade of an MQTT-over-WebSocket connection: the canonical
 * query leaves out `X-Amz-Signature` and `X-Amz-Security-Token` (IoT wants the session token
 * appended after signing), and the payload is the upgrade's empty body. Without `X-Amz-Expires`
 * (the device SDK's CRT sends none) the date must be within the clock skew; with it, the URL is
 * good from its date (less the skew) until date + expires, at most seven days. Never throws.
 */
export function verifySigV4Query(request: Omit<SignedRequestParts, 'body'>, options: SigV4QueryOptions): SigV4Result {
  const params = queryParams(request.rawQuery);
  if (params === undefined) return fail('IncompleteSignatureException', 'The query string is not validly encoded.');
  if (!params.has('X-Amz-Algorithm') && !params.has('X-Amz-Credential') && !params.has('X-Amz-Signature')) {
    return fail('MissingAuthenticationTokenException', 'Missing Authentication Token');
  }
  const one = (name: string): string | undefined => {
    const values = params.get(name);
    return values?.length === 1 ? values[0] : undefined;
  };
  for (const [name, values] of params) {
    if (name.startsWith('X-Amz-') && values.length > 1) {
      return fail('IncompleteSignatureException', `The query parameter ${name} may appear only once.`);
    }
  }
  const algorithm = one('X-Amz-Algorithm');
  const credential = one('X-Amz-Credential');
  const amzDate = one('X-Amz-Date');
  const signedHeaders = one('X-Amz-SignedHeaders');
  const signature = one('X-Amz-Signature');
  const expires = one('X-Amz-Expires');
  if (algorithm !== ALGORITHM) {
    return fail('IncompleteSignatureException', `X-Amz-Algorithm must be ${ALGORITHM}.`);
  }
  if (credential === undefined || amzDate === undefined || signedHeaders === undefined || signature === undefined) {
    return fail(
      'IncompleteSignatureException',
      'A presigned request requires the X-Amz-Credential, X-Amz-Date, X-Amz-SignedHeaders and X-Amz-Signature parameters.',
    );
  }
  const scope = credential.split('/');
  if (scope.length !== 5 || scope[4] !== 'aws4_request' || scope.some((s) => s === '')) {
    return fail(
      'IncompleteSignatureException',
      'X-Amz-Credential must have the form <access key id>/<date>/<region>/<service>/aws4_request.',
    );
  }
  const [accessKeyId, date, region, service] = scope as [string, string, string, string, string];
  if (!/^[0-9a-f]{64}$/.test(signature)) {
    return fail('IncompleteSignatureException', 'X-Amz-Signature must be 64 lowercase hexadecimal characters.');
  }
  const signedAt = parseAmzDate(amzDate);
  if (signedAt === undefined) return fail('IncompleteSignatureException', `X-Amz-Date '${amzDate}' is not valid.`);
  if (
    expires !== undefined &&
    !(/^\d{1,6}$/.test(expires) && Number(expires) >= 1 && Number(expires) <= MAX_EXPIRES_SEC)
  ) {
    return fail('IncompleteSignatureException', `X-Amz-Expires must be from 1 to ${MAX_EXPIRES_SEC} seconds.`);
  }
  const signed = signedHeaders.split(';');
  const sortedUnique = signed.every((h, i) => h === h.toLowerCase() && (i === 0 || (signed[i - 1] as string) < h));
  if (!sortedUnique) {
    return fail(
      'IncompleteSignatureException',
      'X-Amz-SignedHeaders must be lowercase, sorted and without duplicates.',
    );
  }
  if (!signed.includes('host')) return fail('IncompleteSignatureException', "X-Amz-SignedHeaders must include 'host'.");

  const secret = options.secretFor(accessKeyId);
  const token = one('X-Amz-Security-Token');
  const expectedToken = secret === undefined ? undefined : options.sessionTokenFor?.(accessKeyId);
  const tokenOk =
    (token === undefined && !params.has('X-Amz-Security-Token') && expectedToken === undefined) ||
    (token !== undefined && expectedToken !== undefined && sameSecret(token, expectedToken));
  if (secret === undefined || !tokenOk) {
    return fail('UnrecognizedClientException', 'The security token included in the request is invalid.');
  }
  if (date !== amzDate.slice(0, 8)) {
    return fail('InvalidSignatureException', 'Credential date does not match the X-Amz-Date date.');
  }
  if (region !== options.region) {
    return fail('InvalidSignatureException', `Credential should be scoped to a valid region, not '${region}'.`);
  }
  if (!options.services.includes(service)) {
    return fail('InvalidSignatureException', `Credential should be scoped to correct service, not '${service}'.`);
  }
  const canonical = canonicalRequest(
    { ...request, rawQuery: queryWithout(request.rawQuery, UNSIGNED_QUERY_PARAMS), body: new Uint8Array() },
    signed,
    EMPTY_SHA256,
  );
  if (canonical === undefined) return fail('IncompleteSignatureException', 'The query string is not validly encoded.');
  // The signature before the time: a tampered date or expiry is a bad signature, not an expired URL.
  if (!signatureMatches(signature, secret, { date, region, service }, amzDate, canonical)) return mismatch();

  const now = options.now();
  const skew = options.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
  const expired = expires === undefined ? Math.abs(now - signedAt) > skew : now > signedAt + Number(expires) * 1000;
  if (expired) return fail('InvalidSignatureException', `Signature expired: signed at ${amzDate}.`);
  if (signedAt - now > skew) {
    return fail('InvalidSignatureException', `Signature not yet current: ${amzDate} is in the future.`);
  }
  return { ok: true, accessKeyId, service, region };
}
