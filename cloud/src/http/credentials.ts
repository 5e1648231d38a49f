import { randomBytes } from 'node:crypto';
import { chmod, readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../config/files.js';
import { CloudError } from '../errors.js';

/** The profile name of the local IoT Core's credentials in the shared-credentials file. */
export const LOCAL_PROFILE = 'pifleet-local';

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

/** Parses the `[profile]` section of an AWS shared-credentials (INI) file. */
export function parseCredentialsFile(text: string, profile: string): LocalCredentials | undefined {
  let current: string | undefined;
  const values = new Map<string, string>();
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[\s*([^\]]+?)\s*\]$/.exec(line);
    if (section) {
      current = section[1];
      continue;
    }
    if (current !== profile) continue;
    const eq = line.indexOf('=');
    if (eq === -1) continue;
    values.set(line.slice(0, eq).trim().toLowerCase(), line.slice(eq + 1).trim());
  }
  const accessKeyId = values.get('aws_access_key_id');
  const secretAccessKey = values.get('aws_secret_access_key');
  if (!accessKeyId || !secretAccessKey) return undefined;
  return { accessKeyId, secretAccessKey };
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
  let text: string | undefined;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new CredentialsError('credentials.unreadable', `cannot read credentials file ${file}`, { cause: err });
    }
  }
  if (text !== undefined) {
    const credentials = parseCredentialsFile(text, LOCAL_PROFILE);
    if (!credentials) {
      throw new CredentialsError('credentials.invalid', `credentials file ${file} has no [${LOCAL_PROFILE}] profile`, {
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
