import { generateKeyPairSync } from 'node:crypto';
import {
  JOB_OPERATIONS,
  MAX_JOB_DOCUMENT_CHARS,
  makeReleaseManifest,
  parseJobDocument,
  serializeReleaseManifest,
  signReleaseManifest,
} from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import {
  agentUpdateJobDocument,
  configJobDocument,
  DEFAULT_ABORT_MIN_EXECUTED,
  defaultJobId,
  jobConfigurations,
  parseJobId,
  parseJobText,
  parseJobType,
  parsePercent,
  parseReasonCode,
  parseRoleArn,
  parseS3ObjectUrl,
  parseTargets,
  presignedUrlPlaceholder,
  rebootJobDocument,
  releaseManifestOf,
  s3ObjectUrl,
} from '../../src/core/jobs-options.js';
import { CliError } from '../../src/errors.js';

/** The pure part of `jobs create`: options to IoT's job configurations and to protocol's job documents. */

const usage = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    if (err instanceof CliError) return { exitCode: err.exitCode, message: err.message, hint: err.hint };
    throw err;
  }
  throw new Error('expected a CliError');
};

describe('job type, id and targets', () => {
  it.each(['agent-update', 'config', 'reboot'])('accepts --type %s', (t) => expect(parseJobType(t)).toBe(t));
  it.each(['update', 'AGENT-UPDATE', '', '__proto__', 'toString'])(
    'refuses --type %j with exit 64 and the list',
    (t) => {
      expect(usage(() => parseJobType(t))).toEqual({
        exitCode: 64,
        message: `unknown job type ${JSON.stringify(t)}`,
        hint: '--type is one of: agent-update, config, reboot',
      });
    },
  );

  it.each([
    ['a', true],
    ['x'.repeat(64), true],
    ['x'.repeat(65), false],
    ['rollout_1-b', true],
    ['with space', false],
    ['a/b', false],
    ['', false],
  ])('job id %j valid: %s (IoT: 1-64 of a-zA-Z0-9_-)', (id, ok) => {
    if (ok) expect(parseJobId(id)).toBe(id);
    else expect(usage(() => parseJobId(id)).exitCode).toBe(64);
  });

  it('makes a default job id from the type, the UTC second and a suffix: valid and sortable', () => {
    const id = defaultJobId('agent-update', Date.UTC(2026, 11, 3, 10, 55, 0, 123), '3fa9c2');
    expect(id).toBe('agent-update-20261203T105500-3fa9c2');
    expect(parseJobId(id)).toBe(id);
  });

  it.each<[{ things?: string; group?: string }, unknown]>([
    [{ things: 'pi-1' }, { things: ['pi-1'] }],
    [{ things: 'pi-1, pi-2,pi-1' }, { things: ['pi-1', 'pi-2'] }],
    [{ group: 'lab' }, { group: 'lab' }],
  ])('targets %j', (o, expected) => expect(parseTargets(o)).toEqual(expected));

  it.each<[{ things?: string; group?: string }, string]>([
    [{}, 'give --things or --group'],
    [{ things: 'pi-1', group: 'lab' }, 'give --things or --group, not both'],
    [{ things: 'pi-1,,pi-2' }, '--things has an empty name'],
    [{ things: 'pi 1' }, 'invalid thing name "pi 1" in --things'],
    [{ group: 'a/b' }, 'invalid thing group name "a/b"'],
  ])('refuses targets %j with exit 64: %s', (o, message) => {
    expect(usage(() => parseTargets(o))).toMatchObject({ exitCode: 64, message });
  });
});

describe('job configurations', () => {
  it('is a SNAPSHOT job with nothing else by default', () => {
    expect(jobConfigurations({})).toEqual({ targetSelection: 'SNAPSHOT' });
  });

  it('builds rollout, abort, timeout and retry in IoT shapes', () => {
    expect(
      jobConfigurations({
        rolloutPerMinute: '50',
        abortFailurePercent: '10',
        abortMinExecuted: '20',
        inProgressTimeoutMinutes: '30',
        retries: '2',
        continuous: true,
      }),
    ).toEqual({
      targetSelection: 'CONTINUOUS',
      jobExecutionsRolloutConfig: { maximumPerMinute: 50 },
      abortConfig: {
        criteriaList: [
          { failureType: 'ALL', action: 'CANCEL', thresholdPercentage: 10, minNumberOfExecutedThings: 20 },
        ],
      },
      timeoutConfig: { inProgressTimeoutInMinutes: 30 },
      jobExecutionsRetryConfig: { criteriaList: [{ failureType: 'ALL', numberOfRetries: 2 }] },
    });
  });

  it('an abort without --abort-min-executed waits for the default number of executed things', () => {
    expect(jobConfigurations({ abortFailurePercent: '2.5' }).abortConfig?.criteriaList[0]).toMatchObject({
      thresholdPercentage: 2.5,
      minNumberOfExecutedThings: DEFAULT_ABORT_MIN_EXECUTED,
    });
  });

  // AWS's own examples of the threshold's precision: 10.9 and 10.99 are valid, 10.999 is not.
  it.each([
    ['10', 10],
    ['10.9', 10.9],
    ['10.99', 10.99],
    ['100', 100],
    ['0.01', 0.01],
  ])('accepts the abort threshold %s', (raw, n) => expect(parsePercent('--abort-failure-percent', raw)).toBe(n));
  it.each(['10.999', '0', '0.00', '100.01', '101', '-5', 'ten', '1e1', '', ' '])(
    'refuses the abort threshold %j',
    (raw) => {
      expect(usage(() => parsePercent('--abort-failure-percent', raw))).toMatchObject({
        exitCode: 64,
        message: expect.stringMatching(/^--abort-failure-percent must be a percentage above 0 and at most 100/),
      });
    },
  );

  it.each<[Record<string, string>, RegExp]>([
    [{ rolloutPerMinute: '0' }, /--rollout-per-minute must be an integer from 1 to 1000, got 0/],
    [{ rolloutPerMinute: '1001' }, /--rollout-per-minute must be an integer from 1 to 1000, got 1001/],
    [{ rolloutPerMinute: '2.5' }, /--rollout-per-minute must be an integer from 1 to 1000, got "2.5"/],
    [{ inProgressTimeoutMinutes: '10081' }, /--in-progress-timeout-minutes must be an integer from 1 to 10080/],
    [{ retries: '11' }, /--retries must be an integer from 0 to 10, got 11/],
    [{ abortFailurePercent: '10', abortMinExecuted: '0' }, /--abort-min-executed must be an integer from 1/],
    [{ abortMinExecuted: '5' }, /--abort-min-executed needs --abort-failure-percent/],
  ])('refuses %j with exit 64', (o, message) => {
    expect(usage(() => jobConfigurations(o))).toMatchObject({ exitCode: 64, message: expect.stringMatching(message) });
  });
});

describe('free text and reason codes (CreateJob description, CancelJob comment and reasonCode)', () => {
  it.each(['wrong target group', 'x'.repeat(2028), 'Rückruf — ohne Steuerzeichen'])('takes the text %#', (text) => {
    expect(parseJobText('--comment', text)).toBe(text);
  });
  it.each([
    ['2,029 characters', 'x'.repeat(2029)],
    ['a newline', 'two\nlines'],
    ['a control character', 'a\u0001b'],
    ['a format character', 'a\u200eb'],
    ['nothing', ''],
  ])('refuses text with %s: exit 64 naming the option, with a hint', (_what, text) => {
    expect(usage(() => parseJobText('--description', text))).toMatchObject({
      exitCode: 64,
      message: expect.stringMatching(/^--description must be 1 to 2028 characters without control characters/),
      hint: expect.any(String),
    });
  });
  it.each(['BAD_RELEASE', 'E42', 'A'.repeat(128)])('takes the reason code %s', (code) => {
    expect(parseReasonCode(code)).toBe(code);
  });
  it.each(['bad code', 'lower', 'A-B', '', 'A'.repeat(129)])('refuses the reason code %j with exit 64', (code) => {
    expect(usage(() => parseReasonCode(code))).toMatchObject({
      exitCode: 64,
      message: expect.stringContaining('is not a reason code'),
      hint: expect.stringContaining('upper-case'),
    });
  });
});

describe('S3 URLs and the presign placeholder', () => {
  // The forms IoT's presigned-URL placeholder takes ("Managing jobs: Presigned URLs").
  it.each([
    ['https://s3.amazonaws.com/bucket/releases/a.tar.gz', 'bucket', 'releases/a.tar.gz'],
    ['https://s3.eu-west-1.amazonaws.com/bucket/a.tar.gz', 'bucket', 'a.tar.gz'],
    ['https://my.bucket.s3.amazonaws.com/releases/a.tar.gz', 'my.bucket', 'releases/a.tar.gz'],
    ['https://bucket.s3.us-east-1.amazonaws.com/a%2Bb.tar.gz', 'bucket', 'a+b.tar.gz'],
  ])('reads %s as bucket %s key %s', (url, bucket, key) => {
    expect(parseS3ObjectUrl(url)).toEqual({ bucket, key, url });
  });
  it.each([
    'http://s3.amazonaws.com/bucket/a',
    'https://example.com/bucket/a',
    'https://s3.amazonaws.com/bucket',
    'https://s3.amazonaws.com/bucket/a?versionId=1',
    'https://127.0.0.1:8443/bucket/a',
    'not a url',
    // Parses as a URL, but the key's bytes are not UTF-8 (decoding them threw: exit 1, no hint).
    'https://s3.amazonaws.com/bucket/releases/%E0%A4.tar.gz',
    'https://bucket.s3.amazonaws.com/%FF',
  ])('refuses %s with exit 64', (url) => {
    expect(usage(() => parseS3ObjectUrl(url))).toMatchObject({
      exitCode: 64,
      message: expect.stringContaining('is not an S3 object URL'),
      hint: expect.stringContaining('pifleet release upload'),
    });
  });
  it('prints the path-style URL of a key in its region, and the placeholder around it', () => {
    const url = s3ObjectUrl('eu-west-1', 'pifleet-artifacts', 'releases/pifleet-agent-1.0.0+b.1.tar.gz');
    expect(url).toBe('https://s3.eu-west-1.amazonaws.com/pifleet-artifacts/releases/pifleet-agent-1.0.0%2Bb.1.tar.gz');
    expect(parseS3ObjectUrl(url).key).toBe('releases/pifleet-agent-1.0.0+b.1.tar.gz');
    expect(presignedUrlPlaceholder(url)).toBe(`\${aws:iot:s3-presigned-url:${url}}`);
  });
  it.each([
    ['arn:aws:iam::123456789012:role/pifleet-presign', true],
    ['arn:aws-cn:iam::123456789012:role/path/name', true],
    ['arn:aws:iam::12345:role/x', false],
    ['arn:aws:iot:us-east-1:123456789012:role/x', false],
  ])('role ARN %s valid: %s', (arn, ok) => {
    if (ok) expect(parseRoleArn('--presign-role-arn', arn)).toBe(arn);
    else expect(usage(() => parseRoleArn('--presign-role-arn', arn)).exitCode).toBe(64);
  });
});

describe('job documents', () => {
  const key = generateKeyPairSync('ed25519', {
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const manifest = makeReleaseManifest({ version: '1.2.3', sha256: 'a'.repeat(64), size: 1000, key: key.privateKey });
  const manifestBytes = serializeReleaseManifest(manifest);
  const signature = signReleaseManifest(manifestBytes, key.privateKey);
  const url = parseS3ObjectUrl('https://s3.us-east-1.amazonaws.com/b/releases/pifleet-agent-1.2.3.tar.gz');

  it('an agent-update document carries the placeholder, and parses on the device once IoT replaced it', () => {
    const text = agentUpdateJobDocument({ manifest, files: { manifestBytes, signature }, url, reason: 'fix' });
    const doc = JSON.parse(text) as { release: { url: string; manifest: string; signature: string } };
    expect(doc).toEqual({
      operation: JOB_OPERATIONS.agentUpdate,
      version: '1.2.3',
      release: {
        url: `\${aws:iot:s3-presigned-url:${url.url}}`,
        manifest: Buffer.from(manifestBytes).toString('base64'),
        signature: Buffer.from(signature).toString('base64'),
      },
      reason: 'fix',
    });
    const presigned = text.replace(`\${aws:iot:s3-presigned-url:${url.url}}`, `${url.url}?X-Amz-Signature=abc`);
    expect(parseJobDocument(presigned)).toMatchObject({ ok: true, document: { version: '1.2.3' } });
    expect(Buffer.from(doc.release.manifest, 'base64').equals(Buffer.from(manifestBytes))).toBe(true);
  });

  it('refuses a file that is not a manifest with exit 65, as the device would', () => {
    expect(usage(() => releaseManifestOf(new TextEncoder().encode('{"format":1}'), 'm.json'))).toMatchObject({
      exitCode: 65,
      message: expect.stringMatching(/^m\.json is not a release manifest: manifest: /),
    });
  });

  it('a config document holds the settings, validated by the shadow rules', () => {
    const text = configJobDocument('{"sampling":{"bme280":5000},"logLevel":"debug"}');
    expect(JSON.parse(text)).toEqual({
      operation: JOB_OPERATIONS.config,
      config: { sampling: { bme280: 5000 }, logLevel: 'debug' },
    });
    expect(parseJobDocument(text).ok).toBe(true);
  });

  it.each<[string, RegExp]>([
    ['{"sampling":', /^--config is not valid JSON/],
    ['[1]', /^--config must be a JSON object of settings/],
    ['{}', /^--config must be a JSON object of settings/],
    ['{"logLevel":"loud"}', /^invalid desired state: logLevel/],
    ['{"__proto__":{"logLevel":"debug"}}', /^invalid desired state/],
    [`{"a":${'['.repeat(10_000)}${']'.repeat(10_000)}}`, /^--config is not valid JSON: .*deep/],
  ])('refuses --config %s with exit 65', (text, message) => {
    expect(usage(() => configJobDocument(text))).toMatchObject({
      exitCode: 65,
      message: expect.stringMatching(message),
    });
  });

  it('refuses a document over IoT’s 32,768 characters', () => {
    const reason = 'x'.repeat(200);
    expect(rebootJobDocument(reason).length).toBeLessThan(MAX_JOB_DOCUMENT_CHARS);
    const big = `{"outputs":{${Array.from({ length: 2000 }, (_, i) => `"relay${i}":true`).join(',')}}}`;
    expect(usage(() => configJobDocument(big))).toMatchObject({
      exitCode: 65,
      message: expect.stringMatching(/characters; IoT allows 32768/),
    });
  });

  it('a reboot document, with its reason', () => {
    expect(JSON.parse(rebootJobDocument('stuck I2C bus'))).toEqual({
      operation: JOB_OPERATIONS.reboot,
      reason: 'stuck I2C bus',
    });
  });
});
