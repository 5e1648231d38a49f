import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ArtifactError, type ArtifactStore, createArtifactStore } from '../../src/artifacts/index.js';
import { removeDir, tempDir } from '../../src/testing/in-process-core.js';

/**
 * The object store on its own: what a crash leaves behind, metadata that no longer matches its
 * object, bodies over the cap or shorter than declared, and digests that do not match. In each
 * refused case the key keeps what it had and no temporary file stays.
 */

let dir: string;
let store: ArtifactStore;
const CAP = 64 * 1024;

const body = (...parts: (string | Buffer)[]) => Readable.from(parts.map((p) => Buffer.from(p)));

async function read(bucket: string, key: string): Promise<string> {
  const opened = await store.get(bucket, key);
  const chunks: Buffer[] = [];
  for await (const chunk of opened.stream()) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

async function refusal(promise: Promise<unknown>): Promise<ArtifactError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ArtifactError);
  return err as ArtifactError;
}

beforeEach(async () => {
  dir = tempDir('artifact-store');
  store = createArtifactStore({ dir, maxObjectBytes: CAP, now: () => 1_700_000_000_000 });
  await store.open();
});

afterEach(() => removeDir(dir));

describe('createArtifactStore', () => {
  it('removes uploads a crash left in .tmp when it opens', async () => {
    writeFileSync(join(dir, '.tmp', 'crashed.part'), 'half an upload');
    await store.open();
    expect(readdirSync(join(dir, '.tmp'))).toEqual([]);
  });

  it('keeps the content type, MD5 ETag and verified checksum beside the object', async () => {
    const info = await store.put('b-1', 'k', body('hello'), {
      contentType: 'application/gzip',
      declaredLength: 5,
      checksum: { algorithm: 'SHA256', expected: () => createHash('sha256').update('hello').digest('base64') },
    });
    expect(info.etag).toBe(`"${createHash('md5').update('hello').digest('hex')}"`);
    expect(await store.head('b-1', 'k')).toEqual(info);
    expect(info.checksum?.algorithm).toBe('SHA256');
    expect(info.lastModified).toBe(1_700_000_000_000);
  });

  it.each([
    ['SHA1', 'sha1'],
    ['SHA256', 'sha256'],
  ] as const)('verifies a %s checksum', async (algorithm, hash) => {
    const good = createHash(hash).update('abc').digest('base64');
    await store.put('b-1', 'ok', body('a', 'bc'), { checksum: { algorithm, expected: () => good } });
    const err = await refusal(store.put('b-1', 'ok', body('abd'), { checksum: { algorithm, expected: () => good } }));
    expect(err.s3Code).toBe('BadDigest');
    expect(await read('b-1', 'ok')).toBe('abc');
  });

  it('trusts the object over metadata that belongs to another file (a crash between the two renames)', async () => {
    await store.put('b-1', 'k', body('first'), { contentType: 'text/plain' });
    // Another file takes the key's place behind the store's back, as a crash after the object's
    // rename and before its metadata's would leave it.
    const file = join(dir, 'b-1', 'k');
    writeFileSync(`${file}.new`, 'second!');
    renameSync(`${file}.new`, file);
    const info = await store.head('b-1', 'k');
    expect(info.size).toBe(7);
    expect(info.contentType).toBe('binary/octet-stream');
    expect(info.etag).not.toBe(`"${createHash('md5').update('first').digest('hex')}"`);
    expect(await read('b-1', 'k')).toBe('second!');
  });

  it('ignores metadata that is not its JSON', async () => {
    await store.put('b-1', 'k', body('x'), { contentType: 'text/plain' });
    const metaDir = join(dir, '.meta', 'b-1');
    for (const name of readdirSync(metaDir)) writeFileSync(join(metaDir, name), '{"key":');
    expect((await store.head('b-1', 'k')).contentType).toBe('binary/octet-stream');
  });

  it.each([
    ['declared over the cap', [Buffer.alloc(16)], { declaredLength: CAP + 1 }, 'EntityTooLarge'],
    [
      'streamed over the cap, undeclared',
      Array.from({ length: 5 }, () => Buffer.alloc(16 * 1024)),
      {},
      'EntityTooLarge',
    ],
    ['shorter than declared', [Buffer.from('abc')], { declaredLength: 4 }, 'IncompleteBody'],
    ['longer than declared', [Buffer.from('abcde')], { declaredLength: 4 }, 'IncompleteBody'],
    ['not the signed SHA-256', [Buffer.from('abc')], { sha256Hex: 'a'.repeat(64) }, 'XAmzContentSHA256Mismatch'],
    [
      'without the trailer it promised',
      [Buffer.from('abc')],
      { checksum: { algorithm: 'CRC32', expected: () => undefined } },
      'InvalidRequest',
    ],
  ] as const)(
    'refuses a body %s (%s), keeping the old object and no temp file',
    async (_what, parts, options, code) => {
      await store.put('b-1', 'kept', body('old'));
      const err = await refusal(store.put('b-1', 'kept', Readable.from(parts), options));
      expect(err.s3Code).toBe(code);
      expect(await read('b-1', 'kept')).toBe('old');
      expect(readdirSync(join(dir, '.tmp'))).toEqual([]);
    },
  );

  it('takes an object of exactly the cap', async () => {
    await store.put('b-1', 'full', Readable.from([Buffer.alloc(CAP, 7)]), { declaredLength: CAP });
    expect((await store.head('b-1', 'full')).size).toBe(CAP);
  });

  it('keeps each key at <bucket>/<key> and prunes directories its deletes empty', async () => {
    await store.put('b-1', 'releases/1.0.0/agent.tgz', body('tgz'));
    await store.put('b-1', 'releases/1.0.0/manifest.json', body('{}'));
    expect(readFileSync(join(dir, 'b-1', 'releases', '1.0.0', 'agent.tgz'), 'utf8')).toBe('tgz');
    await store.delete('b-1', 'releases/1.0.0/agent.tgz');
    expect(existsSync(join(dir, 'b-1', 'releases', '1.0.0'))).toBe(true);
    await store.delete('b-1', 'releases/1.0.0/manifest.json');
    expect(existsSync(join(dir, 'b-1', 'releases'))).toBe(false);
    expect(existsSync(join(dir, 'b-1'))).toBe(true);
  });

  it('answers NoSuchBucket and NoSuchKey apart, and a directory is no object', async () => {
    await store.put('b-1', 'a/b', body('x'));
    expect((await refusal(store.head('b-2', 'k'))).s3Code).toBe('NoSuchBucket');
    expect((await refusal(store.head('b-1', 'a'))).s3Code).toBe('NoSuchKey');
    expect((await refusal(store.get('b-1', 'a'))).s3Code).toBe('NoSuchKey');
    expect((await refusal(store.head('b-1', 'a/b/c'))).s3Code).toBe('NoSuchKey');
    expect((await refusal(store.delete('b-2', 'k'))).s3Code).toBe('NoSuchBucket');
  });

  it('keeps a reader on the bytes it opened while the key is overwritten', async () => {
    await store.put('b-1', 'k', body('version one'));
    const opened = await store.get('b-1', 'k');
    await store.put('b-1', 'k', body('version two'));
    const chunks: Buffer[] = [];
    for await (const chunk of opened.stream()) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('version one');
    expect(await read('b-1', 'k')).toBe('version two');
  });

  it('refuses a key whose path would pass through an existing object', async () => {
    await store.put('b-1', 'a', body('x'));
    expect((await refusal(store.put('b-1', 'a/b', body('y')))).s3Code).toBe('InvalidArgument');
    mkdirSync(join(dir, 'b-1', 'dir', 'sub'), { recursive: true });
    writeFileSync(join(dir, 'b-1', 'dir', 'sub', 'f'), 'z');
    expect((await refusal(store.put('b-1', 'dir/sub', body('y')))).s3Code).toBe('InvalidArgument');
  });
});
