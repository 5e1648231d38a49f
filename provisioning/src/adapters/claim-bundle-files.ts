import { stat } from 'node:fs/promises';
import path from 'node:path';
import { CLAIM_BUNDLE_FILES } from '../core/claim-bundle.js';
import { readTextIfExists } from './text-files.js';

/** What of a claim bundle a directory holds (only the claim files are read; the key only checked). */
export interface ClaimBundleContents {
  readonly claimCertificatePem?: string;
  readonly hasClaimKey: boolean;
}

export async function readClaimBundle(dir: string): Promise<ClaimBundleContents> {
  const claimCertificatePem = await readTextIfExists(path.join(dir, CLAIM_BUNDLE_FILES.claimCertificate));
  let hasClaimKey = false;
  try {
    hasClaimKey = (await stat(path.join(dir, CLAIM_BUNDLE_FILES.claimPrivateKey))).isFile();
  } catch {
    hasClaimKey = false;
  }
  return { hasClaimKey, ...(claimCertificatePem !== undefined ? { claimCertificatePem } : {}) };
}
