import { generateKeyPairSync } from 'node:crypto';

/**
 * Release signing keys. A release's manifest is signed with the private key on the operator's
 * machine; devices hold only the public key (in the agent config) and refuse a release whose
 * signature it does not verify. Pure: generates in memory, the caller writes the files.
 */

/** The algorithms a device verifies: Ed25519, or ECDSA on P-256 with SHA-256 (for keys kept in an HSM/KMS that lacks Ed25519). */
export const SIGNING_ALGORITHMS = ['ed25519', 'ecdsa-p256'] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

export function isSigningAlgorithm(value: string): value is SigningAlgorithm {
  return (SIGNING_ALGORITHMS as readonly string[]).includes(value);
}

/** File names `keys create` writes in its directory. */
export const KEY_FILES = {
  privateKey: 'release-signing.key.pem',
  publicKey: 'release-signing.pub.pem',
} as const;

/** Where `keys create` writes without `--out`: beside the bundles, under the git-ignored `.pifleet/`. */
export const DEFAULT_KEYS_DIR = '.pifleet/keys';

export const KEY_MODES = { directory: 0o700, privateKey: 0o600, publicKey: 0o644 } as const;

export interface SigningKeyPair {
  readonly algorithm: SigningAlgorithm;
  /** PKCS#8 PEM. */
  readonly privateKeyPem: string;
  /** SubjectPublicKeyInfo PEM: what the agent config carries. */
  readonly publicKeyPem: string;
}

export function generateSigningKeyPair(algorithm: SigningAlgorithm): SigningKeyPair {
  const publicKeyEncoding = { type: 'spki', format: 'pem' } as const;
  const privateKeyEncoding = { type: 'pkcs8', format: 'pem' } as const;
  const pair =
    algorithm === 'ed25519'
      ? generateKeyPairSync('ed25519', { publicKeyEncoding, privateKeyEncoding })
      : generateKeyPairSync('ec', { namedCurve: 'P-256', publicKeyEncoding, privateKeyEncoding });
  return { algorithm, privateKeyPem: pair.privateKey, publicKeyPem: pair.publicKey };
}
