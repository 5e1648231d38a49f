import { describe, expect, it } from 'vitest';
import {
  agentUpdateDocument,
  configDocument,
  JOB_OPERATIONS,
  jobStatusDetails,
  MAX_JOB_DOCUMENT_CHARS,
  MAX_JOB_DOCUMENT_DEPTH,
  parseJobDocument,
  rebootDocument,
  STATUS_DETAILS_LIMITS,
} from '../src/index.js';

const release = {
  url: 'https://pifleet-artifacts.s3.eu-west-1.amazonaws.com/releases/1.2.3.tar.gz?X-Amz-Signature=abc',
  manifest: Buffer.from('{"version":"1.2.3"}').toString('base64'),
  signature: Buffer.from('sig').toString('base64'),
};

describe('parseJobDocument', () => {
  it.each([
    ['agent update', agentUpdateDocument({ version: '1.2.3', release })],
    ['agent update, prerelease', agentUpdateDocument({ version: '2.0.0-rc.1+build.5', release })],
    [
      'agent update over the local core (http)',
      agentUpdateDocument({ version: '1.0.0', release: { ...release, url: 'http://127.0.0.1:4566/a?b=c' } }),
    ],
    ['config', configDocument({ sampling: { bme280: 5000 }, logLevel: 'debug' })],
    ['config with a reason', configDocument({ batch: { maxReadings: 10 } }, 'slower uplink')],
    ['reboot', rebootDocument()],
    ['reboot with a reason', rebootDocument('stuck I2C bus')],
  ])('accepts a %s document, as an object and as its JSON text', (_name, doc) => {
    expect(parseJobDocument(doc)).toEqual({ ok: true, document: doc });
    expect(parseJobDocument(JSON.stringify(doc))).toEqual({ ok: true, document: doc });
  });

  it('rejects an unknown operation with the reason, naming the operations it runs', () => {
    const r = parseJobDocument({ operation: 'firmware-flash', url: 'x' });
    expect(r).toMatchObject({ ok: false });
    if (r.ok) return;
    expect(r.operation).toBeUndefined();
    expect(r.reason).toBe(
      'unknown operation "firmware-flash"; this agent runs pifleet.agent-update, pifleet.config, pifleet.reboot',
    );
  });

  it.each([
    ['toString', '"toString"'],
    ['__proto__', '"__proto__"'],
    ['x'.repeat(5000), `"${'x'.repeat(64)}…"`],
  ])('an operation named %s is unknown, and quoted bounded in the reason', (operation, shown) => {
    const r = parseJobDocument({ operation });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain(`unknown operation ${shown}`);
  });

  it.each([
    ['no operation', { version: '1.2.3' }, 'job document has no "operation" string'],
    ['a number as operation', { operation: 7 }, 'job document has no "operation" string'],
    ['an array', [JOB_OPERATIONS.reboot], 'job document must be a JSON object'],
    ['a string', '"pifleet.reboot"', 'job document must be a JSON object'],
    ['not JSON', '{"operation":', 'job document is not JSON'],
  ])('rejects %s', (_name, input, reason) => {
    const r = parseJobDocument(input);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain(reason);
  });

  it('lists every invalid field of an agent update, with its path', () => {
    const r = parseJobDocument({
      operation: JOB_OPERATIONS.agentUpdate,
      version: 'latest',
      release: {
        url: '${aws:iot:s3-presigned-url:https://s3.amazonaws.com/b/k}',
        manifest: 'not base64!',
        signature: '',
      },
      extra: true,
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.operation).toBe(JOB_OPERATIONS.agentUpdate);
    expect(r.issues.map((i) => i.path).sort()).toEqual(
      ['extra', 'release.manifest', 'release.signature', 'release.url', 'version'].sort(),
    );
    expect(r.reason).toMatch(/^invalid pifleet\.agent-update document: /);
    expect(r.reason).toContain('unreplaced');
  });

  it.each([['file:///etc/passwd'], ['ftp://host/release.tgz'], ['/releases/1.2.3.tgz']])(
    'refuses %s as a release URL',
    (url) => {
      const r = parseJobDocument(agentUpdateDocument({ version: '1.2.3', release: { ...release, url } }));
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.issues).toEqual([{ path: 'release.url', message: expect.stringContaining('http(s) URL') }]);
    },
  );

  it.each([
    ['an empty object', {}, 'config must name at least one setting'],
    ['an array', [{ logLevel: 'info' }], 'config must be an object of settings'],
    ['a string', 'logLevel=debug', 'config must be an object of settings'],
  ])('refuses a config job whose config is %s', (_name, config, message) => {
    const r = parseJobDocument({ operation: JOB_OPERATIONS.config, config });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues).toEqual([{ path: 'config', message }]);
  });

  it('leaves the settings of a config job to the shadow rules on the device (unknown keys pass here)', () => {
    const doc = { operation: JOB_OPERATIONS.config, config: { colour: 'red', sampling: { bme280: 5 } } };
    expect(parseJobDocument(doc)).toEqual({ ok: true, document: doc });
  });

  it('refuses __proto__ and constructor as keys of a document, as keys, not prototypes', () => {
    for (const text of [
      '{"operation":"pifleet.reboot","__proto__":{"polluted":true}}',
      '{"operation":"pifleet.reboot","constructor":{"prototype":{"polluted":true}}}',
      '{"operation":"pifleet.agent-update","version":"1.0.0","release":{"url":"https://h/x","manifest":"AA==","signature":"AA==","__proto__":{}}}',
    ]) {
      const r = parseJobDocument(text);
      expect(r.ok, text).toBe(false);
      if (!r.ok) expect(r.issues[0]?.message).toMatch(/Unrecognized key/);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses a document nested deeper than its bound, as text and as an object, without recursing', () => {
    const deepText = `{"operation":"pifleet.config","config":${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}}`;
    // Beyond the size bound too: the size is checked first.
    expect(parseJobDocument(deepText)).toMatchObject({ ok: false, reason: expect.stringContaining('larger than') });
    let deep: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < 100_000; i += 1) deep = { a: deep };
    expect(parseJobDocument({ operation: JOB_OPERATIONS.config, config: deep })).toMatchObject({
      ok: false,
      reason: `job document nests more than ${MAX_JOB_DOCUMENT_DEPTH} levels deep`,
    });
    const nineText = `{"operation":"pifleet.config","config":${'{"a":'.repeat(8)}1${'}'.repeat(8)}}`;
    expect(parseJobDocument(nineText)).toMatchObject({ ok: false, reason: expect.stringContaining('levels deep') });
  });

  it('refuses a document over IoT Jobs’ 32,768 characters, as text and as an object', () => {
    const big = configDocument({ logLevel: 'x'.repeat(MAX_JOB_DOCUMENT_CHARS) });
    expect(parseJobDocument(big)).toMatchObject({ ok: false, reason: expect.stringContaining('larger than 32768') });
    expect(parseJobDocument(JSON.stringify(big))).toMatchObject({
      ok: false,
      reason: expect.stringContaining('larger'),
    });
  });

  it('refuses control characters in a reason', () => {
    const r = parseJobDocument({ operation: JOB_OPERATIONS.reboot, reason: 'a\nb' });
    expect(r).toMatchObject({ ok: false, issues: [{ path: 'reason' }] });
  });
});

describe('jobStatusDetails', () => {
  it('writes the progress fields that are set, in IoT statusDetails form', () => {
    expect(jobStatusDetails({ operation: 'pifleet.config', step: 'applied', changed: 'logLevel' })).toEqual({
      operation: 'pifleet.config',
      step: 'applied',
      changed: 'logLevel',
    });
  });

  it('keeps every value within IoT’s value rules (no \\p{C}, at most 1,024 characters, not empty)', () => {
    const d = jobStatusDetails({
      step: 'failed',
      detail: `${'é'.repeat(1_022)}😀😀`,
      version: '\u0000\u200b',
      rejected: 'a\tb\u0085c',
    });
    expect(d.version).toBeUndefined();
    expect(d.rejected).toBe('a b c');
    const detail = d.detail as string;
    expect(detail.length).toBeLessThanOrEqual(STATUS_DETAILS_LIMITS.maxValueChars);
    expect(detail.endsWith('…')).toBe(true);
    expect(/\p{C}/u.test(detail)).toBe(false);
  });
});
