import {
  createHash,
  createPrivateKey,
  createPublicKey,
  X509Certificate as NodeX509,
  randomBytes,
  webcrypto,
} from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { writeFileAtomic } from '../config/files.js';
import { CloudError } from '../errors.js';
import * as x509 from './x509.js';

/**
 * The local certificate authority. Created on first start in `{dataDir}/ca` (an ECDSA P-256 key,
 * mode 0600, and a self-signed CA certificate); it issues the broker's server certificate and the
 * device certificates the control plane hands out. Devices trust `ca.pem` as their root CA.
 */

export class CaError extends CloudError {
  override name = 'CaError';
}

/** A certificate signing request that cannot be signed (malformed, bad signature, weak key). */
export class CsrError extends CaError {
  override name = 'CsrError';
}

export interface IssuedKeysAndCertificate {
  readonly certificatePem: string;
  /** SPKI `-----BEGIN PUBLIC KEY-----`, as AWS returns it. */
  readonly publicKeyPem: string;
  /** PKCS#1 `-----BEGIN RSA PRIVATE KEY-----`, as AWS returns it. */
  readonly privateKeyPem: string;
}

export interface ServerCertificate {
  readonly certPem: string;
  /** PKCS#8 private key of the server certificate. */
  readonly keyPem: string;
}

export interface LocalCa {
  /** The CA certificate (the root devices and SDK clients trust). */
  readonly caCertPem: string;
  /** Path of the CA certificate file. */
  readonly caFile: string;
  /** Issues a TLS server certificate valid for 127.0.0.1, ::1, localhost and `hosts`. */
  issueServerCertificate(hosts: readonly string[]): Promise<ServerCertificate>;
  /** Creates an RSA-2048 key pair and a client certificate for it (CreateKeysAndCertificate). */
  createKeysAndCertificate(): Promise<IssuedKeysAndCertificate>;
  /** Verifies a PKCS#10 CSR and issues a client certificate for its public key. */
  certificateFromCsr(csrPem: string): Promise<string>;
}

export interface LocalCaOptions {
  /** Directory holding `ca.pem` and `ca-key.pem`; created (0700) if missing. */
  readonly dir: string;
  /** Current time in ms since the epoch (certificate validity starts here). */
  readonly now: () => number;
}

const CA_SUBJECT = 'CN=pifleet local IoT Core CA, O=pifleet';
const DEVICE_SUBJECT = 'CN=AWS IoT Certificate';
/** AWS-issued device certificates are valid until the end of 2049. */
const DEVICE_NOT_AFTER = new Date(Date.UTC(2049, 11, 31, 23, 59, 59));
const EC_P256: webcrypto.EcKeyGenParams & webcrypto.EcdsaParams = {
  name: 'ECDSA',
  namedCurve: 'P-256',
  hash: 'SHA-256',
};
const RSA_2048: webcrypto.RsaHashedKeyGenParams = {
  name: 'RSASSA-PKCS1-v1_5',
  modulusLength: 2048,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash: 'SHA-256',
};
const SIGNING: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const ALLOWED_CURVES = new Set(['prime256v1', 'secp384r1', 'secp521r1']);
const BACKDATE_MS = 60_000;

const crypto: webcrypto.Crypto = webcrypto;

/** AWS's certificateId: the lowercase hex SHA-256 of the certificate's DER encoding. */
export function certificateIdOf(certificatePem: string): string {
  return createHash('sha256').update(new NodeX509(certificatePem).raw).digest('hex');
}

function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] as number) & 0x7f;
  if (bytes[0] === 0) bytes[0] = 1;
  return bytes.toString('hex');
}

function toPem(der: ArrayBuffer, label: string): string {
  return x509.PemConverter.encode(der, label);
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CaError('CA_UNREADABLE', `cannot read ${file}`, { cause: err, data: { file } });
  }
}

/** Loads the CA from `dir`, creating it on first use. */
export async function loadOrCreateCa(options: LocalCaOptions): Promise<LocalCa> {
  const caFile = join(options.dir, 'ca.pem');
  const keyFile = join(options.dir, 'ca-key.pem');
  const [certText, keyText] = await Promise.all([readIfExists(caFile), readIfExists(keyFile)]);

  let caCert: x509.X509Certificate;
  let caKey: webcrypto.CryptoKey;
  if (certText !== undefined && keyText !== undefined) {
    try {
      caCert = new x509.X509Certificate(certText);
      caKey = await crypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(keyText), EC_P256, false, ['sign']);
    } catch (err) {
      throw new CaError('CA_INVALID', `the CA in ${options.dir} cannot be loaded`, {
        cause: err,
        data: { dir: options.dir },
      });
    }
  } else if (certText === undefined && keyText === undefined) {
    const keys = (await crypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const notBefore = new Date(options.now() - BACKDATE_MS);
    caCert = await x509.X509CertificateGenerator.createSelfSigned(
      {
        serialNumber: serialNumber(),
        name: CA_SUBJECT,
        notBefore,
        notAfter: new Date(notBefore.getTime() + 20 * 365 * 24 * 3600 * 1000),
        keys,
        signingAlgorithm: SIGNING,
        extensions: [
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
          await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
        ],
      },
      crypto,
    );
    const pkcs8 = await crypto.subtle.exportKey('pkcs8', keys.privateKey);
    // Key first: a CA certificate without its key on disk would be unusable.
    await writeFileAtomic(keyFile, toPem(pkcs8, 'PRIVATE KEY'), 0o600);
    await writeFileAtomic(caFile, caCert.toString('pem'), 0o644);
    caKey = keys.privateKey;
  } else {
    throw new CaError(
      'CA_INCOMPLETE',
      `the CA in ${options.dir} is incomplete: one of ca.pem and ca-key.pem is missing`,
      {
        data: { dir: options.dir },
      },
    );
  }

  const caCertPem = caCert.toString('pem');
  const authorityKeyId = await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey, false, crypto);

  async function issue(params: {
    subject: string;
    publicKey: webcrypto.CryptoKey | x509.PublicKey;
    notAfter: Date;
    extensions: x509.Extension[];
  }): Promise<string> {
    const cert = await x509.X509CertificateGenerator.create(
      {
        serialNumber: serialNumber(),
        subject: params.subject,
        issuer: caCert.subject,
        notBefore: new Date(options.now() - BACKDATE_MS),
        notAfter: params.notAfter,
        publicKey: params.publicKey,
        signingKey: caKey,
        signingAlgorithm: SIGNING,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          authorityKeyId,
          await x509.SubjectKeyIdentifierExtension.create(params.publicKey, false, crypto),
          ...params.extensions,
        ],
      },
      crypto,
    );
    return cert.toString('pem');
  }

  function clientExtensions(rsa: boolean): x509.Extension[] {
    const usage = rsa
      ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment
      : x509.KeyUsageFlags.digitalSignature;
    return [
      new x509.KeyUsagesExtension(usage, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
    ];
  }

  return {
    caCertPem,
    caFile,

    async issueServerCertificate(hosts) {
      const names = new Set(['127.0.0.1', '::1', 'localhost', ...hosts.filter((h) => h !== '0.0.0.0' && h !== '::')]);
      const keys = (await crypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
      const first = hosts[0] ?? 'localhost';
      const certPem = await issue({
        subject: `CN=${first.replace(/[,=+<>#;"\\]/g, '_')}`,
        publicKey: keys.publicKey,
        notAfter: new Date(options.now() + 825 * 24 * 3600 * 1000),
        extensions: [
          new x509.SubjectAlternativeNameExtension(
            [...names].map((name) => ({ type: isIP(name) ? ('ip' as const) : ('dns' as const), value: name })),
            false,
          ),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        ],
      });
      const keyPem = toPem(await crypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
      return { certPem, keyPem };
    },

    async createKeysAndCertificate() {
      const keys = (await crypto.subtle.generateKey(RSA_2048, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
      const certificatePem = await issue({
        subject: DEVICE_SUBJECT,
        publicKey: keys.publicKey,
        notAfter: DEVICE_NOT_AFTER,
        extensions: clientExtensions(true),
      });
      const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
      const spki = await crypto.subtle.exportKey('spki', keys.publicKey);
      const privateKeyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })
        .export({ format: 'pem', type: 'pkcs1' })
        .toString();
      return { certificatePem, publicKeyPem: toPem(spki, 'PUBLIC KEY'), privateKeyPem };
    },

    async certificateFromCsr(csrPem) {
      let csr: x509.Pkcs10CertificateRequest;
      try {
        csr = new x509.Pkcs10CertificateRequest(csrPem.trim());
      } catch (err) {
        throw new CsrError(
          'CA_CSR_MALFORMED',
          'The certificate signing request is not a valid PEM-encoded PKCS#10 request.',
          {
            cause: err,
          },
        );
      }
      const key = (() => {
        try {
          return createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
        } catch (err) {
          throw new CsrError('CA_CSR_KEY', 'The public key of the certificate signing request cannot be read.', {
            cause: err,
          });
        }
      })();
      const details = key.asymmetricKeyDetails ?? {};
      const rsa = key.asymmetricKeyType === 'rsa';
      const acceptable = rsa
        ? (details.modulusLength ?? 0) >= 2048
        : key.asymmetricKeyType === 'ec' && ALLOWED_CURVES.has(details.namedCurve ?? '');
      if (!acceptable) {
        throw new CsrError(
          'CA_CSR_KEY',
          'The key of the certificate signing request must be RSA (2048 bits or more) or ECDSA on P-256, P-384 or P-521.',
          { data: { keyType: key.asymmetricKeyType, ...details } },
        );
      }
      let valid = false;
      try {
        valid = await csr.verify(crypto);
      } catch (err) {
        throw new CsrError('CA_CSR_SIGNATURE', 'The signature of the certificate signing request cannot be verified.', {
          cause: err,
        });
      }
      if (!valid)
        throw new CsrError('CA_CSR_SIGNATURE', 'The signature of the certificate signing request is not valid.');
      const subject = csr.subject.trim() === '' ? DEVICE_SUBJECT : csr.subject;
      return issue({
        subject,
        publicKey: csr.publicKey,
        notAfter: DEVICE_NOT_AFTER,
        extensions: clientExtensions(rsa),
      });
    },
  };
}
