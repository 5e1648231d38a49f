import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import { auth, http } from 'aws-iot-device-sdk-v2';
import { describe, expect, it } from 'vitest';
import { presignIotWebSocketUrl } from '../../src/adapters/iot-websocket.js';
import { type SigV4QueryOptions, verifySigV4Query } from '../../src/http/sigv4.js';

/**
 * The presigned (query-string) form of SigV4 as IoT Core's device gateway checks a WebSocket
 * upgrade, against URLs made by the real signers: @smithy/signature-v4 (through the console's
 * `presignIotWebSocketUrl`, the AWS SDK's signer) and the device SDK's CRT (`aws_sign_request`
 * with the config its WebSocket builders use: query parameters, empty body, session token left out
 * of the signature, no expiry).
 */

const REGION = 'eu-west-1';
const KEY = 'AKIAWEBSOCKETTEST001';
const SECRET = 'wsSecretKeyForTests/0123456789abcdefABCDEF';
const TEMP_KEY = 'ASIAWEBSOCKETTEST002';
const TEMP_SECRET = 'tempSecretKeyForTests/0123456789abcdefAB';
const TOKEN = 'FwoGZXIvYXdzEBaaDOPSEUDOSESSIONTOKEN+/=';
const NOW = Date.UTC(2026, 2, 3, 12, 0, 0);
const HOST = 'localhost:8443';

const options: SigV4QueryOptions = {
  region: REGION,
  services: ['iotdevicegateway'],
  secretFor: (id) => (id === KEY ? SECRET : id === TEMP_KEY ? TEMP_SECRET : undefined),
  sessionTokenFor: (id) => (id === TEMP_KEY ? TOKEN : undefined),
  now: () => NOW,
};

/** The verifier's view of a URL's upgrade request (the Host header as the client sends it). */
function verify(url: string, overrides: Partial<SigV4QueryOptions> = {}) {
  const u = new URL(url);
  return verifySigV4Query(
    { method: 'GET', rawPath: u.pathname, rawQuery: u.search.slice(1), rawHeaders: ['Host', u.host] },
    { ...options, ...overrides },
  );
}

const presign = (
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string },
  at = NOW,
  region = REGION,
) => presignIotWebSocketUrl({ url: `wss://${HOST}/mqtt`, region, credentials, now: new Date(at) });

/** A URL signed by the CRT the way the device SDK signs its WebSocket handshake. */
async function crtPresign(
  at = NOW,
  credentials = { key: KEY, secret: SECRET, token: undefined as string | undefined },
) {
  const request = new http.HttpRequest('GET', '/mqtt', new http.HttpHeaders([['host', HOST]]));
  await auth.aws_sign_request(request, {
    algorithm: auth.AwsSigningAlgorithm.SigV4,
    signature_type: auth.AwsSignatureType.HttpRequestViaQueryParams,
    provider: auth.AwsCredentialsProvider.newStatic(credentials.key, credentials.secret, credentials.token),
    region: REGION,
    service: 'iotdevicegateway',
    signed_body_value: auth.AwsSignedBodyValue.EmptySha256,
    omit_session_token: true,
    date: new Date(at),
  });
  return `wss://${HOST}${request.path}`;
}

describe('verifySigV4Query (presigned WebSocket upgrades)', () => {
  it('accepts a URL presigned by @smithy/signature-v4 and names the caller', async () => {
    const url = await presign({ accessKeyId: KEY, secretAccessKey: SECRET });
    expect(new URL(url).searchParams.get('X-Amz-Expires')).toBe('300');
    expect(verify(url)).toEqual({ ok: true, accessKeyId: KEY, service: 'iotdevicegateway', region: REGION });
  });

  it('accepts a URL signed by the CRT, which sends no X-Amz-Expires: its date is held to the clock skew', async () => {
    const url = await crtPresign();
    expect(new URL(url).searchParams.has('X-Amz-Expires')).toBe(false);
    expect(verify(url)).toMatchObject({ ok: true, accessKeyId: KEY });
    expect(verify(url, { now: () => NOW + 14 * 60_000 })).toMatchObject({ ok: true });
    expect(verify(url, { now: () => NOW + 16 * 60_000 })).toMatchObject({
      ok: false,
      errorType: 'InvalidSignatureException',
      message: expect.stringMatching(/expired/),
    });
    expect(verify(url, { now: () => NOW - 16 * 60_000 })).toMatchObject({ ok: false, message: /not yet current/ });
  });

  it('accepts a session token appended after signing (both signers), and only the right one', async () => {
    const temp = { accessKeyId: TEMP_KEY, secretAccessKey: TEMP_SECRET, sessionToken: TOKEN };
    const url = await presign(temp);
    expect(new URL(url).searchParams.get('X-Amz-Security-Token')).toBe(TOKEN);
    expect(verify(url)).toMatchObject({ ok: true, accessKeyId: TEMP_KEY });
    const crt = await crtPresign(NOW, { key: TEMP_KEY, secret: TEMP_SECRET, token: TOKEN });
    expect(new URL(crt).searchParams.get('X-Amz-Security-Token')).toBe(TOKEN);
    expect(verify(crt)).toMatchObject({ ok: true, accessKeyId: TEMP_KEY });

    const invalidToken = { ok: false, errorType: 'UnrecognizedClientException' };
    const other = new URL(url);
    other.searchParams.set('X-Amz-Security-Token', `${TOKEN}x`);
    expect(verify(other.toString())).toMatchObject(invalidToken);
    const without = new URL(url);
    without.searchParams.delete('X-Amz-Security-Token');
    expect(verify(without.toString())).toMatchObject(invalidToken);
    // A long-term key comes with no token.
    const longTerm = new URL(await presign({ accessKeyId: KEY, secretAccessKey: SECRET }));
    longTerm.searchParams.set('X-Amz-Security-Token', TOKEN);
    expect(verify(longTerm.toString())).toMatchObject(invalidToken);
  });

  it('refuses a session token signed into the query, as IoT Core does (it must be appended after signing)', async () => {
    const signer = new SignatureV4({
      service: 'iotdevicegateway',
      region: REGION,
      credentials: { accessKeyId: TEMP_KEY, secretAccessKey: TEMP_SECRET, sessionToken: TOKEN },
      sha256: Hash.bind(null, 'sha256'),
    });
    const signed = await signer.presign(
      {
        method: 'GET',
        protocol: 'wss:',
        hostname: 'localhost',
        port: 8443,
        path: '/mqtt',
        query: {},
        headers: { host: HOST },
      },
      { expiresIn: 300, signingDate: new Date(NOW) },
    );
    const query = new URLSearchParams(signed.query as Record<string, string>);
    expect(query.get('X-Amz-Security-Token')).toBe(TOKEN);
    expect(verify(`wss://${HOST}/mqtt?${query}`)).toMatchObject({ ok: false, errorType: 'InvalidSignatureException' });
  });

  it.each<[string, (u: URL) => void, string]>([
    [
      'a signature of another secret',
      (u) => u.searchParams.set('X-Amz-Signature', 'a'.repeat(64)),
      'InvalidSignatureException',
    ],
    ['a changed expiry', (u) => u.searchParams.set('X-Amz-Expires', '3600'), 'InvalidSignatureException'],
    ['an added parameter', (u) => u.searchParams.set('clientId', 'x'), 'InvalidSignatureException'],
    [
      'another path',
      (u) => {
        u.pathname = '/mqtt2';
      },
      'InvalidSignatureException',
    ],
    [
      'another host',
      (u) => {
        u.host = 'localhost:9443';
      },
      'InvalidSignatureException',
    ],
    [
      'an unknown access key',
      (u) =>
        u.searchParams.set(
          'X-Amz-Credential',
          String(u.searchParams.get('X-Amz-Credential')).replace(KEY, 'AKIAUNKNOWN000000000'),
        ),
      'UnrecognizedClientException',
    ],
    ['no signature', (u) => u.searchParams.delete('X-Amz-Signature'), 'IncompleteSignatureException'],
    ['no date', (u) => u.searchParams.delete('X-Amz-Date'), 'IncompleteSignatureException'],
    [
      'another algorithm',
      (u) => u.searchParams.set('X-Amz-Algorithm', 'AWS4-HMAC-SHA1'),
      'IncompleteSignatureException',
    ],
    ['a zero expiry', (u) => u.searchParams.set('X-Amz-Expires', '0'), 'IncompleteSignatureException'],
    ['an expiry over seven days', (u) => u.searchParams.set('X-Amz-Expires', '604801'), 'IncompleteSignatureException'],
    [
      'a repeated parameter',
      (u) => u.searchParams.append('X-Amz-Date', String(u.searchParams.get('X-Amz-Date'))),
      'IncompleteSignatureException',
    ],
    [
      'signed headers without host',
      (u) => u.searchParams.set('X-Amz-SignedHeaders', 'x-amz-date'),
      'IncompleteSignatureException',
    ],
    [
      'no query at all',
      (u) => {
        u.search = '';
      },
      'MissingAuthenticationTokenException',
    ],
  ])('refuses %s', async (_what, tamper, errorType) => {
    const url = new URL(await presign({ accessKeyId: KEY, secretAccessKey: SECRET }));
    tamper(url);
    expect(verify(url.toString())).toMatchObject({ ok: false, errorType });
  });

  it('refuses a wrong secret, another region and another service', async () => {
    expect(verify(await presign({ accessKeyId: KEY, secretAccessKey: `${SECRET}x` }))).toMatchObject({
      ok: false,
      errorType: 'InvalidSignatureException',
      message: expect.stringMatching(/does not match/),
    });
    expect(verify(await presign({ accessKeyId: KEY, secretAccessKey: SECRET }, NOW, 'us-east-1'))).toMatchObject({
      ok: false,
      message: expect.stringMatching(/region/),
    });
    const url = await presign({ accessKeyId: KEY, secretAccessKey: SECRET });
    expect(verify(url, { services: ['iotdata'] })).toMatchObject({
      ok: false,
      message: expect.stringMatching(/service/),
    });
  });

  it('holds a URL with X-Amz-Expires to its window: from its date (less the skew) to date + expires', async () => {
    const url = await presign({ accessKeyId: KEY, secretAccessKey: SECRET });
    expect(verify(url, { now: () => NOW + 299_000 })).toMatchObject({ ok: true });
    expect(verify(url, { now: () => NOW + 301_000 })).toMatchObject({ ok: false, message: /expired/ });
    expect(verify(url, { now: () => NOW - 14 * 60_000 })).toMatchObject({ ok: true });
    expect(verify(url, { now: () => NOW - 16 * 60_000 })).toMatchObject({ ok: false, message: /not yet current/ });
  });

  it('refuses a query that does not percent-decode, without throwing', () => {
    const rawQuery = 'X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=%E0%A4%A';
    expect(
      verifySigV4Query({ method: 'GET', rawPath: '/mqtt', rawQuery, rawHeaders: ['Host', HOST] }, options),
    ).toMatchObject({ ok: false, errorType: 'IncompleteSignatureException' });
  });
});
