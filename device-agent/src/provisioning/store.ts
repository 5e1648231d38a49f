import { mkdir, open, unlink } from 'node:fs/promises';
import path from 'node:path';
import { isJsonObject, setOwn } from '@pifleet/protocol';
import { writeFileAtomic } from '../jobs/state.js';

/** fsyncs a directory, so that a rename or unlink in it is on disk. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The config file's text with `thingName` set (first, where a reader looks), everything else as it was. */
export function configWithThingName(text: string, thingName: string): string {
  const doc: unknown = JSON.parse(text);
  if (!isJsonObject(doc)) throw new TypeError('config must be a JSON object');
  const out: Record<string, unknown> = { thingName };
  for (const key of Object.keys(doc)) if (key !== 'thingName') setOwn(out, key, doc[key]);
  return `${JSON.stringify(out, null, 2)}\n`;
}

/** What provisioning stores, and where. */
export interface IdentityFiles {
  readonly configFile: string;
  /** The config file's text as read before provisioning (flags and environment not applied). */
  readonly configText: string;
  readonly certFile: string;
  readonly keyFile: string;
}

/** The steps of {@link storeIdentity}, in order; tests stop after one to see what a crash leaves. */
export type StoreStep = 'stale-certificate' | 'key' | 'config' | 'certificate';

/**
 * Writes a provisioned identity so that a crash between any two steps leaves a device that either
 * provisions again on its next start or runs as the new thing, never one with a key that does not
 * match its certificate: the private key first, then the config with `thingName`, and the
 * certificate last. Each is replaced atomically and durably (the agent's `writeFileAtomic`: a
 * temporary file made 0600 in the same directory, fsynced, renamed, the directory fsynced), so a
 * key is never readable by others, not even for a moment, and a config never half-written; the
 * rewritten config is 0600 too (it is the agent's own file from now on). The certificate file is what says "provisioned" (with `thingName` set), so it
 * is written only when the key and the name it belongs with are on disk; a certificate of an
 * earlier identity is removed first ({@link removeStaleCertificate}). Until then nothing is touched,
 * so a provisioning that fails (denied, timed out) leaves a device provisioned before as it was.
 */
export async function storeIdentity(
  files: IdentityFiles,
  identity: { readonly thingName: string; readonly certificatePem: string; readonly privateKeyPem: string },
  afterStep: (step: StoreStep) => Promise<void> | void = () => undefined,
): Promise<void> {
  // An earlier identity's certificate goes first: the new key must never sit beside it.
  await removeStaleCertificate(files.certFile);
  await afterStep('stale-certificate');
  writeFileAtomic(files.keyFile, identity.privateKeyPem);
  await afterStep('key');
  writeFileAtomic(files.configFile, configWithThingName(files.configText, identity.thingName));
  await afterStep('config');
  writeFileAtomic(files.certFile, identity.certificatePem);
  await afterStep('certificate');
}

/**
 * Removes the certificate of an earlier identity (a device provisioned again: its config has no
 * `thingName` any more), so that after a crash it cannot be taken for the new identity's, whose key
 * may already be in place. Returns whether there was one.
 */
export async function removeStaleCertificate(certFile: string): Promise<boolean> {
  try {
    await unlink(certFile);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  await syncDirectory(path.dirname(path.resolve(certFile)));
  return true;
}

/** Creates the directories the identity's files go in (0700 when new: they hold a private key). */
export async function ensureDirectories(files: readonly string[]): Promise<void> {
  for (const dir of new Set(files.map((f) => path.dirname(path.resolve(f))))) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  }
}
