import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

/** A device-side key pair and CSR (the key never leaves the "device": only the CSR is returned). */
export async function makeCsr(commonName: string): Promise<{ csrPem: string; publicKeyDer: Buffer }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const keys = await crypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${commonName}`,
    keys,
    signingAlgorithm: alg,
  });
  const spki = Buffer.from(await crypto.subtle.exportKey('spki', keys.publicKey));
  return { csrPem: csr.toString('pem'), publicKeyDer: spki };
}
