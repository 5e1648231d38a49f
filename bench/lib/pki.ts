/**
 * A throwaway PKI for benchmarks: a CA, a server certificate for 127.0.0.1, and device
 * certificates, made with @peculiar/x509 over Node's WebCrypto. RSA-2048 by default, the key
 * type AWS IoT's CreateKeysAndCertificate issues.
 */
import 'reflect-metadata';
import { createHash, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

const crypto = webcrypto as unknown as Parameters<typeof x509.X509CertificateGenerator.create>[1];
export type KeyType = 'ec' | 'rsa';

const ALGORITHMS = {
  ec: { gen: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } },
  rsa: {
    gen: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    sign: { name: 'RSASSA-PKCS1-v1_5' },
  },
} as const;

type Keys = { privateKey: unknown; publicKey: unknown };

export interface Issued {
  readonly certPem: string;
  readonly keyPem: string;
  readonly certificateId: string;
}

export interface BenchPki {
  readonly caCertPem: string;
  readonly server: Issued;
  issue(commonName: string): Promise<Issued>;
}

export async function createBenchPki(keyType: KeyType = 'rsa'): Promise<BenchPki> {
  const alg = ALGORITHMS[keyType];
  const generate = async () => (await webcrypto.subtle.generateKey(alg.gen, true, ['sign', 'verify'])) as Keys;
  const validity = { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000) };
  const caKeys = await generate();
  const ca = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: 'CN=pifleet bench CA',
      keys: caKeys as never,
      signingAlgorithm: alg.sign,
      ...validity,
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
    },
    crypto,
  );
  const issue = async (subject: string, extensions: x509.Extension[]): Promise<Issued> => {
    const keys = await generate();
    const cert = await x509.X509CertificateGenerator.create(
      {
        subject,
        issuer: ca.subject,
        publicKey: keys.publicKey as never,
        signingKey: caKeys.privateKey as never,
        signingAlgorithm: alg.sign,
        ...validity,
        extensions,
      },
      crypto,
    );
    const der = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey as webcrypto.CryptoKey);
    return {
      certPem: cert.toString('pem'),
      keyPem: x509.PemConverter.encode(der, 'PRIVATE KEY'),
      certificateId: createHash('sha256').update(Buffer.from(cert.rawData)).digest('hex'),
    };
  };
  const server = await issue('CN=localhost', [
    new x509.SubjectAlternativeNameExtension([
      { type: 'dns', value: 'localhost' },
      { type: 'ip', value: '127.0.0.1' },
    ]),
  ]);
  return { caCertPem: ca.toString('pem'), server, issue: (cn) => issue(`CN=${cn}`, []) };
}
