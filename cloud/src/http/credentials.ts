import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, chmod } from 'node:fs/promises';
import { fromIni } from '@aws-sdk/credential-provider-ini';
import { LOCAL_PROFILE } from '@pifleet/protocol';
import { writeFileAtomic } from '../config/files.js';
import { CloudError } from '../errors.js';

// The profile name is part of the wire contract (the `pifleet` CLI reads the same file); cloud's
// entry keeps exporting it from here.
export { LOCAL_PROFILE };

export interface LocalCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

/** Looks up the secret of an access key id (the SigV4 verifier's view of the credentials). */
export interface CredentialStore {
  secretFor(accessKeyId: string): string | undefined;
}

export class CredentialsError extends CloudError {
  override name = 'CredentialsError';
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** Fresh credentials shaped like AWS's: `AKIA` + 16 base32 characters, a 40-character secret. */
export function generateCredentials(): LocalCredentials {
  const idBytes = randomBytes(16);
  const id = Array.from(idBytes, (b) => BASE32[b % 32]).join('');
  const secret = randomBytes(30).toString('base64').replace(/\+/g, 'A').replace(/\//g, 'B');
  return { accessKeyId: `AKIA${id}`, secretAccessKey: secret };
}

/**
 * Reads the `profile` key pair of the shared-credentials file `file` with the AWS SDK's own
 * reader (the one every SDK client and the AWS CLI use on it), or undefined when the file or the
 * profile is missing or has no key pair. Only this file is read: the config file is pointed at it
 * too, so neither `~/.aws/config` nor `AWS_CONFIG_FILE` can add to or override the profile.
 */
export async function readCredentialsFile(
  file: string,
  profile = LOCAL_PROFILE,
): Promise<LocalCredentials | undefined> {
  try {
    const { accessKeyId, secretAccessKey } = await fromIni({
      profile,
      filepath: file,
      configFilepath: file,
      ignoreCache: true,
    })();
    return { accessKeyId, secretAccessKey };
  } catch (err) {
    // The provider's one failure for a missing file, a missing profile and a profile without keys.
    if (err instanceof Error && err.name === 'CredentialsProviderError') return undefined;
    throw err;
  }
}

export function formatCredentialsFile(credentials: LocalCredentials, profile = LOCAL_PROFILE): string {
  return [
    `# Credentials of the pifleet local IoT Core (generated on first start). Keep this file private.`,
    `[${profile}]`,
    `aws_access_key_id = ${credentials.accessKeyId}`,
    `aws_secret_access_key = ${credentials.secretAccessKey}`,
    '',
  ].join('\n');
}

/**
 * Reads the local credentials from `file`, creating the file (mode 0600) with fresh credentials
 * when it does not exist. An existing file without the profile is an error, never overwritten.
 */
export async function loadOrCreateCredentials(
  file: string,
): Promise<{ credentials: LocalCredentials; created: boolean }> {
  let exists = true;
  try {
    await access(file, constants.R_OK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new CredentialsError('CREDENTIALS_UNREADABLE', `cannot read credentials file ${file}`, { cause: err });
    }
    exists = false;
  }
  if (exists) {
    const credentials = await readCredentialsFile(file);
    if (!credentials) {
      throw new CredentialsError('CREDENTIALS_INVALID', `credentials file ${file} has no [${LOCAL_PROFILE}] profile`, {
        data: { file },
      });
    }
    await chmod(file, 0o600);
    return { credentials, created: false };
  }
  const credentials = generateCredentials();
  await writeFileAtomic(file, formatCredentialsFile(credentials), 0o600);
  return { credentials, created: true };
}

/** A credential store holding exactly one key pair. */
export function singleCredentialStore(credentials: LocalCredentials): CredentialStore {
  return {
    secretFor: (accessKeyId) => (accessKeyId === credentials.accessKeyId ? credentials.secretAccessKey : undefined),
  };
}
