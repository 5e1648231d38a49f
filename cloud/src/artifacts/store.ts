import { createHash, type Hash, randomUUID } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, rmdir, stat } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { ArtifactError } from './errors.js';
import { checkBucketName, checkObjectKey } from './names.js';

/**
 * The local core's object store (Amazon S3 in AWS): each object is a file at `<dir>/<bucket>/<key>`,
 * so a release can be inspected where it lies. A body streams to a temporary file under
 * `<dir>/.tmp` (bucket names never start with a dot), is hashed and counted on the way, flushed,
 * and renamed into place only when it is whole and its digests match: a reader, a failed upload or
 * a crash never leaves half an object under a key, and a key written twice keeps the last write, as
 * S3 does. What S3 keeps beside the bytes (ETag, content type, checksum) is a small JSON file under
 * `<dir>/.meta/<bucket>/<sha256 of key>.json`, tied to the object's inode: when the two disagree
 * (a crash between the two renames, two writers racing), the object wins and the metadata is
 * rebuilt from the file.
 */

export type ChecksumAlgorithm = 'CRC32' | 'SHA1' | 'SHA256';

export interface ObjectInfo {
  readonly bucket: string;
  readonly key: string;
  readonly size: number;
  /** Quoted, as S3 sends it: the MD5 of the bytes for an object this store wrote. */
  readonly etag: string;
  readonly contentType: string;
  /** Milliseconds since the epoch. */
  readonly lastModified: number;
  /** The checksum the uploader sent and the store verified, base64 as S3 writes it. */
  readonly checksum?: { readonly algorithm: ChecksumAlgorithm; readonly value: string };
}

export interface PutOptions {
  /** Default `binary/octet-stream`, S3's. */
  readonly contentType?: string;
  /** The length the sender declared: a body that ends short or runs long is refused (IncompleteBody). */
  readonly declaredLength?: number;
  /** Hex SHA-256 of the body that the request's signature covers (`x-amz-content-sha256`). */
  readonly sha256Hex?: string;
  /** A checksum to verify; `expected` is read once the body ended (a trailer arrives after it). */
  readonly checksum?: { readonly algorithm: ChecksumAlgorithm; readonly expected: () => string | undefined };
}

export interface ByteRange {
  /** First byte, inclusive. */
  readonly start: number;
  /** Last byte, inclusive. */
  readonly end: number;
}

export interface OpenedObject {
  readonly info: ObjectInfo;
  /** The bytes (of `range` when given); the file stays readable even if the key is overwritten meanwhile. */
  stream(range?: ByteRange): Readable;
  close(): Promise<void>;
}

export interface ArtifactStore {
  /** Creates the directories and removes uploads a crash left behind. */
  open(): Promise<void>;
  createBucket(bucket: string): Promise<void>;
  bucketExists(bucket: string): Promise<boolean>;
  put(bucket: string, key: string, body: Readable, options?: PutOptions): Promise<ObjectInfo>;
  head(bucket: string, key: string): Promise<ObjectInfo>;
  get(bucket: string, key: string): Promise<OpenedObject>;
  /** Removes the object; a missing key is no error (S3's DeleteObject answers 204 either way). */
  delete(bucket: string, key: string): Promise<void>;
}

export interface ArtifactStoreOptions {
  readonly dir: string;
  /** Largest object accepted, in bytes. */
  readonly maxObjectBytes: number;
  /** Milliseconds since the epoch (Last-Modified). */
  readonly now: () => number;
}

/**
 * Default object size cap: an agent release is a few tens of MB (Node modules included); a
 * quarter GiB leaves room without letting one upload fill a small disk. S3's own single-PUT
 * limit is 5 GB.
 */
export const DEFAULT_MAX_OBJECT_BYTES = 256 * 1024 * 1024;

const DEFAULT_CONTENT_TYPE = 'binary/octet-stream';

interface StoredMeta {
  readonly key: string;
  readonly ino: number;
  readonly size: number;
  readonly etag: string;
  readonly contentType: string;
  readonly lastModified: number;
  readonly checksum?: { readonly algorithm: ChecksumAlgorithm; readonly value: string };
}

const isErrno = (err: unknown, ...codes: string[]): boolean =>
  codes.includes((err as NodeJS.ErrnoException | undefined)?.code ?? '');

const ALGORITHMS: readonly ChecksumAlgorithm[] = ['CRC32', 'SHA1', 'SHA256'];

/** Metadata read back from disk: trusted only field by field, like any file a person may edit. */
function parseMeta(text: string): StoredMeta | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const m = value as Record<string, unknown>;
  if (
    typeof m.key !== 'string' ||
    typeof m.ino !== 'number' ||
    typeof m.size !== 'number' ||
    typeof m.etag !== 'string' ||
    typeof m.contentType !== 'string' ||
    typeof m.lastModified !== 'number'
  ) {
    return undefined;
  }
  const c = m.checksum as Record<string, unknown> | undefined;
  const checksum =
    typeof c === 'object' &&
    c !== null &&
    ALGORITHMS.includes(c.algorithm as ChecksumAlgorithm) &&
    typeof c.value === 'string'
      ? { algorithm: c.algorithm as ChecksumAlgorithm, value: c.value }
      : undefined;
  return {
    key: m.key,
    ino: m.ino,
    size: m.size,
    etag: m.etag,
    contentType: m.contentType,
    lastModified: m.lastModified,
    ...(checksum ? { checksum } : {}),
  };
}

/** The running digests of one upload: MD5 for the ETag, and what the request asks to verify. */
class Digests {
  readonly md5: Hash = createHash('md5');
  readonly sha256: Hash | undefined;
  readonly sha1: Hash | undefined;
  crc: number | undefined;
  size = 0;

  constructor(options: PutOptions) {
    const algorithm = options.checksum?.algorithm;
    this.sha256 = options.sha256Hex !== undefined || algorithm === 'SHA256' ? createHash('sha256') : undefined;
    this.sha1 = algorithm === 'SHA1' ? createHash('sha1') : undefined;
    this.crc = algorithm === 'CRC32' ? 0 : undefined;
  }

  update(chunk: Buffer): void {
    this.size += chunk.length;
    this.md5.update(chunk);
    this.sha256?.update(chunk);
    this.sha1?.update(chunk);
    if (this.crc !== undefined) this.crc = crc32(chunk, this.crc);
  }
}

function checksumOf(d: Digests, algorithm: ChecksumAlgorithm, sha256: Buffer | undefined): string {
  switch (algorithm) {
    case 'CRC32': {
      const b = Buffer.alloc(4);
      b.writeUInt32BE((d.crc ?? 0) >>> 0);
      return b.toString('base64');
    }
    case 'SHA1':
      return (d.sha1 as Hash).digest('base64');
    case 'SHA256':
      return (sha256 as Buffer).toString('base64');
  }
}

export function createArtifactStore(options: ArtifactStoreOptions): ArtifactStore {
  const root = resolve(options.dir);
  const tmpDir = join(root, '.tmp');
  const metaRoot = join(root, '.meta');

  const bucketDir = (bucket: string) => join(root, bucket);
  const metaFile = (bucket: string, key: string) =>
    join(metaRoot, bucket, `${createHash('sha256').update(key).digest('hex')}.json`);

  function objectFile(bucket: string, key: string): string {
    checkBucketName(bucket);
    checkObjectKey(key);
    const base = bucketDir(bucket);
    const file = join(base, key);
    // checkObjectKey already refuses `..`; this is the belt to its braces.
    if (!file.startsWith(base + sep)) {
      throw new ArtifactError('InvalidArgument', 'The key leaves its bucket.', { fields: { ArgumentName: 'key' } });
    }
    return file;
  }

  async function bucketExists(bucket: string): Promise<boolean> {
    checkBucketName(bucket);
    try {
      return (await stat(bucketDir(bucket))).isDirectory();
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
  }

  async function missing(bucket: string, key: string): Promise<ArtifactError> {
    if (!(await bucketExists(bucket))) {
      return new ArtifactError('NoSuchBucket', 'The specified bucket does not exist', {
        fields: { BucketName: bucket },
      });
    }
    return new ArtifactError('NoSuchKey', 'The specified key does not exist.', { fields: { Key: key } });
  }

  async function readMeta(bucket: string, key: string, ino: number, size: number, mtime: number) {
    let meta: StoredMeta | undefined;
    try {
      meta = parseMeta(await readFile(metaFile(bucket, key), 'utf8'));
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
    }
    if (meta !== undefined && meta.ino === ino && meta.size === size && meta.key === key) return meta;
    // No metadata for this very file: what S3 would say of an object uploaded without any, and an
    // ETag that still changes whenever the bytes are replaced.
    return {
      key,
      ino,
      size,
      etag: `"${createHash('md5').update(`${ino}:${size}:${mtime}`).digest('hex')}"`,
      contentType: DEFAULT_CONTENT_TYPE,
      lastModified: mtime,
    } satisfies StoredMeta;
  }

  const toInfo = (bucket: string, meta: StoredMeta): ObjectInfo => ({
    bucket,
    key: meta.key,
    size: meta.size,
    etag: meta.etag,
    contentType: meta.contentType,
    lastModified: meta.lastModified,
    ...(meta.checksum ? { checksum: meta.checksum } : {}),
  });

  async function writeMeta(bucket: string, meta: StoredMeta): Promise<void> {
    const file = metaFile(bucket, meta.key);
    await mkdir(dirname(file), { recursive: true });
    const temp = join(tmpDir, `${randomUUID()}.meta`);
    await writeWhole(temp, JSON.stringify(meta));
    await rename(temp, file);
  }

  async function writeWhole(file: string, text: string): Promise<void> {
    const handle = await open(file, 'wx');
    try {
      await handle.writeFile(text);
    } finally {
      await handle.close();
    }
  }

  /** Streams the body into `temp`, hashing and counting; throws (leaving `temp` to the caller) on any failure. */
  async function receive(temp: string, body: Readable, digests: Digests): Promise<number> {
    const handle = await open(temp, 'wx');
    try {
      // Not destroyed when the loop throws: the request stays open for S3's error answer.
      for await (const chunk of body.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
        if (digests.size + chunk.length > options.maxObjectBytes) {
          throw new ArtifactError('EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size', {
            fields: { MaxSizeAllowed: String(options.maxObjectBytes) },
          });
        }
        digests.update(chunk);
        await handle.write(chunk);
      }
      // Durable before it is renamed into place: an acknowledged upload survives a power cut.
      await handle.sync();
      return (await handle.stat()).ino;
    } finally {
      await handle.close();
    }
  }

  /** Checks the finished upload against what the request declared; returns the verified checksum. */
  function verify(digests: Digests, put: PutOptions): ObjectInfo['checksum'] {
    if (put.declaredLength !== undefined && digests.size !== put.declaredLength) {
      throw new ArtifactError(
        'IncompleteBody',
        'You did not provide the number of bytes specified by the Content-Length HTTP header.',
        { fields: { ExpectedLength: String(put.declaredLength), ReceivedLength: String(digests.size) } },
      );
    }
    const sha256 = digests.sha256?.digest();
    if (put.sha256Hex !== undefined && sha256?.toString('hex') !== put.sha256Hex) {
      throw new ArtifactError(
        'XAmzContentSHA256Mismatch',
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
        {
          fields: {
            ClientComputedContentSHA256: put.sha256Hex,
            S3ComputedContentSHA256: sha256?.toString('hex') ?? '',
          },
        },
      );
    }
    if (put.checksum === undefined) return undefined;
    const { algorithm } = put.checksum;
    const expected = put.checksum.expected();
    if (expected === undefined) {
      throw new ArtifactError('InvalidRequest', `The x-amz-checksum-${algorithm.toLowerCase()} value is missing.`);
    }
    const value = checksumOf(digests, algorithm, sha256);
    if (value !== expected) {
      throw new ArtifactError('BadDigest', `The ${algorithm} you specified did not match the calculated checksum.`);
    }
    return { algorithm, value };
  }

  async function place(temp: string, file: string, bucket: string, key: string): Promise<void> {
    try {
      await mkdir(dirname(file), { recursive: true });
      await rename(temp, file);
    } catch (err) {
      // `a` and `a/b` cannot both be files: S3 keeps both; locally the second one is refused.
      if (isErrno(err, 'ENOTDIR', 'EEXIST', 'EISDIR', 'ENOTEMPTY')) {
        throw new ArtifactError(
          'InvalidArgument',
          `The local artifact store cannot keep ${JSON.stringify(key)} beside an object whose key is a prefix of it, or under which other keys exist.`,
          { cause: err, fields: { ArgumentName: 'key', ArgumentValue: key, BucketName: bucket } },
        );
      }
      throw err;
    }
  }

  /** Removes the empty directories a deleted key leaves, up to its bucket's. */
  async function prune(base: string, from: string): Promise<void> {
    let d = from;
    while (d.startsWith(base + sep)) {
      try {
        await rmdir(d);
      } catch {
        return;
      }
      d = dirname(d);
    }
  }

  return {
    async open() {
      await mkdir(tmpDir, { recursive: true });
      await mkdir(metaRoot, { recursive: true });
      for (const name of await readdir(tmpDir)) await rm(join(tmpDir, name), { force: true });
    },

    async createBucket(bucket) {
      checkBucketName(bucket);
      await mkdir(bucketDir(bucket), { recursive: true });
    },

    bucketExists,

    async put(bucket, key, body, put = {}) {
      const file = objectFile(bucket, key);
      if (put.declaredLength !== undefined && put.declaredLength > options.maxObjectBytes) {
        throw new ArtifactError('EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size', {
          fields: { ProposedSize: String(put.declaredLength), MaxSizeAllowed: String(options.maxObjectBytes) },
        });
      }
      const temp = join(tmpDir, `${randomUUID()}.part`);
      const digests = new Digests(put);
      try {
        const ino = await receive(temp, body, digests);
        const checksum = verify(digests, put);
        // The bucket springs into being on its first object (the stack's bucket already exists in AWS).
        await mkdir(bucketDir(bucket), { recursive: true });
        await place(temp, file, bucket, key);
        const meta: StoredMeta = {
          key,
          ino,
          size: digests.size,
          etag: `"${digests.md5.digest('hex')}"`,
          contentType: put.contentType ?? DEFAULT_CONTENT_TYPE,
          lastModified: options.now(),
          ...(checksum ? { checksum } : {}),
        };
        await writeMeta(bucket, meta);
        return toInfo(bucket, meta);
      } finally {
        await rm(temp, { force: true });
      }
    },

    async head(bucket, key) {
      const file = objectFile(bucket, key);
      let st: Awaited<ReturnType<typeof stat>>;
      try {
        st = await stat(file);
      } catch (err) {
        if (isErrno(err, 'ENOENT', 'ENOTDIR')) throw await missing(bucket, key);
        throw err;
      }
      if (!st.isFile()) throw await missing(bucket, key);
      return toInfo(bucket, await readMeta(bucket, key, st.ino, st.size, st.mtimeMs));
    },

    async get(bucket, key) {
      const file = objectFile(bucket, key);
      let handle: Awaited<ReturnType<typeof open>>;
      try {
        handle = await open(file, 'r');
      } catch (err) {
        if (isErrno(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) throw await missing(bucket, key);
        throw err;
      }
      try {
        const st = await handle.stat();
        if (!st.isFile()) throw await missing(bucket, key);
        const info = toInfo(bucket, await readMeta(bucket, key, st.ino, st.size, st.mtimeMs));
        let streamed = false;
        return {
          info,
          stream(range) {
            streamed = true;
            // The stream owns the handle from here and closes it when it ends or is destroyed.
            return handle.createReadStream(range ? { start: range.start, end: range.end } : {});
          },
          async close() {
            if (!streamed) await handle.close();
          },
        };
      } catch (err) {
        await handle.close();
        throw err;
      }
    },

    async delete(bucket, key) {
      const file = objectFile(bucket, key);
      if (!(await bucketExists(bucket))) throw await missing(bucket, key);
      try {
        if ((await stat(file)).isFile()) await rm(file);
      } catch (err) {
        if (!isErrno(err, 'ENOENT', 'ENOTDIR')) throw err;
      }
      await rm(metaFile(bucket, key), { force: true });
      await prune(bucketDir(bucket), dirname(file));
    },
  };
}
