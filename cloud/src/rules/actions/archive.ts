import { randomUUID } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { type CompiledTemplate, serializeOutput } from '../../core/iotsql/index.js';
import { RuleActionError } from './errors.js';
import type { CompiledAction } from './types.js';

const AWS_NAME = 'S3Action';

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
        await mkdir(dirname(file), { recursive: true });
        await writeFile(temp, serializeOutput(output), { flag: 'wx' });
        await rename(temp, file);
      } catch (err) {
        await rm(temp, { force: true }).catch(() => undefined);
        const reason = err instanceof Error ? err.message : String(err);
        throw new RuleActionError(AWS_NAME, key, `Failed to put object ${key}: ${reason}`, err);
      }
    },
  };
}
