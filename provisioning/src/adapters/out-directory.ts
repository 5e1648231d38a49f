import { EXIT, errnoOf, makeDirectory } from '@pifleet/protocol';
import { CliError } from '../errors.js';

/**
 * The directories the CLI writes its output into (`--out` of keys, releases and device bundles):
 * made level by level (makeDirectory: Node's own mkdir -p never settles under /proc), and one that
 * cannot be made or written is the CLI's one line and hint instead of Node's bare error (exit 1).
 */

/**
 * Where output cannot be written (a path through a file, a read-only or pseudo file system, no
 * permission): permission problems exit 77, the rest 65. Anything that is not a file-system error
 * comes back unchanged.
 */
export function cannotWrite(dir: string, err: unknown): unknown {
  const code = errnoOf(err);
  if (code === undefined) return err;
  const permission = code === 'EACCES' || code === 'EPERM' || code === 'EROFS';
  return new CliError(
    'OUT_DIR',
    `cannot write into ${dir} (${code})`,
    permission ? EXIT.noPermission : EXIT.dataError,
    {
      hint: 'choose another --out directory, one this user can create and write',
      cause: err,
    },
  );
}

/** Makes `dir` (mkdir -p with `mode`), or throws {@link cannotWrite}'s error. */
export async function makeOutDirectory(dir: string, mode: number): Promise<void> {
  await makeDirectory(dir, mode).catch((err: unknown) => {
    throw cannotWrite(dir, err);
  });
}
