import { randomUUID } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { type CompiledTemplate, serializeOutput } from '../../core/iotsql/index.js';
import { RuleActionError } from './errors.js';
import type { CompiledAction } from './types.js';

const AWS_NAME = 'S3Action';
const MADE_DIRS_MAX = 50_000;

/**
 * Checks an object key for use as a relative path under the archive directory. S3 accepts
 * almost any key; locally a key must not climb out of the directory or name a directory.
 */
export function checkArchiveKey(key: string): string | undefined {
  if (key === '') return 'the key is empty';
  if (Buffer.byteLength(key) > 1024) return 'the key is longer than 1024 bytes';
  if (key.startsWith('/')) return 'the key starts with /';
  if (key.endsWith('/')) return 'the key ends with /';
  if (key.includes('\\') || key.includes('\u0000')) return 'the key contains \\ or NUL';
  for (const segment of key.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') return `the key has an empty, . or .. segment`;
  }
  return undefined;
}

/**
 * Archive action (S3 in AWS): the SELECT output, serialized, to a file at the rendered key under
 * `dir`. Written to a temporary file beside it and renamed, so a reader never sees half an object;
 * a key written twice keeps the last write, as S3 does.
 */
export function archiveAction(keyTemplate: CompiledTemplate, dir: string): CompiledAction {
  const root = resolve(dir);
  // Directories this action has made: one object per message under a per-thing prefix would
  // otherwise cost a mkdir per message (half of the action's time at 200 messages/s). Bounded;
  // a directory removed behind its back is made again on ENOENT.
  const made = new Set<string>();
  const ensureDir = async (d: string) => {
    if (made.has(d)) return;
    await mkdir(d, { recursive: true });
    if (made.size >= MADE_DIRS_MAX) made.clear();
    made.add(d);
  };
  const put = async (file: string, temp: string, body: string | Uint8Array) => {
    const d = dirname(file);
    await ensureDir(d);
    try {
      await writeFile(temp, body, { flag: 'wx' });
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw err;
      made.delete(d);
      await ensureDir(d);
      await writeFile(temp, body, { flag: 'wx' });
    }
    await rename(temp, file);
  };
  return {
    awsName: AWS_NAME,
    async run({ message, output, ctx }) {
      const key = keyTemplate.render(message, ctx);
      const invalid = checkArchiveKey(key);
      if (invalid !== undefined) {
        throw new RuleActionError(AWS_NAME, key, `Failed to put object: ${invalid} (key ${JSON.stringify(key)}).`);
      }
      const file = join(root, key);
      if (!file.startsWith(root + sep)) {
        throw new RuleActionError(AWS_NAME, key, 'Failed to put object: the key leaves the archive directory.');
      }
      const temp = `${file}.${randomUUID()}.tmp`;
      try {
        await put(file, temp, serializeOutput(output));
      } catch (err) {
        await rm(temp, { force: true }).catch(() => undefined);
        const reason = err instanceof Error ? err.message : String(err);
        throw new RuleActionError(AWS_NAME, key, `Failed to put object ${key}: ${reason}`, err);
      }
    },
  };
}
