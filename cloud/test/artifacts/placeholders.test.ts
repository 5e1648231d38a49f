import { describe, expect, it } from 'vitest';
import { documentSourceObject, parseS3ObjectUrl, replacePlaceholders } from '../../src/artifacts/index.js';
import { ApiError } from '../../src/http/errors.js';

/**
 * Placeholder replacement in job documents, pure: the presigner is a stand-in that spells out what
 * it was asked to sign. The forms are the ones AWS documents ("Managing jobs", Presigned URLs, and
 * CreateJob's documentSource): `${aws:iot:s3-presigned-url:https://s3.amazonaws.com/bucket/key}`,
 * the regional and virtual-hosted object URLs, and the `-v2` spelling of the current guide.
 */

const ROLE = { roleArn: 'arn:aws:iam::123456789012:role/pifleet-iot-presign' };
const sign = (o: { bucket: string; key: string }, expires: number) => `SIGNED(${o.bucket}|${o.key}|${expires})`;

describe('parseS3ObjectUrl', () => {
  it.each([
    ['https://s3.amazonaws.com/bucket/key', { bucket: 'bucket', key: 'key' }],
    [
      'https://s3.us-west-2.amazonaws.com/bucket/releases/1.0.0/agent.tgz',
      { bucket: 'bucket', key: 'releases/1.0.0/agent.tgz' },
    ],
    ['https://bucket.s3.amazonaws.com/key/with/slashes', { bucket: 'bucket', key: 'key/with/slashes' }],
    ['https://my.bucket.s3.eu-west-1.amazonaws.com/k', { bucket: 'my.bucket', key: 'k' }],
    ['https://s3.amazonaws.com/bucket/a%20b%2Bc', { bucket: 'bucket', key: 'a b+c' }],
  ])('%s', (url, expected) => {
    expect(parseS3ObjectUrl(url)).toEqual(expected);
  });

  it.each([
    ['http, not https', 'http://s3.amazonaws.com/bucket/key'],
    ['another host', 'https://example.com/bucket/key'],
    ['a look-alike host', 'https://s3.amazonaws.com.evil.example/bucket/key'],
    ['no key', 'https://s3.amazonaws.com/bucket'],
    ['an empty key', 'https://s3.amazonaws.com/bucket/'],
    ['a query string', 'https://s3.amazonaws.com/bucket/key?versionId=1'],
    ['a port', 'https://s3.amazonaws.com:8443/bucket/key'],
    ['credentials', 'https://user@s3.amazonaws.com/bucket/key'],
    ['a bad escape', 'https://s3.amazonaws.com/bucket/%E0%A4%A'],
    ['not a URL', 'bucket/key'],
  ])('refuses %s', (_what, url) => {
    expect(parseS3ObjectUrl(url)).toBeUndefined();
  });
});

describe('replacePlaceholders', () => {
  it.each([
    [
      'the API reference form',
      '{"url":"${aws:iot:s3-presigned-url:https://s3.amazonaws.com/bucket/key}"}',
      '{"url":"SIGNED(bucket|key|3600)"}',
    ],
    [
      'the regional form of the developer guide',
      '{"url":"${aws:iot:s3-presigned-url:https://s3.us-east-1.amazonaws.com/pifleet-artifacts/releases/1.2.0/agent.tgz}"}',
      '{"url":"SIGNED(pifleet-artifacts|releases/1.2.0/agent.tgz|3600)"}',
    ],
    [
      'the -v2 spelling',
      '{"url":"${aws:iot:s3-presigned-url-v2:https://s3.us-east-1.amazonaws.com/b-1/k}"}',
      '{"url":"SIGNED(b-1|k|3600)"}',
    ],
    [
      'a virtual-hosted URL',
      '{"url":"${aws:iot:s3-presigned-url:https://b-1.s3.amazonaws.com/k/2}"}',
      '{"url":"SIGNED(b-1|k/2|3600)"}',
    ],
    [
      'several placeholders, each replaced',
      '{"a":"${aws:iot:s3-presigned-url:https://s3.amazonaws.com/b1/k1}","b":["${aws:iot:s3-presigned-url:https://s3.amazonaws.com/b2/k2}"]}',
      '{"a":"SIGNED(b1|k1|3600)","b":["SIGNED(b2|k2|3600)"]}',
    ],
    [
      'a placeholder inside a longer string',
      '{"cmd":"curl ${aws:iot:s3-presigned-url:https://s3.amazonaws.com/b/k} -o x"}',
      '{"cmd":"curl SIGNED(b|k|3600) -o x"}',
    ],
  ])('%s', (_what, document, expected) => {
    expect(replacePlaceholders(document, ROLE, sign)).toBe(expected);
  });

  it.each([
    ['an http URL', '${aws:iot:s3-presigned-url:http://s3.amazonaws.com/b/k}'],
    ['a non-S3 host', '${aws:iot:s3-presigned-url:https://example.com/b/k}'],
    ['no key', '${aws:iot:s3-presigned-url:https://s3.amazonaws.com/b}'],
    ['an empty URL', '${aws:iot:s3-presigned-url:}'],
    ['no closing brace', '${aws:iot:s3-presigned-url:https://s3.amazonaws.com/b/k'],
    ['another prefix', '${aws:iot:s3-presigned-url-v3:https://s3.amazonaws.com/b/k}'],
    ['a bare bucket/key', '${aws:iot:s3-presigned-url:b/k}'],
    ['an escaped quote inside', '${aws:iot:s3-presigned-url:https://s3.amazonaws.com/b/k\\"x}'],
  ])('leaves a malformed placeholder as it is: %s', (_what, placeholder) => {
    const document = JSON.stringify({
      url: placeholder,
      ok: '${aws:iot:s3-presigned-url:https://s3.amazonaws.com/b/k}',
    });
    expect(JSON.parse(replacePlaceholders(document, ROLE, sign))).toEqual({ url: placeholder, ok: 'SIGNED(b|k|3600)' });
  });

  it('replaces nothing without a role (IoT presigns as the job role)', () => {
    const document = '{"url":"${aws:iot:s3-presigned-url:https://s3.amazonaws.com/b/k}"}';
    expect(replacePlaceholders(document, undefined, sign)).toBe(document);
    expect(replacePlaceholders(document, { expiresInSec: 60 }, sign)).toBe(document);
  });

  it('passes expiresInSec to the presigner', () => {
    const document = '{"url":"${aws:iot:s3-presigned-url:https://s3.amazonaws.com/b/k}"}';
    expect(replacePlaceholders(document, { ...ROLE, expiresInSec: 60 }, sign)).toBe('{"url":"SIGNED(b|k|60)"}');
  });

  it.each([59, 3601, 1.5, Number.NaN])('refuses expiresInSec %s (60..3600, as CreateJob)', (expiresInSec) => {
    const document = '{"url":"${aws:iot:s3-presigned-url:https://s3.amazonaws.com/b/k}"}';
    let err: unknown;
    try {
      replacePlaceholders(document, { ...ROLE, expiresInSec }, sign);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).errorType).toBe('InvalidRequestException');
  });

  it('never parses the document: __proto__ keys and 10,000 levels of nesting pass through untouched', () => {
    const deep = `${'['.repeat(10_000)}"\${aws:iot:s3-presigned-url:https://s3.amazonaws.com/b/deep}"${']'.repeat(10_000)}`;
    const document = `{"__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}},"deep":${deep}}`;
    const out = replacePlaceholders(document, ROLE, sign);
    expect(out).toBe(
      document.replace('${aws:iot:s3-presigned-url:https://s3.amazonaws.com/b/deep}', 'SIGNED(b|deep|3600)'),
    );
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('returns a document without placeholders as it is', () => {
    const document = '{"operation":"pifleet.reboot"}';
    expect(replacePlaceholders(document, ROLE, sign)).toBe(document);
  });
});

describe('documentSourceObject', () => {
  it('names the object of an S3 URL', () => {
    expect(documentSourceObject('https://s3.amazonaws.com/jobsdocs/testDoc.json')).toEqual({
      bucket: 'jobsdocs',
      key: 'testDoc.json',
    });
  });

  it('refuses anything else with InvalidRequestException', () => {
    expect(() => documentSourceObject('https://example.com/jobsdocs/testDoc.json')).toThrow(ApiError);
  });
});
