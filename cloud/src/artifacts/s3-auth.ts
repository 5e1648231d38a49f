import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import {
  canonicalRequest,
  parseAmzDate,
  parseAuthorization,
  type SignedRequestParts,
  signingKey,
  uriEncode,
} from '../http/sigv4.js';
import { ArtifactError } from './errors.js';

/**
 * SigV4 as S3 applies it, on top of the core's SigV4 module (its canonical request, signing key and
 * Authorization parser): the path is signed as sent, encoded once and never normalized; the payload
 * hash is the `x-amz-content-sha256` header the client sends (a body's SHA-256, `UNSIGNED-PAYLOAD`,
 * or the streaming `STREAMING-UNSIGNED-PAYLOAD-TRAILER`); and a request can instead be presigned, its
 * signature in the query string (`X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`,
 * `X-Amz-SignedHeaders`, `X-Amz-Signature`) over an `UNSIGNED-PAYLOAD`. Failures are S3's error codes.
 */

const ALGORITHM = 'AWS4-HMAC-SHA256';
export const SERVICE = 's3';
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
export const STREAMING_UNSIGNED_TRAILER = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';
const MAX_SKEW_MS = 15 * 60 * 1000;
/** SigV4's longest presigned lifetime (seven days). */
const MAX_EXPIRES_SEC = 604_800;

/** Who may sign: the core's credentials (every operation) or the presigner's (reads only, as IoT's role). */
export interface S3Identity {
  readonly secretAccessKey: string;
  readonly access: 'full' | 'read';
}

export interface S3AuthOptions {
  readonly region: string;
  readonly identityFor: (accessKeyId: string) => S3Identity | undefined;
  readonly now: () => number;
}

export type PayloadMode =
  | { readonly kind: 'sha256'; readonly hex: string }
  | { readonly kind: 'unsigned' }
  | {
      readonly kind: 'streaming-trailer';
    };

export interface S3Principal {
  readonly accessKeyId: string;
  readonly access: S3Identity['access'];
  readonly presigned: boolean;
  readonly payload: PayloadMode;
}

/** The service a request is signed for (header or query form), or undefined when it is not signed. */
export function signingServiceOf(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  query: ReadonlyMap<string, string>,
): string | undefined {
  const authorization = headers.authorization;
  const credential =
    typeof authorization === 'string' ? /Credential=([^,\s]+)/.exec(authorization)?.[1] : query.get('X-Amz-Credential');
  return credential?.split('/')[3];
}

/** The canonical URI of S3: each segment of the path percent-decoded and encoded once, none dropped. */
export function s3CanonicalUri(rawPath: string): string | undefined {
  try {
    return rawPath
      .split('/')
      .map((segment) => uriEncode(decodeURIComponent(segment)))
      .join('/');
  } catch {
    return undefined;
  }
}

function headerMap(rawHeaders: readonly string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] as string).toLowerCase();
    if (!map.has(name)) map.set(name, (rawHeaders[i + 1] as string).trim());
  }
  return map;
}

const sha256Hex = (text: string) => createHash('sha256').update(text).digest('hex');

function signature(secret: string, date: string, region: string, amzDate: string, canonical: string): Buffer {
  const scope = `${date}/${region}/${SERVICE}/aws4_request`;
  const stringToSign = [ALGORITHM, amzDate, scope, sha256Hex(canonical)].join('\n');
  return createHmac('sha256', signingKey(secret, date, region, SERVICE))
    .update(stringToSign)
    .digest();
}

function sameSignature(given: string, expected: Buffer): boolean {
  const bytes = Buffer.from(given, 'hex');
  return bytes.length === expected.length && timingSafeEqual(bytes, expected);
}

const mismatch = () =>
  new ArtifactError(
    'SignatureDoesNotMatch',
    'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
  );

function payloadMode(value: string | undefined): PayloadMode {
  if (value === undefined) {
    throw new ArtifactError('InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
  }
  if (/^[0-9a-f]{64}$/.test(value)) return { kind: 'sha256', hex: value };
  if (value === UNSIGNED_PAYLOAD) return { kind: 'unsigned' };
  if (value === STREAMING_UNSIGNED_TRAILER) return { kind: 'streaming-trailer' };
  if (value.startsWith('STREAMING-')) {
    throw new ArtifactError('NotImplemented', `The local artifact store does not accept ${value} payloads.`);
  }
  throw new ArtifactError(
    'InvalidArgument',
    'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, a streaming mode, or a SHA-256 value.',
  );
}

function checkScope(region: string, service: string, expected: string): void {
  if (service !== SERVICE) {
    throw new ArtifactError(
      'AuthorizationHeaderMalformed',
      `The authorization is scoped to service '${service}', not 's3'.`,
    );
  }
  if (region !== expected) {
    throw new ArtifactError(
      'AuthorizationHeaderMalformed',
      `The authorization header is malformed; the region '${region}' is wrong; expecting '${expected}'`,
      { fields: { Region: expected } },
    );
  }
}

/** Verifies an S3 request signed in its Authorization header or presigned in its query; throws ArtifactError. */
export function verifyS3Request(request: Omit<SignedRequestParts, 'body'>, options: S3AuthOptions): S3Principal {
  const headers = headerMap(request.rawHeaders);
  const uri = s3CanonicalUri(request.rawPath);
  if (uri === undefined) throw new ArtifactError('InvalidArgument', 'The path is not validly percent-encoded.');
  const authorization = headers.get('authorization');
  if (authorization !== undefined) return verifyHeader(request, headers, authorization, uri, options);
  return verifyQuery(request, uri, options);
}

function verifyHeader(
  request: Omit<SignedRequestParts, 'body'>,
  headers: Map<string, string>,
  authorization: string,
  uri: string,
  options: S3AuthOptions,
): S3Principal {
  const parsed = parseAuthorization(authorization);
  if (typeof parsed === 'string') throw new ArtifactError('AuthorizationHeaderMalformed', parsed);
  checkScope(parsed.region, parsed.service, options.region);
  const amzDate = headers.get('x-amz-date');
  const signedAt = amzDate === undefined ? undefined : parseAmzDate(amzDate);
  if (amzDate === undefined || signedAt === undefined || parsed.date !== amzDate.slice(0, 8)) {
    throw new ArtifactError('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
  }
  if (!parsed.signedHeaders.includes('host')) {
    throw new ArtifactError('AuthorizationHeaderMalformed', "SignedHeaders must include 'host'.");
  }
  const identity = options.identityFor(parsed.accessKeyId);
  if (identity === undefined || headers.has('x-amz-security-token')) {
    throw new ArtifactError('InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.', {
      fields: { AWSAccessKeyId: parsed.accessKeyId },
    });
  }
  if (Math.abs(options.now() - signedAt) > MAX_SKEW_MS) {
    throw new ArtifactError(
      'RequestTimeTooSkewed',
      'The difference between the request time and the current time is too large.',
      { fields: { RequestTime: amzDate, ServerTime: new Date(options.now()).toISOString() } },
    );
  }
  const payloadHash = headers.get('x-amz-content-sha256');
  const payload = payloadMode(payloadHash);
  const canonical = canonicalRequest(
    { ...request, body: new Uint8Array() },
    parsed.signedHeaders,
    payloadHash as string,
    uri,
  );
  if (canonical === undefined) throw new ArtifactError('InvalidArgument', 'The query string is not validly encoded.');
  if (
    !sameSignature(
      parsed.signature,
      signature(identity.secretAccessKey, parsed.date, parsed.region, amzDate, canonical),
    )
  ) {
    throw mismatch();
  }
  return { accessKeyId: parsed.accessKeyId, access: identity.access, presigned: false, payload };
}

/** The query string as sent without its `X-Amz-Signature` parameter (what a presigned signature covers). */
function withoutSignature(rawQuery: string): string {
  return rawQuery
    .split('&')
    .filter((part) => !part.startsWith('X-Amz-Signature='))
    .join('&');
}

function verifyQuery(request: Omit<SignedRequestParts, 'body'>, uri: string, options: S3AuthOptions): S3Principal {
  const query = new URLSearchParams(request.rawQuery);
  const get = (name: string) => query.get(name) ?? undefined;
  const credential = get('X-Amz-Credential');
  if (credential === undefined && get('X-Amz-Signature') === undefined) {
    throw new ArtifactError('AccessDenied', 'Access Denied');
  }
  const algorithm = get('X-Amz-Algorithm');
  const amzDate = get('X-Amz-Date');
  const expires = get('X-Amz-Expires');
  const signedHeaders = get('X-Amz-SignedHeaders');
  const given = get('X-Amz-Signature');
  if (
    algorithm !== ALGORITHM ||
    credential === undefined ||
    amzDate === undefined ||
    expires === undefined ||
    signedHeaders === undefined ||
    given === undefined
  ) {
    throw new ArtifactError(
      'AuthorizationQueryParametersError',
      'Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.',
    );
  }
  const scope = credential.split('/');
  if (scope.length !== 5 || scope[4] !== 'aws4_request' || scope.some((s) => s === '')) {
    throw new ArtifactError(
      'AuthorizationQueryParametersError',
      'X-Amz-Credential must have the form <key>/<date>/<region>/<service>/aws4_request.',
    );
  }
  const [accessKeyId, date, region, service] = scope as [string, string, string, string, string];
  checkScope(region, service, options.region);
  const signedAt = parseAmzDate(amzDate);
  if (signedAt === undefined || date !== amzDate.slice(0, 8)) {
    throw new ArtifactError(
      'AuthorizationQueryParametersError',
      "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\" and match the credential date.",
    );
  }
  if (!/^\d{1,6}$/.test(expires) || Number(expires) < 1 || Number(expires) > MAX_EXPIRES_SEC) {
    throw new ArtifactError('AuthorizationQueryParametersError', 'X-Amz-Expires must be between 1 and 604800 seconds.');
  }
  if (!/^[0-9a-f]{64}$/.test(given)) throw mismatch();
  const identity = options.identityFor(accessKeyId);
  if (identity === undefined || query.has('X-Amz-Security-Token')) {
    throw new ArtifactError('InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.', {
      fields: { AWSAccessKeyId: accessKeyId },
    });
  }
  const signed = signedHeaders.split(';');
  if (!signed.includes('host')) {
    throw new ArtifactError('AuthorizationQueryParametersError', "X-Amz-SignedHeaders must include 'host'.");
  }
  const canonical = canonicalRequest(
    { ...request, rawQuery: withoutSignature(request.rawQuery), body: new Uint8Array() },
    signed,
    UNSIGNED_PAYLOAD,
    uri,
  );
  if (canonical === undefined) throw new ArtifactError('InvalidArgument', 'The query string is not validly encoded.');
  // The signature first: a tampered expiry is a bad signature, not an expired request.
  if (!sameSignature(given, signature(identity.secretAccessKey, date, region, amzDate, canonical))) throw mismatch();
  const now = options.now();
  const expiresAt = signedAt + Number(expires) * 1000;
  if (now > expiresAt) {
    throw new ArtifactError('AccessDenied', 'Request has expired', {
      fields: {
        'X-Amz-Expires': expires,
        Expires: new Date(expiresAt).toISOString(),
        ServerTime: new Date(now).toISOString(),
      },
    });
  }
  if (signedAt - now > MAX_SKEW_MS) throw new ArtifactError('AccessDenied', 'Request is not valid yet');
  return { accessKeyId, access: identity.access, presigned: true, payload: { kind: 'unsigned' } };
}

export interface PresignRequest {
  /** The core's HTTP URL (`http://host:port`), where the object is served. */
  readonly baseUrl: string;
  readonly bucket: string;
  readonly key: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** Milliseconds since the epoch. */
  readonly now: number;
  readonly expiresInSec: number;
}

const amzDateOf = (ms: number) =>
  new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');

/** A presigned GET URL for an object, signed exactly as `verifyS3Request` checks it (path-style). */
export function presignGetUrl(p: PresignRequest): string {
  const base = new URL(p.baseUrl);
  const path = `/${uriEncode(p.bucket)}/${p.key.split('/').map(uriEncode).join('/')}`;
  const amzDate = amzDateOf(p.now);
  const date = amzDate.slice(0, 8);
  const params: Array<[string, string]> = [
    ['X-Amz-Algorithm', ALGORITHM],
    ['X-Amz-Credential', `${p.accessKeyId}/${date}/${p.region}/${SERVICE}/aws4_request`],
    ['X-Amz-Date', amzDate],
    ['X-Amz-Expires', String(p.expiresInSec)],
    ['X-Amz-SignedHeaders', 'host'],
  ];
  const rawQuery = params.map(([k, v]) => `${k}=${uriEncode(v)}`).join('&');
  const canonical = canonicalRequest(
    { method: 'GET', rawPath: path, rawQuery, rawHeaders: ['host', base.host], body: new Uint8Array() },
    ['host'],
    UNSIGNED_PAYLOAD,
    path,
  ) as string;
  const sig = signature(p.secretAccessKey, date, p.region, amzDate, canonical).toString('hex');
  return `${base.protocol}//${base.host}${path}?${rawQuery}&X-Amz-Signature=${sig}`;
}
