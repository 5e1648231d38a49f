import { describe, expect, it } from 'vitest';
import { canonicalQuery, canonicalUri, type SignedRequestParts, verifySigV4 } from '../../src/http/sigv4.js';

/** The verifier against the published AWS SigV4 test-suite vectors (get-vanilla and friends). */

const SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
const AT = Date.UTC(2015, 7, 30, 12, 36, 0);
const options = {
  region: 'us-east-1',
  services: ['service'],
  secretFor: (id: string) => (id === 'AKIDEXAMPLE' ? SECRET : undefined),
  now: () => AT,
};

function request(method: string, rawQuery: string, signature: string, extra: Partial<SignedRequestParts> = {}) {
  return {
    method,
    rawPath: '/',
    rawQuery,
    rawHeaders: [
      'Host',
      'example.amazonaws.com',
      'X-Amz-Date',
      '20150830T123600Z',
      'Authorization',
      `AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=${signature}`,
    ],
    body: new Uint8Array(),
    ...extra,
  } satisfies SignedRequestParts;
}

const VECTORS = [
  ['get-vanilla', 'GET', '', '5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31'],
  [
    'get-vanilla-query-order-key-case',
    'GET',
    'Param2=value2&Param1=value1',
    'b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500',
  ],
  ['post-vanilla', 'POST', '', '5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b'],
] as const;

describe('verifySigV4', () => {
  it.each(VECTORS)('accepts the %s vector', (_name, method, query, signature) => {
    expect(verifySigV4(request(method, query, signature), options)).toEqual({
      ok: true,
      accessKeyId: 'AKIDEXAMPLE',
      service: 'service',
      region: 'us-east-1',
    });
  });

  const [, , , vanilla] = VECTORS[0];
  it.each([
    ['a changed method', request('POST', '', vanilla), 'InvalidSignatureException'],
    ['an added query parameter', request('GET', 'a=b', vanilla), 'InvalidSignatureException'],
    ['a changed path', request('GET', '', vanilla, { rawPath: '/other' }), 'InvalidSignatureException'],
    ['a body', request('GET', '', vanilla, { body: new TextEncoder().encode('x') }), 'InvalidSignatureException'],
    ['a flipped signature bit', request('GET', '', `4${vanilla.slice(1)}`), 'InvalidSignatureException'],
    [
      'no Authorization header',
      { ...request('GET', '', vanilla), rawHeaders: ['Host', 'example.amazonaws.com'] },
      'MissingAuthenticationTokenException',
    ],
    [
      'a malformed Authorization header',
      {
        ...request('GET', '', vanilla),
        rawHeaders: ['Host', 'h', 'X-Amz-Date', '20150830T123600Z', 'Authorization', 'AWS4-HMAC-SHA256 junk'],
      },
      'IncompleteSignatureException',
    ],
    ['a bad percent-encoding in the query', request('GET', 'a=%zz', vanilla), 'InvalidSignatureException'],
  ] as const)('rejects %s', (_label, req, errorType) => {
    const result = verifySigV4(req, options);
    expect(result.ok).toBe(false);
    expect(result).toMatchObject({ errorType });
  });

  it.each([
    ['an unknown access key', { secretFor: () => undefined }, 'UnrecognizedClientException'],
    ['a clock 16 minutes ahead', { now: () => AT + 16 * 60_000 }, 'InvalidSignatureException'],
    ['another region', { region: 'eu-west-1' }, 'InvalidSignatureException'],
    ['another service', { services: ['iot'] }, 'InvalidSignatureException'],
  ] as const)('rejects %s', (_label, override, errorType) => {
    expect(verifySigV4(request('GET', '', vanilla), { ...options, ...override })).toMatchObject({
      ok: false,
      errorType,
    });
  });

  it('accepts 14 minutes of clock skew', () => {
    expect(verifySigV4(request('GET', '', vanilla), { ...options, now: () => AT - 14 * 60_000 }).ok).toBe(true);
  });
});

describe('canonical forms', () => {
  it.each([
    ['/', '/'],
    ['/things/a%3Ab', '/things/a%253Ab'],
    ['/a/./b/../c//d/', '/a/c/d/'],
    ["/it's(1)", '/it%27s%281%29'],
  ])('canonicalUri(%s) = %s', (raw, expected) => {
    expect(canonicalUri(raw)).toBe(expected);
  });

  it.each([
    ['', ''],
    ['b=2&a=1&a=0', 'a=0&a=1&b=2'],
    ['key=a%20b&flag', 'flag=&key=a%20b'],
    ['x=%2F%7E', 'x=%2F~'],
  ])('canonicalQuery(%s) = %s', (raw, expected) => {
    expect(canonicalQuery(raw)).toBe(expected);
  });
});
