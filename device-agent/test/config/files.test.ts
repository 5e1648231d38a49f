import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkCredentials, checkOutboxPath } from '../../src/config/files.js';
import { makePki, type TestPki } from '../transport/tls-broker.js';

let pki: TestPki;
let other: TestPki;
let dir: string;
beforeAll(async () => {
  [pki, other] = await Promise.all([makePki('pi-files'), makePki('pi-other')]);
  dir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-files-'));
});
afterAll(() => {
  pki?.cleanup();
  other?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const file = (name: string, text: string, mode = 0o600) => {
  const f = path.join(dir, name);
  writeFileSync(f, text);
  chmodSync(f, mode);
  return f;
};
const good = () => ({ certFile: pki.certFile, keyFile: pki.keyFile, caFile: pki.caFile });
const issuesOf = async (c: { certFile: string; keyFile: string; caFile?: string }) => {
  const r = await checkCredentials(c);
  return r.ok ? [] : r.issues;
};

describe('checkCredentials', () => {
  it('accepts a certificate, its own key and the CA that issued it', async () => {
    const r = await checkCredentials(good());
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.credentials.certificate.subject).toContain('pi-files');
  });

  it.each([
    ['an empty certificate', () => ({ certFile: file('empty.pem', '') }), 'certFile', /is empty/],
    ['a certificate that is not PEM', () => ({ certFile: file('der.pem', 'MIIBhello') }), 'certFile', /not PEM/],
    [
      'a key as the certificate',
      () => ({ certFile: file('key-as-cert.pem', readFileSync(pki.keyFile, 'utf8')) }),
      'certFile',
      /holds a private key, not a certificate/,
    ],
    [
      'the certificate given as the key',
      () => ({ keyFile: file('cert-as-key.pem', readFileSync(pki.certFile, 'utf8')) }),
      'keyFile',
      /holds a certificate, not a private key: set keyFile/,
    ],
    [
      'a key from another pair',
      () => ({ keyFile: other.keyFile }),
      'keyFile',
      /is not the private key of .* \(they come from different key pairs\): use the key file from the same bundle/,
    ],
    [
      'a certificate another CA of the same name signed',
      () => ({ certFile: other.certFile, keyFile: other.keyFile }),
      'certFile',
      /was not signed by the CA of that name in .*: provision the device again against this core, or use this core's ca\.pem/,
    ],
    [
      'a CA file with a key in it',
      () => ({ caFile: file('ca-key.pem', readFileSync(pki.keyFile, 'utf8')) }),
      'caFile',
      /holds a private key, not a CA certificate/,
    ],
    [
      'a corrupt PEM certificate',
      () => ({ certFile: file('bad.pem', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n') }),
      'certFile',
      /is not a valid certificate/,
    ],
    [
      'a key readable by others',
      () => ({ keyFile: file('open.pem', readFileSync(pki.keyFile, 'utf8'), 0o644) }),
      'keyFile',
      /accessible by group or others \(mode 644\); run chmod 600/,
    ],
    ['a missing CA', () => ({ caFile: path.join(dir, 'nope.pem') }), 'caFile', /does not exist/],
  ])('%s: one issue with the fix', async (_what, change, where, message) => {
    const issues = await issuesOf({ ...good(), ...change() });
    expect(issues).toEqual([{ path: where, message: expect.stringMatching(message) }]);
  });

  it('reports every problem at once', async () => {
    const issues = await issuesOf({
      certFile: file('e.pem', ''),
      keyFile: file('c.pem', readFileSync(pki.certFile, 'utf8')),
      caFile: path.join(dir, 'missing-ca.pem'),
    });
    expect(issues.map((i) => i.path)).toEqual(['caFile', 'certFile', 'keyFile']);
  });
});

describe('checkOutboxPath', () => {
  it.each([
    ['a directory', () => dir, /is a directory; outbox.path names the database file: use .*outbox\.db/],
    ['a file under a file', () => path.join(pki.certFile, 'outbox.db'), /is not a directory, so .* cannot be created/],
  ])('%s is refused', async (_what, p, message) => {
    expect(await checkOutboxPath(p())).toEqual([{ path: 'outbox.path', message: expect.stringMatching(message) }]);
  });

  it('accepts :memory:, an existing file, and a file in directories still to be made', async () => {
    expect(await checkOutboxPath(':memory:')).toEqual([]);
    expect(await checkOutboxPath(file('outbox.db', ''))).toEqual([]);
    expect(await checkOutboxPath(path.join(dir, 'a', 'b', 'outbox.db'))).toEqual([]);
  });
});
