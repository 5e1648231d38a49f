import { createHash } from 'node:crypto';
import type { Stats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { create } from 'tar';
import { InputError } from '../errors.js';

/**
 * Packs the deployable agent directory (the `pnpm deploy` output) into a gzipped tarball. The
 * same directory packs to the same bytes: entries in byte order of their paths, one fixed mtime,
 * no owner, group or inode (node-tar's `portable`, which also fixes gzip's header), so a rebuild
 * can be compared with the release it claims to be.
 */

/** Every entry's mtime: fixed, so the bytes depend on the contents only. */
export const RELEASE_MTIME = new Date('2000-01-01T00:00:00Z');

export interface PackedTarball {
  /** The gzip bytes' SHA-256, hex. */
  readonly sha256: string;
  readonly size: number;
  /** Entries packed (files, directories, links). */
  readonly entries: number;
}

/**
 * The directory's entries, relative with `/`, sorted, each directory before its contents. A
 * symbolic link must stay inside the directory (pnpm's node_modules links do): one that points out
 * of it, or is absolute, would dangle on the device or reach outside the release. Sockets, FIFOs
 * and devices have no place in a release.
 */
export async function listReleaseEntries(root: string): Promise<string[]> {
  return [...(await statReleaseEntries(root)).keys()];
}

/** {@link listReleaseEntries} with each entry's lstat. */
async function statReleaseEntries(root: string): Promise<Map<string, Stats>> {
  const out = new Map<string, Stats>();
  async function walk(rel: string): Promise<void> {
    const names = (await readdir(path.join(root, rel))).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const name of names) {
      const entry = rel === '' ? name : `${rel}/${name}`;
      const full = path.join(root, entry);
      const st = await lstat(full);
      if (st.isSymbolicLink()) {
        const target = await readlink(full);
        const resolved = path.resolve(path.dirname(full), target);
        const inside = path.relative(root, resolved);
        if (path.isAbsolute(target) || inside.startsWith('..') || path.isAbsolute(inside)) {
          throw new InputError(`${entry} links outside the release directory (${target})`, {
            hint: 'pack a self-contained directory: the `pnpm deploy` output of @pifleet/device-agent',
          });
        }
        out.set(entry, st);
      } else if (st.isDirectory()) {
        out.set(entry, st);
        await walk(entry);
      } else if (st.isFile()) {
        out.set(entry, st);
      } else {
        throw new InputError(`${entry} is not a file, directory or symbolic link`, {
          hint: 'a release holds files only',
        });
      }
    }
  }
  await walk('');
  return out;
}

/**
 * node-tar's stat cache (absolute path → stats), each stat saying the file has one link: every
 * hard-linked file is packed as a regular file. `pnpm deploy` hard-links identical files (the
 * store's deduplication), and node-tar defers a file with more than one link until the file it
 * links to is packed: on the real deploy output (4,548 entries) the pack stopped for good after
 * 429 of them, with no error, where links pointed into the store outside the directory. A file in
 * every place it is needed also unpacks with no link at all. The cache also spares a second lstat.
 */
function singleLinked(stats: ReadonlyMap<string, Stats>, root: string): Map<string, Stats> {
  const out = new Map<string, Stats>();
  for (const [entry, st] of stats) {
    const one = Object.assign(Object.create(Object.getPrototypeOf(st) as object) as Stats, st, { nlink: 1 });
    out.set(path.resolve(root, entry), one);
  }
  return out;
}

/**
 * The tarball of `root`, as the chunks of its gzip bytes (for {@link writeNewFile}); `digest()`
 * gives their SHA-256 and size once they have all been read.
 */
export async function packRelease(root: string): Promise<{
  readonly chunks: AsyncIterable<Uint8Array>;
  readonly entries: number;
  digest(): Omit<PackedTarball, 'entries'>;
}> {
  const stats = await statReleaseEntries(root);
  const entries = [...stats.keys()];
  if (entries.length === 0) throw new InputError(`${root} is empty`, { hint: 'pack the `pnpm deploy` output' });
  const pack = create(
    {
      cwd: root,
      gzip: { level: 9 },
      portable: true,
      mtime: RELEASE_MTIME,
      noDirRecurse: true,
      strict: true,
      statCache: singleLinked(stats, root),
    },
    entries,
  );
  const hash = createHash('sha256');
  let size = 0;
  let sha256: string | undefined;
  async function* chunks(): AsyncGenerator<Uint8Array> {
    for await (const chunk of pack as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
      yield chunk;
    }
    sha256 = hash.digest('hex');
  }
  return {
    chunks: chunks(),
    entries: entries.length,
    digest() {
      if (sha256 === undefined) throw new Error('the tarball has not been read to its end');
      return { sha256, size };
    },
  };
}
