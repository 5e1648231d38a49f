import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';

/** The errno code of a file-system error (`ENOENT`, …), or undefined for anything else. */
export const errnoOf = (err: unknown): string | undefined => {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code) ? code : undefined;
};

/** An EEXIST from mkdir is fine when what exists is a directory; a file there is the error. */
async function existing(dir: string, err: unknown): Promise<void> {
  const st = await stat(dir).catch(() => undefined);
  if (st?.isDirectory() !== true) throw err;
}

/**
 * `mkdir -p` (each directory it makes gets `mode`, less the umask), refusing where Node's own never
 * returns: `mkdir(dir, { recursive: true })` loops at full CPU when a child's mkdir answers ENOENT
 * although its parent exists, as procfs does (`--out /proc/x` never settled, measured on Node 24,
 * the promise and the sync form alike). Here each level is made in turn, and an ENOENT once the
 * parent exists is the answer.
 */
export async function makeDirectory(dir: string, mode: number): Promise<void> {
  try {
    await mkdir(dir, { mode });
    return;
  } catch (err) {
    if (errnoOf(err) === 'EEXIST') return existing(dir, err);
    if (errnoOf(err) !== 'ENOENT' || path.dirname(dir) === dir) throw err;
  }
  await makeDirectory(path.dirname(dir), mode);
  try {
    await mkdir(dir, { mode });
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST') throw err;
    await existing(dir, err);
  }
}
