import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CaError, CsrError, certificateIdOf, loadOrCreateCa } from '../../src/ca/local-ca.js';
import { removeDir, tempDir } from '../http/harness.js';

const root = tempDir('ca');
afterAll(() => removeDir(root));
let n = 0;
const freshDir = () => join(root, `ca-${++n}`);

describe('local CA', () => {
  it('is created on first use with a private key only its owner can read, and reloaded after', async () => {
    const dir = freshDir();
    const ca = await loadOrCreateCa({ dir, now: Date.now });
    expect(statSync(join(dir, 'ca-key.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(readFileSync(ca.caFile, 'utf8')).toBe(ca.caCertPem);
    const cert = new X509Certificate(ca.caCertPem);
    expect(cert.ca).toBe(true);
    expect(cert.checkIssued(cert)).toBe(true);

    const again = await loadOrCreateCa({ dir, now: Date.now });
    expect(again.caCertPem).toBe(ca.caCertPem);
    // The reloaded key still signs certificates the original CA certificate verifies.
    const issued = new X509Certificate((await again.createKeysAndCertificate()).certificatePem);
    expect(issued.verify(cert.publicKey)).toBe(true);
  });

  it('issues a server certificate for loopback, localhost and the configured host', async () => {
    const ca = await loadOrCreateCa({ dir: freshDir(), now: Date.now });
    const server = await ca.issueServerCertificate(['iot.example.lan', '10.0.0.5']);
    const cert = new X509Certificate(server.certPem);
    expect(cert.subjectAltName?.split(', ').sort()).toEqual(
      [
        'DNS:iot.example.lan',
        'DNS:localhost',
        'IP Address:10.0.0.5',
        'IP Address:127.0.0.1',
        'IP Address:0:0:0:0:0:0:0:1',
      ].sort(),
    );
    expect(cert.checkHost('iot.example.lan')).toBe('iot.example.lan');
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.ca).toBe(false);
    expect(cert.verify(new X509Certificate(ca.caCertPem).publicKey)).toBe(true);
    expect(cert.checkPrivateKey(createPrivateKey(server.keyPem))).toBe(true);
  });

  it('issues RSA-2048 device certificates valid until 2049, with AWS-style key encodings', async () => {
    const ca = await loadOrCreateCa({ dir: freshDir(), now: Date.now });
    const out = await ca.createKeysAndCertificate();
    const cert = new X509Certificate(out.certificatePem);
    expect(cert.subject).toBe('CN=AWS IoT Certificate');
    expect(cert.publicKey.asymmetricKeyType).toBe('rsa');
    expect(cert.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(new Date(cert.validTo).getUTCFullYear()).toBe(2049);
    expect(cert.keyUsage).toContain('1.3.6.1.5.5.7.3.2');
    expect(out.privateKeyPem.startsWith('-----BEGIN RSA PRIVATE KEY-----')).toBe(true);
    expect(certificateIdOf(out.certificatePem)).toMatch(/^[0-9a-f]{64}$/);
  });

  it.each([
    ['garbage', 'hello'],
    ['a certificate instead of a CSR', null],
  ])('refuses %s as a CSR', async (_label, input) => {
    const ca = await loadOrCreateCa({ dir: freshDir(), now: Date.now });
    const pem = input ?? ca.caCertPem;
    await expect(ca.certificateFromCsr(pem)).rejects.toBeInstanceOf(CsrError);
  });

  it('refuses a directory holding a certificate but no key, rather than replacing the CA', async () => {
    const dir = freshDir();
    const ca = await loadOrCreateCa({ dir, now: Date.now });
    rmSync(join(dir, 'ca-key.pem'));
    await expect(loadOrCreateCa({ dir, now: Date.now })).rejects.toMatchObject({ code: 'CA_INCOMPLETE' });
    expect(readFileSync(ca.caFile, 'utf8')).toBe(ca.caCertPem);
  });

  it('refuses a corrupt CA key', async () => {
    const dir = freshDir();
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'ca.pem'), 'not a cert');
    writeFileSync(join(dir, 'ca-key.pem'), 'not a key');
    await expect(loadOrCreateCa({ dir, now: Date.now })).rejects.toBeInstanceOf(CaError);
  });

  it('starts validity at the injected clock', async () => {
    const at = Date.UTC(2030, 0, 1);
    const ca = await loadOrCreateCa({ dir: freshDir(), now: () => at });
    const cert = new X509Certificate((await ca.createKeysAndCertificate()).certificatePem);
    expect(Math.abs(new Date(cert.validFrom).getTime() - at)).toBeLessThanOrEqual(60_000);
  });
});
