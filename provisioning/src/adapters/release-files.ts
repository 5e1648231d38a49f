import { randomBytes } from 'node:crypto';
import { chmod, link, open, rm } from 'node:fs/promises';
import path from 'node:path';
import { cannotWrite, makeOutDirectory } from './out-directory.js';

/**
 * Files of signing keys and releases. A key or a release is never overwritten: a signing key
 * replaced by accident orphans every device configured with its public key, and a release file
 * replaced after its manifest was signed no longer matches it.
 */

/** Thrown by {@link writeNewFile} when the file exists; nothing was written. */
export class FileExistsError extends Error {
  override name = 'FileExistsError';
  constructor(readonly file: string) {
    super(`${file} exists`);
  }
}

/**
 * Writes a file that must not exist yet, with its final mode from the start: a temporary sibling
 * is created (mode `mode`, flushed) and hard-linked to the name. `link` fails when the name exists,
 * so two runs at once cannot both write it, a crash never leaves half a file under the name, and a
 * private key is never readable by others, not even for a moment. The directory is created with
 * `dirMode` when missing. `data` may be a stream of chunks (a tarball as it is packed).
 */
export async function writeNewFile(
  file: string,
  data: string | Uint8Array | AsyncIterable<Uint8Array>,
  mode: number,
  dirMode = 0o700,
): Promise<void> {
  const dir = path.dirname(file);
  await makeOutDirectory(dir, dirMode);
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx', mode).catch((err: unknown) => {
    throw cannotWrite(dir, err);
  });
  try {
    try {
      if (typeof data === 'string' || data instanceof Uint8Array) await handle.writeFile(data);
      else for await (const chunk of data) await handle.write(chunk);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await chmod(tmp, mode); // the umask may have narrowed it
    await link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new FileExistsError(file);
    throw err;
  } finally {
    await rm(tmp, { force: true });
  }
}
