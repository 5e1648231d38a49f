import { randomBytes } from 'node:crypto';
import { chmod, open, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { isJsonObject, ownValue, parseJson } from '@pifleet/protocol';
import { BUNDLE_FILES, BUNDLE_MODES } from '../core/bundle.js';
import { makeOutDirectory } from './out-directory.js';
import { readTextIfExists } from './text-files.js';

/** What a bundle directory holds now (only the files a bundle consists of are read). */
export interface BundleContents {
  readonly dir: string;
  /** The directory exists and has at least one entry. */
  readonly nonEmpty: boolean;
  readonly certificatePem?: string;
  readonly hasPrivateKey: boolean;
  readonly caPem?: string;
  readonly agentConfigText?: string;
  readonly unitText?: string;
  /** `thingName` of the agent config, when it parses. */
  readonly thingName?: string;
}

export async function readBundle(dir: string): Promise<BundleContents> {
  let entries: string[] = [];
  try {
    entries = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const f = (name: string) => path.join(dir, name);
  const [certificatePem, caPem, agentConfigText, unitText] = await Promise.all([
    readTextIfExists(f(BUNDLE_FILES.certificate)),
    readTextIfExists(f(BUNDLE_FILES.ca)),
    readTextIfExists(f(BUNDLE_FILES.agentConfig)),
    readTextIfExists(f(BUNDLE_FILES.unit)),
  ]);
  let hasPrivateKey = false;
  try {
    hasPrivateKey = (await stat(f(BUNDLE_FILES.privateKey))).isFile();
  } catch {
    hasPrivateKey = false;
  }
  // Only the thing name is read back (to tell a bundle of another thing): the agent's own loader
  // checks the whole file, and a file it would refuse still names a thing here or names none.
  const config = agentConfigText === undefined ? undefined : parseJson(agentConfigText);
  const named = config?.ok && isJsonObject(config.value) ? ownValue(config.value, 'thingName') : undefined;
  const thingName = typeof named === 'string' ? named : undefined;
  return {
    dir,
    nonEmpty: entries.length > 0,
    hasPrivateKey,
    ...(certificatePem !== undefined ? { certificatePem } : {}),
    ...(caPem !== undefined ? { caPem } : {}),
    ...(agentConfigText !== undefined ? { agentConfigText } : {}),
    ...(unitText !== undefined ? { unitText } : {}),
    ...(thingName !== undefined ? { thingName } : {}),
  };
}

/**
 * Writes one bundle file atomically (temporary sibling created with its final mode, flushed,
 * renamed), so a private key is never readable by others, not even for a moment, and a crash
 * never leaves half a file. The directory is created with mode 0700.
 */
export async function writeBundleFile(dir: string, name: string, data: string, mode: number): Promise<void> {
  await makeOutDirectory(dir, BUNDLE_MODES.directory);
  const file = path.join(dir, name);
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await chmod(tmp, mode); // the umask may have narrowed or the file system widened it
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

export async function removeBundle(dir: string): Promise<boolean> {
  try {
    await stat(dir);
  } catch {
    return false;
  }
  await rm(dir, { recursive: true, force: true });
  return true;
}
