import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { CreateThingCommand, DescribeThingCommand } from '@aws-sdk/client-iot';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localCorePaths } from '../../src/app/local-core.js';
import { presignIdentity } from '../../src/artifacts/index.js';
import { type InProcessCore, localProfileCredentials } from '../../src/testing/in-process-core.js';
import { coreForFile } from '../http/harness.js';

/**
 * The local core's S3 subset driven by the real `@aws-sdk/client-s3` (path-style, the core's URL
 * as endpoint), with its default flexible checksums: a Buffer body goes with its SHA-256 signed and
 * a CRC32 header; a stream body with a known length goes aws-chunked with the CRC32 as a trailer.
 */

let dir: string;
let run: InProcessCore;
let s3: S3Client;
const core = coreForFile('artifacts-s3', (started, startedDir) => {
  run = started;
  dir = startedDir;
});

function s3Client(credentials: S3ClientConfig['credentials'] = localProfileCredentials(run.info)): S3Client {
  return new S3Client({
    region: run.info.region,
    endpoint: run.info.http,
    forcePathStyle: true,
    credentials,
    maxAttempts: 1,
  });
}

async function rejected(send: Promise<unknown>): Promise<S3ServiceException> {
  const err = await send.then(
    () => new Error('the request succeeded'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(S3ServiceException);
  return err as S3ServiceException;
}

async function bodyOf(bucket: string, key: string): Promise<Buffer> {
  const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await (out.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
}

const md5 = (b: Uint8Array) => `"${createHash('md5').update(b).digest('hex')}"`;

beforeAll(() => {
  s3 = s3Client();
});

afterAll(() => {
  s3?.destroy();
});

describe('PutObject, GetObject, HeadObject, DeleteObject', () => {
  it('stores a Buffer body under a key with slashes, spaces and a plus, and reads it back', async () => {
    const body = Buffer.from('release bytes \u00e9\n');
    const key = 'releases/1.2.3/agent release+x.tar.gz';
    const put = await s3.send(
      new PutObjectCommand({ Bucket: 'pifleet-artifacts', Key: key, Body: body, ContentType: 'application/gzip' }),
    );
    expect(put.ETag).toBe(md5(body));
    expect(await bodyOf('pifleet-artifacts', key)).toEqual(body);

    const head = await s3.send(new HeadObjectCommand({ Bucket: 'pifleet-artifacts', Key: key }));
    expect(head.ContentLength).toBe(body.length);
    expect(head.ContentType).toBe('application/gzip');
    expect(head.ETag).toBe(md5(body));
    // The object is a file at <bucket>/<key> in the data dir.
    const file = join(localCorePaths(dir).artifactsDir, 'pifleet-artifacts', key);
    expect(readFileSync(file)).toEqual(body);
  });

  it('stores a stream body (aws-chunked with a CRC32 trailer) larger than the 1 MiB API body limit', async () => {
    const chunk = Buffer.alloc(256 * 1024);
    for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 31) & 0xff;
    const parts = Array.from({ length: 24 }, (_, i) => Buffer.from(chunk.map((b) => b ^ i)));
    const whole = Buffer.concat(parts);
    await s3.send(
      new PutObjectCommand({
        Bucket: 'pifleet-artifacts',
        Key: 'big/stream.bin',
        Body: Readable.from(parts),
        ContentLength: whole.length,
      }),
    );
    const got = await bodyOf('pifleet-artifacts', 'big/stream.bin');
    expect(got.length).toBe(6 * 1024 * 1024);
    expect(got.equals(whole)).toBe(true);
  });

  it('stores and reads an empty object', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'empty', Body: Buffer.alloc(0) }));
    expect((await bodyOf('pifleet-artifacts', 'empty')).length).toBe(0);
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'empty' }));
    expect(head.ContentLength).toBe(0);
  });

  it('overwrites a key with the last write', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'twice', Body: 'first' }));
    await s3.send(new PutObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'twice', Body: 'second' }));
    expect((await bodyOf('pifleet-artifacts', 'twice')).toString()).toBe('second');
  });

  it('serves a byte range', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'ranged', Body: '0123456789' }));
    const out = await s3.send(new GetObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'ranged', Range: 'bytes=2-5' }));
    expect(out.ContentRange).toBe('bytes 2-5/10');
    expect(await out.Body?.transformToString()).toBe('2345');
  });

  it('deletes an object (and a missing key is no error), leaving no empty directories', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'gone/deep/x', Body: 'x' }));
    await s3.send(new DeleteObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'gone/deep/x' }));
    await s3.send(new DeleteObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'gone/deep/x' }));
    const err = await rejected(s3.send(new GetObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'gone/deep/x' })));
    expect(err).toBeInstanceOf(NoSuchKey);
    expect(existsSync(join(localCorePaths(dir).artifactsDir, 'pifleet-artifacts', 'gone'))).toBe(false);
    // Now `gone` can be an object itself.
    await s3.send(new PutObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'gone', Body: 'y' }));
  });

  it('creates a bucket with CreateBucket and answers HeadBucket', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'made-by-create' }));
    const head = await s3.send(new HeadBucketCommand({ Bucket: 'made-by-create' }));
    expect(head.$metadata.httpStatusCode).toBe(200);
    const err = await rejected(s3.send(new HeadBucketCommand({ Bucket: 'never-made' })));
    expect(err.$metadata.httpStatusCode).toBe(404);
  });
});

describe('refusals with S3 error codes, nothing stored', () => {
  it.each([
    ['a missing key', 'pifleet-artifacts', 'missing', 'NoSuchKey', 404],
    ['a missing bucket', 'no-such-bucket', 'x', 'NoSuchBucket', 404],
  ])('GetObject of %s: %s', async (_what, bucket, key, code, status) => {
    const err = await rejected(s3.send(new GetObjectCommand({ Bucket: bucket, Key: key })));
    expect(err.name).toBe(code);
    expect(err.$metadata.httpStatusCode).toBe(status);
    if (code === 'NoSuchKey') expect(err).toBeInstanceOf(NoSuchKey);
  });

  it('HeadObject of a missing key is NotFound (a HEAD has no body to name the code)', async () => {
    const err = await rejected(s3.send(new HeadObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'missing' })));
    expect(err.name).toBe('NotFound');
    expect(err.$metadata.httpStatusCode).toBe(404);
  });

  it.each([
    ['a .. segment', 'releases/../../escape', 'InvalidArgument'],
    ['a . segment', 'releases/./x', 'InvalidArgument'],
    ['a leading / (an absolute path)', '/etc/passwd', 'InvalidArgument'],
    ['an empty segment', 'releases//x', 'InvalidArgument'],
    ['a trailing /', 'releases/', 'InvalidArgument'],
    ['a NUL', 'a\u0000b', 'InvalidArgument'],
    ['a backslash', 'a\\..\\b', 'InvalidArgument'],
    ['a 256-byte segment', `a/${'s'.repeat(256)}`, 'InvalidArgument'],
    ['1025 bytes', 'k'.repeat(1025), 'KeyTooLongError'],
  ])('PutObject of a key with %s: %s', async (_what, key, code) => {
    const err = await rejected(s3.send(new PutObjectCommand({ Bucket: 'pifleet-artifacts', Key: key, Body: 'x' })));
    expect(err.name).toBe(code);
    expect(err.$metadata.httpStatusCode).toBe(400);
    expect(existsSync(join(localCorePaths(dir).artifactsDir, 'escape'))).toBe(false);
  });

  it('takes a 1024-byte key', async () => {
    const key = Array.from({ length: 5 }, (_, i) => String(i).repeat(204)).join('/');
    expect(Buffer.byteLength(key)).toBe(1024);
    await s3.send(new PutObjectCommand({ Bucket: 'pifleet-artifacts', Key: key, Body: 'x' }));
    expect((await bodyOf('pifleet-artifacts', key)).toString()).toBe('x');
  });

  it('refuses a key under an existing object (the local store keeps files at <bucket>/<key>)', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'file', Body: 'x' }));
    const err = await rejected(
      s3.send(new PutObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'file/under', Body: 'y' })),
    );
    expect(err.name).toBe('InvalidArgument');
    expect((await bodyOf('pifleet-artifacts', 'file')).toString()).toBe('x');
  });

  it('refuses a bad bucket name', async () => {
    const err = await rejected(s3.send(new PutObjectCommand({ Bucket: 'Bad_Bucket', Key: 'k', Body: 'x' })));
    expect(err.name).toBe('InvalidBucketName');
    expect(err.$metadata.httpStatusCode).toBe(400);
  });

  it('refuses a body whose CRC32 does not match, keeping the object it would replace', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'kept', Body: 'original' }));
    const err = await rejected(
      s3.send(
        new PutObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'kept', Body: 'changed', ChecksumCRC32: 'AAAAAA==' }),
      ),
    );
    expect(err.name).toBe('BadDigest');
    expect((await bodyOf('pifleet-artifacts', 'kept')).toString()).toBe('original');
    expect(readdirSync(join(localCorePaths(dir).artifactsDir, '.tmp'))).toEqual([]);
  });

  it('refuses a body changed after it was signed (x-amz-content-sha256)', async () => {
    const tampering = s3Client();
    // After the signature: same length, other bytes.
    type Args = { request: { body: unknown } };
    const tamper = (next: (args: Args) => Promise<unknown>) => async (args: Args) => {
      args.request.body = Buffer.from('evil!');
      return next(args);
    };
    tampering.middlewareStack.addRelativeTo(tamper as unknown as Parameters<S3Client['middlewareStack']['add']>[0], {
      relation: 'after',
      toMiddleware: 'httpSigningMiddleware',
      name: 'tamper',
      override: true,
    });
    try {
      const err = await rejected(
        tampering.send(new PutObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'tampered', Body: 'good!' })),
      );
      expect(err.name).toBe('XAmzContentSHA256Mismatch');
      expect(err.$metadata.httpStatusCode).toBe(400);
      const missing = await rejected(s3.send(new HeadObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'tampered' })));
      expect(missing.name).toBe('NotFound');
    } finally {
      tampering.destroy();
    }
  });

  it.each([
    ['a wrong secret', 'right-key', 'SignatureDoesNotMatch', 403],
    ['an unknown access key', 'AKIAUNKNOWNUNKNOWN00', 'InvalidAccessKeyId', 403],
  ])('refuses %s', async (_what, which, code, status) => {
    const real = await localProfileCredentials(run.info)();
    const credentials =
      which === 'right-key'
        ? { accessKeyId: real.accessKeyId, secretAccessKey: `${real.secretAccessKey}x` }
        : { accessKeyId: which, secretAccessKey: real.secretAccessKey };
    const client = s3Client(credentials);
    try {
      const put = await rejected(
        client.send(new PutObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'nope', Body: 'x' })),
      );
      expect(put.name).toBe(code);
      expect(put.$metadata.httpStatusCode).toBe(status);
      const get = await rejected(client.send(new GetObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'twice' })));
      expect(get.name).toBe(code);
    } finally {
      client.destroy();
    }
    const missing = await rejected(s3.send(new HeadObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'nope' })));
    expect(missing.name).toBe('NotFound');
  });
});

describe('the presign identity (the stand-in for the role IoT assumes)', () => {
  it('may read objects and do nothing else, like a role with s3:GetObject only', async () => {
    const own = await localProfileCredentials(run.info)();
    const reader = s3Client(presignIdentity(own.secretAccessKey));
    try {
      expect(
        (await reader.send(new HeadObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'twice' }))).ContentLength,
      ).toBe(6);
      for (const send of [
        () => reader.send(new PutObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'by-reader', Body: 'x' })),
        () => reader.send(new DeleteObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'twice' })),
        () => reader.send(new CreateBucketCommand({ Bucket: 'by-reader' })),
      ]) {
        const err = await rejected(send());
        expect(err.name).toBe('AccessDenied');
        expect(err.$metadata.httpStatusCode).toBe(403);
      }
    } finally {
      reader.destroy();
    }
    expect((await bodyOf('pifleet-artifacts', 'twice')).toString()).toBe('second');
  });
});

describe('S3 beside the other APIs on one listener', () => {
  it('tells S3 requests apart by their signing name: a bucket named like an IoT path shadows nothing', async () => {
    await run.iot.send(new CreateThingCommand({ thingName: 'pi-s3' }));
    await s3.send(new PutObjectCommand({ Bucket: 'things', Key: 'pi-s3', Body: 'an object, not a thing' }));
    expect((await bodyOf('things', 'pi-s3')).toString()).toBe('an object, not a thing');
    expect((await run.iot.send(new DescribeThingCommand({ thingName: 'pi-s3' }))).thingName).toBe('pi-s3');
  });
});

describe('a restart', () => {
  it('keeps the objects, on the same port', async () => {
    const body = Buffer.from('survives a restart');
    await s3.send(new PutObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'restart/kept', Body: body }));
    const port = Number(new URL(run.info.http).port);
    await core.restart({ httpPort: port });
    s3.destroy();
    s3 = s3Client();
    expect(await bodyOf('pifleet-artifacts', 'restart/kept')).toEqual(body);
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'restart/kept' }));
    expect(head.ETag).toBe(md5(body));
  });
});
