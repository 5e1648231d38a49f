import { createPrivateKey, webcrypto } from 'node:crypto';
import { ProvisioningError } from './errors.js';

/** A key pair made on the device and the PKCS#10 request for its certificate. */
export interface DeviceKey {
  /** The private key, PEM (SEC 1, `EC PRIVATE KEY`: what aws-crt and OpenSSL read on every Pi OS). */
  readonly privateKeyPem: string;
  readonly csrPem: string;
}

/** Makes a key pair and its CSR; the flow asks for a new one for every certificate it requests. */
export type DeviceKeyMaker = (subject: { readonly commonName: string }) => Promise<DeviceKey>;

/** A common name the CSR may carry: the serial (hex) or a fixed name; never text from outside as is. */
const SAFE_CN = /^[0-9A-Za-z_-]{1,64}$/;

let x509Module: Promise<typeof import('@peculiar/x509')> | undefined;

/** @peculiar/x509, imported once (a fleet simulator makes thousands of keys in one process). */
function loadX509(): Promise<typeof import('@peculiar/x509')> {
  x509Module ??= (async () => {
    try {
      await import('reflect-metadata');
      return await import('@peculiar/x509');
    } catch (err) {
      x509Module = undefined;
      throw new ProvisioningError(
        'PROVISIONING_CSR_UNAVAILABLE',
        'provisioning by CSR needs @peculiar/x509 and reflect-metadata, which this install of the agent lacks: install them beside it, or set provisioning.method to "create-keys"',
        { cause: err },
      );
    }
  })();
  return x509Module;
}

/**
 * An EC P-256 key pair and a CSR signed with it (ECDSA with SHA-256). P-256: AWS IoT signs CSRs of
 * EC P-256/P-384 and RSA ≥ 2048 keys alike, and a P-256 key is made in milliseconds on a Pi Zero,
 * where RSA 2048 takes seconds. The private key never leaves the device: only the CSR is sent.
 *
 * @peculiar/x509 (with its reflect-metadata polyfill, which must be loaded first) is imported
 * here, on first use, so that an agent that never provisions by CSR does not load it.
 */
export const makeEcDeviceKey: DeviceKeyMaker = async ({ commonName }) => {
  const x509 = await loadX509();
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' } as const;
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cn = SAFE_CN.test(commonName) ? commonName : 'pifleet-device';
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    { name: `CN=${cn}`, keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } },
    webcrypto,
  );
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const privateKeyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })
    .export({ format: 'pem', type: 'sec1' })
    .toString();
  return { privateKeyPem, csrPem: csr.toString('pem') };
};
