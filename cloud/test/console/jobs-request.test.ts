import { generateKeyPairSync } from 'node:crypto';
import { makeReleaseManifest, serializeReleaseManifest, signReleaseManifest } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { parseCancelJobRequest, parseCreateJobRequest } from '../../src/console/jobs-request.js';

/** The console's create/cancel bodies, checked before the jobs service sees them (pure). */

const ARN = 'arn:aws:iot:us-east-1:123456789012';
const context = {
  targets: {
    thingArn: (name: string) => (name.startsWith('pi-') ? `${ARN}:thing/${name}` : undefined),
    groupArn: (name: string) => (name === 'site-1' ? `${ARN}:thinggroup/${name}` : undefined),
  },
  accountId: '123456789012',
  now: Date.UTC(2026, 11, 3, 10, 55, 0, 123),
  suffix: '3fa9c2',
};
const parse = (body: unknown) => parseCreateJobRequest(Buffer.from(JSON.stringify(body)), context);

function release() {
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const manifest = serializeReleaseManifest(
    makeReleaseManifest({ version: '1.2.3', sha256: 'c'.repeat(64), size: 10, key: pem }),
  );
  return {
    manifest: Buffer.from(manifest).toString('base64'),
    signature: Buffer.from(signReleaseManifest(manifest, pem)).toString('base64'),
  };
}

describe('parseCreateJobRequest', () => {
  it('names a job without an id by its type, the UTC time to the second and the suffix (as the CLI does)', () => {
    const r = parse({ type: 'reboot', things: ['pi-1'] });
    expect(r).toEqual({
      ok: true,
      value: {
        jobId: 'reboot-20261203T105500-3fa9c2',
        operation: 'pifleet.reboot',
        targets: [`${ARN}:thing/pi-1`],
        document: '{"operation":"pifleet.reboot"}',
      },
    });
  });

  it('targets things (each once) and a group together, in that order', () => {
    const r = parse({ type: 'reboot', things: ['pi-1', 'pi-2', 'pi-1'], group: 'site-1' });
    expect(r.ok && r.value.targets).toEqual([`${ARN}:thing/pi-1`, `${ARN}:thing/pi-2`, `${ARN}:thinggroup/site-1`]);
  });

  it('reports every problem at once, each with its field', () => {
    const r = parse({
      type: 'config',
      jobId: 'bad id',
      things: ['nobody'],
      rolloutPerMinute: 1.5,
      abortFailurePercent: 101,
      config: '{"logLevel":"loud"}',
      colour: 'red',
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.issues.map((i) => i.path).sort()).toEqual([
      'abortFailurePercent',
      'colour',
      'config.logLevel',
      'jobId',
      'rolloutPerMinute',
      'things',
    ]);
    expect(r.message).toMatch(/^The config job is not valid: /);
  });

  it.each([
    // The S3 object URL forms AWS documents for the presigned-URL placeholder ("Presigned URLs").
    ['path style', 'https://s3.amazonaws.com/bucket/releases/a.tar.gz'],
    ['path style with a region', 'https://s3.eu-west-1.amazonaws.com/bucket/a.tar.gz'],
    ['virtual-hosted', 'https://bucket.s3.amazonaws.com/a.tar.gz'],
    ['virtual-hosted with a region', 'https://bucket.s3.eu-west-1.amazonaws.com/a.tar.gz'],
  ])('wraps a %s S3 object URL in the presign placeholder and names the presign role', (_name, url) => {
    const r = parse({ type: 'agent-update', things: ['pi-1'], url, ...release() });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(JSON.parse(r.value.document).release.url).toBe(`\${aws:iot:s3-presigned-url:${url}}`);
    expect(r.value.presignedUrlConfig).toEqual({ roleArn: 'arn:aws:iam::123456789012:role/pifleet-local-presign' });
  });

  it('keeps a placeholder as given (the -v2 spelling the current docs show), and a plain https URL as it is, unsigned', () => {
    const v2 = '${aws:iot:s3-presigned-url-v2:https://s3.amazonaws.com/bucket/a.tar.gz}';
    const kept = parse({ type: 'agent-update', things: ['pi-1'], url: v2, ...release() });
    expect(kept.ok && JSON.parse(kept.value.document).release.url).toBe(v2);
    expect(kept.ok && kept.value.presignedUrlConfig).toBeDefined();
    const plain = parse({
      type: 'agent-update',
      things: ['pi-1'],
      url: 'https://downloads.example/a.tar.gz',
      ...release(),
    });
    expect(plain.ok && JSON.parse(plain.value.document).release.url).toBe('https://downloads.example/a.tar.gz');
    expect(plain.ok && plain.value.presignedUrlConfig).toBeUndefined();
  });

  it('refuses a release URL longer than the agent accepts (its own document parser)', () => {
    const r = parse({
      type: 'agent-update',
      things: ['pi-1'],
      url: `https://x.example/${'a'.repeat(9_000)}`,
      ...release(),
    });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.issues).toContainEqual(expect.objectContaining({ path: 'release.url' }));
  });

  // A JSON number is a double: 1.1 * 100 is 110.00000000000001, so an exact check refused these.
  it.each([1.1, 0.07, 0.29, 2.55, 10.9, 10.99, 57.01, 100])(
    'takes an abort percentage of %s (at most two decimals, as IoT allows)',
    (abortFailurePercent) => {
      const r = parse({ type: 'reboot', things: ['pi-1'], abortFailurePercent });
      expect(r.ok && r.value.abort).toEqual([
        {
          failureType: 'ALL',
          action: 'CANCEL',
          thresholdPercentage: abortFailurePercent,
          minNumberOfExecutedThings: 10,
        },
      ]);
    },
  );

  it.each([10.999, 0.001, 10.9900000001])(
    'refuses an abort percentage of %s (three decimals or more)',
    (abortFailurePercent) => {
      const r = parse({ type: 'reboot', things: ['pi-1'], abortFailurePercent });
      expect(!r.ok && r.issues.map((i) => i.path)).toEqual(['abortFailurePercent']);
    },
  );

  it('refuses a body that is not UTF-8 rather than keep U+FFFD for its bytes', () => {
    const body = Buffer.from('{"type":"reboot","things":["pi-1"],"description":"caf\u00e9"}', 'latin1');
    expect(parseCreateJobRequest(body, context)).toEqual({
      ok: false,
      message: 'The body is not valid UTF-8.',
      issues: [],
    });
    expect(parseCancelJobRequest(Buffer.from('{"comment":"caf\u00e9"}', 'latin1'))).toMatchObject({ ok: false });
  });

  it('never lets a __proto__ key reach an object prototype', () => {
    const r = parseCreateJobRequest(
      Buffer.from('{"type":"config","things":["pi-1"],"config":{"__proto__":{"polluted":true}}}'),
      context,
    );
    expect(r.ok).toBe(false);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('parseCancelJobRequest', () => {
  it.each([
    ['an empty body', '', { force: false }],
    ['{}', '{}', { force: false }],
    ['force and a comment', '{"force":true,"comment":"wrong target"}', { force: true, comment: 'wrong target' }],
  ])('reads %s', (_name, body, value) => {
    expect(parseCancelJobRequest(Buffer.from(body))).toEqual({ ok: true, value });
  });
});
