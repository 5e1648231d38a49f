import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  formatCredentialsFile,
  LOCAL_PROFILE,
  loadOrCreateCredentials,
  readCredentialsFile,
} from '../../src/http/credentials.js';

const dir = mkdtempSync(join(tmpdir(), 'pifleet-credentials-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function file(text?: string): string {
  const f = join(dir, `credentials-${++n}`);
  if (text !== undefined) writeFileSync(f, text);
  return f;
}

const pair = { accessKeyId: 'AKIAEXAMPLE0000000000', secretAccessKey: 'secret/with+chars=' };

describe('the shared-credentials file (read with the AWS SDK)', () => {
  it('reads back what the core writes', async () => {
    expect(await readCredentialsFile(file(formatCredentialsFile(pair)))).toEqual(pair);
  });

  it('finds the profile among others, with comments, blank lines and spacing as people write them', async () => {
    const text = [
      '; another tool',
      '[default]',
      'aws_access_key_id=AKIADEFAULT',
      'aws_secret_access_key=default',
      '',
      `[${LOCAL_PROFILE}]`,
      '# ours',
      `aws_access_key_id   =   ${pair.accessKeyId}`,
      `aws_secret_access_key=${pair.secretAccessKey}`,
      '[after]',
      'aws_access_key_id = x',
      'aws_secret_access_key = y',
    ].join('\r\n');
    expect(await readCredentialsFile(file(text))).toEqual(pair);
    expect(await readCredentialsFile(file(text), 'after')).toEqual({ accessKeyId: 'x', secretAccessKey: 'y' });
  });

  it.each([
    ['a missing file', undefined],
    ['another profile only', '[other]\naws_access_key_id = x\naws_secret_access_key = y\n'],
    ['a profile without a secret', `[${LOCAL_PROFILE}]\naws_access_key_id = x\n`],
    ['text that is no INI file', 'garbage [[[\n= =\n'],
    // The SDK takes a section name as written, spaces included: to it this is another profile.
    [
      'a section with spaces inside the brackets',
      `[ ${LOCAL_PROFILE} ]\naws_access_key_id = x\naws_secret_access_key = y\n`,
    ],
  ])('has no credentials in %s', async (_what, text) => {
    expect(await readCredentialsFile(file(text))).toBeUndefined();
  });

  it('reads only the given file: AWS_CONFIG_FILE cannot override the profile', async () => {
    const config = file(`[profile ${LOCAL_PROFILE}]\naws_access_key_id = AKIAOTHER\naws_secret_access_key = other\n`);
    const before = process.env.AWS_CONFIG_FILE;
    process.env.AWS_CONFIG_FILE = config;
    try {
      expect(await readCredentialsFile(file(formatCredentialsFile(pair)))).toEqual(pair);
      expect(await readCredentialsFile(file('[other]\n'))).toBeUndefined();
    } finally {
      if (before === undefined) delete process.env.AWS_CONFIG_FILE;
      else process.env.AWS_CONFIG_FILE = before;
    }
  });

  it('reads the file again after it changed (no cache between calls)', async () => {
    const f = file(formatCredentialsFile(pair));
    expect(await readCredentialsFile(f)).toEqual(pair);
    writeFileSync(f, formatCredentialsFile({ accessKeyId: 'AKIANEW', secretAccessKey: 'new' }));
    expect(await readCredentialsFile(f)).toEqual({ accessKeyId: 'AKIANEW', secretAccessKey: 'new' });
  });
});

describe('loadOrCreateCredentials', () => {
  it('creates fresh AWS-shaped credentials in a private file, then reads the same ones back', async () => {
    const f = file();
    const first = await loadOrCreateCredentials(f);
    expect(first.created).toBe(true);
    expect(first.credentials.accessKeyId).toMatch(/^AKIA[A-Z2-7]{16}$/);
    expect(first.credentials.secretAccessKey).toHaveLength(40);
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(readFileSync(f, 'utf8')).toContain(`[${LOCAL_PROFILE}]`);
    expect(await loadOrCreateCredentials(f)).toEqual({ credentials: first.credentials, created: false });
  });

  it('refuses a file without the profile and leaves it as it was', async () => {
    const text = '[other]\naws_access_key_id = x\naws_secret_access_key = y\n';
    const f = file(text);
    await expect(loadOrCreateCredentials(f)).rejects.toMatchObject({
      code: 'CREDENTIALS_INVALID',
      message: `credentials file ${f} has no [${LOCAL_PROFILE}] profile`,
    });
    expect(readFileSync(f, 'utf8')).toBe(text);
  });

  it('makes an existing file private again', async () => {
    const f = file(formatCredentialsFile(pair));
    expect(statSync(f).mode & 0o077).not.toBe(0);
    expect(await loadOrCreateCredentials(f)).toEqual({ credentials: pair, created: false });
    expect(statSync(f).mode & 0o777).toBe(0o600);
  });
});
