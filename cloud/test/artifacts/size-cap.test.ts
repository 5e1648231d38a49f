import { Readable } from 'node:stream';
import { HeadObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createArtifacts } from '../../src/artifacts/index.js';
import { generateCredentials, singleCredentialStore } from '../../src/http/credentials.js';
import { createHttpServer, type HttpServerHandle } from '../../src/http/server.js';
import { removeDir, tempDir } from '../../src/testing/in-process-core.js';

/**
 * The object size cap, with the real client: the artifact service on the core's HTTP server, with
 * a 1 MiB cap so that "too large" is quick to send. A Buffer body declares its length and is
 * refused before a byte is stored; a stream body (aws-chunked) declares its decoded length and is
 * refused the same way; both answer S3's EntityTooLarge while the client is still sending.
 */

const CAP = 1024 * 1024;
const credentials = generateCredentials();
let dir: string;
let server: HttpServerHandle;
let s3: S3Client;

beforeAll(async () => {
  dir = tempDir('artifacts-cap');
  const artifacts = createArtifacts({ dir, region: 'us-east-1', credentials, now: Date.now, maxObjectBytes: CAP });
  await artifacts.start();
  server = createHttpServer({
    host: '127.0.0.1',
    port: 0,
    region: 'us-east-1',
    credentials: singleCredentialStore(credentials),
    routes: [artifacts.routes],
    now: Date.now,
  });
  const { url } = await server.start();
  s3 = new S3Client({ region: 'us-east-1', endpoint: url, forcePathStyle: true, credentials, maxAttempts: 1 });
});

afterAll(async () => {
  s3?.destroy();
  await server?.stop();
  if (dir) removeDir(dir);
});

async function refused(send: Promise<unknown>): Promise<S3ServiceException> {
  const err = await send.then(
    () => new Error('the request succeeded'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(S3ServiceException);
  return err as S3ServiceException;
}

describe('the object size cap', () => {
  it('takes an object of exactly the cap', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'b-cap', Key: 'full', Body: Buffer.alloc(CAP, 1) }));
    expect((await s3.send(new HeadObjectCommand({ Bucket: 'b-cap', Key: 'full' }))).ContentLength).toBe(CAP);
  });

  it.each([
    ['a Buffer one byte over', () => Buffer.alloc(CAP + 1, 2), CAP + 1],
    ['a Buffer eight times over', () => Buffer.alloc(8 * CAP, 3), 8 * CAP],
    [
      'a stream eight times over',
      () => Readable.from(Array.from({ length: 32 }, () => Buffer.alloc(CAP / 4, 4))),
      8 * CAP,
    ],
  ])('refuses %s with EntityTooLarge and stores nothing', async (_what, make, length) => {
    const err = await refused(
      s3.send(new PutObjectCommand({ Bucket: 'b-cap', Key: 'big', Body: make(), ContentLength: length })),
    );
    expect(err.name).toBe('EntityTooLarge');
    expect(err.$metadata.httpStatusCode).toBe(400);
    const head = await refused(s3.send(new HeadObjectCommand({ Bucket: 'b-cap', Key: 'big' })));
    expect(head.name).toBe('NotFound');
  });
});
