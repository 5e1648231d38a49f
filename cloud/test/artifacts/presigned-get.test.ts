import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalIotCore, type LocalCoreInfo, type LocalIotCore } from '../../src/app/local-core.js';
import { MAX_DOCUMENT_SOURCE_BYTES } from '../../src/artifacts/index.js';
import { LOCAL_CORE_DEFAULTS } from '../../src/config/local-core.js';
import { ApiError } from '../../src/http/errors.js';
import { localProfileCredentials, removeDir, tempDir } from '../../src/testing/in-process-core.js';

/**
 * Presigned GET URLs of the local core, as job documents carry them: fetched with plain `fetch`
 * (what a device's downloader does), verified by the core, expired on its virtual clock, refused
 * when any signed part is changed. The clock starts at the real time (the S3 client signs with it)
 * and only moves forward where a test says so; the expiry test holds it still, so that the real time
 * that passes between signing and fetching (seconds, on a loaded machine) does not count.
 */

const ROLE = 'arn:aws:iam::123456789012:role/pifleet-iot-presign';
const BODY = Buffer.from('a signed release tarball, say');

let dir: string;
let core: LocalIotCore;
let info: LocalCoreInfo;
let s3: S3Client;
let offsetMs = 0;
/** While set, the core's clock stands at this real time (plus the offset). */
let heldAt: number | undefined;

async function startCore(httpPort = 0): Promise<void> {
  core = createLocalIotCore({
    config: { ...LOCAL_CORE_DEFAULTS, dataDir: dir, mqttPort: 0, httpPort },
    now: () => (heldAt ?? Date.now()) + offsetMs,
  });
  info = await core.start();
}

/** The URL a device would find in the job document. */
function presignedUrl(key: string, expiresInSec?: number): string {
  const document = JSON.stringify({
    operation: 'pifleet.agent-update',
    url: `\${aws:iot:s3-presigned-url:https://s3.amazonaws.com/pifleet-artifacts/${key}}`,
  });
  const resolved = core.services.artifacts.resolveDocument(document, {
    roleArn: ROLE,
    ...(expiresInSec === undefined ? {} : { expiresInSec }),
  });
  return (JSON.parse(resolved) as { url: string }).url;
}

async function s3Error(response: Response): Promise<{ code: string; message: string }> {
  const text = await response.text();
  return {
    code: /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? '',
    message: /<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? '',
  };
}

beforeAll(async () => {
  dir = tempDir('artifacts-presign');
  await startCore();
  s3 = new S3Client({
    region: info.region,
    endpoint: info.http,
    forcePathStyle: true,
    credentials: localProfileCredentials(info),
    maxAttempts: 1,
  });
  await s3.send(new PutObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'releases/1.0.0/agent.tgz', Body: BODY }));
});

afterAll(async () => {
  s3?.destroy();
  await core?.stop();
  if (dir) removeDir(dir);
});

describe('a presigned GET URL', () => {
  it('points at the core, signed by a read-only identity for an hour by default, and fetches the object', async () => {
    offsetMs = 0;
    const url = new URL(presignedUrl('releases/1.0.0/agent.tgz'));
    expect(url.origin).toBe(new URL(info.http).origin);
    expect(url.pathname).toBe('/pifleet-artifacts/releases/1.0.0/agent.tgz');
    expect(url.searchParams.get('X-Amz-Algorithm')).toBe('AWS4-HMAC-SHA256');
    expect(url.searchParams.get('X-Amz-Expires')).toBe('3600');
    expect(url.searchParams.get('X-Amz-SignedHeaders')).toBe('host');
    expect(url.searchParams.get('X-Amz-Credential')).toMatch(/^ASIA[A-Z2-7]{16}\/\d{8}\/us-east-1\/s3\/aws4_request$/);
    const own = await localProfileCredentials(info)();
    expect(url.searchParams.get('X-Amz-Credential')).not.toContain(own.accessKeyId);

    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-length')).toBe(String(BODY.length));
    expect(Buffer.from(await response.arrayBuffer())).toEqual(BODY);
  });

  it('serves a range of it (a resumed download)', async () => {
    offsetMs = 0;
    const response = await fetch(presignedUrl('releases/1.0.0/agent.tgz'), { headers: { range: 'bytes=2-7' } });
    expect(response.status).toBe(206);
    expect(response.headers.get('content-range')).toBe(`bytes 2-7/${BODY.length}`);
    expect(Buffer.from(await response.arrayBuffer())).toEqual(BODY.subarray(2, 8));
  });

  it('answers 404 NoSuchKey for an object that is not there (IoT presigns without looking)', async () => {
    offsetMs = 0;
    const response = await fetch(presignedUrl('releases/9.9.9/agent.tgz'));
    expect(response.status).toBe(404);
    expect((await s3Error(response)).code).toBe('NoSuchKey');
  });

  it('expires after expiresInSec on the core clock: 403 AccessDenied, Request has expired', async () => {
    offsetMs = 0;
    heldAt = Date.now();
    try {
      const url = presignedUrl('releases/1.0.0/agent.tgz', 60);
      offsetMs = 59_000;
      expect((await fetch(url)).status).toBe(200);
      offsetMs = 61_000;
      const response = await fetch(url);
      expect(response.status).toBe(403);
      expect(await s3Error(response)).toEqual({ code: 'AccessDenied', message: 'Request has expired' });
    } finally {
      heldAt = undefined;
      offsetMs = 0;
    }
  });

  it.each([
    [
      'its signature',
      (u: URL) => u.searchParams.set('X-Amz-Signature', flip(u.searchParams.get('X-Amz-Signature') ?? '')),
    ],
    [
      'its key',
      (u: URL) => {
        u.pathname = '/pifleet-artifacts/releases/1.0.0/other.tgz';
      },
    ],
    [
      'its bucket',
      (u: URL) => {
        u.pathname = '/other-bucket/releases/1.0.0/agent.tgz';
      },
    ],
    ['its expiry', (u: URL) => u.searchParams.set('X-Amz-Expires', '3601')],
    ['its date', (u: URL) => u.searchParams.set('X-Amz-Date', later(u.searchParams.get('X-Amz-Date') ?? ''))],
    ['its signed headers', (u: URL) => u.searchParams.set('X-Amz-SignedHeaders', 'host;range')],
  ])('is refused with 403 SignatureDoesNotMatch when %s is changed', async (_what, tamper) => {
    offsetMs = 0;
    const url = new URL(presignedUrl('releases/1.0.0/agent.tgz', 60));
    tamper(url);
    const response = await fetch(url);
    expect(response.status).toBe(403);
    expect((await s3Error(response)).code).toBe('SignatureDoesNotMatch');
  });

  it('is refused for any method but GET (the method is signed)', async () => {
    offsetMs = 0;
    const url = presignedUrl('releases/1.0.0/agent.tgz');
    const response = await fetch(url, { method: 'DELETE' });
    expect(response.status).toBe(403);
    const get = await s3.send(new GetObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'releases/1.0.0/agent.tgz' }));
    expect(Buffer.from(await (get.Body?.transformToByteArray() ?? Promise.resolve(new Uint8Array())))).toEqual(BODY);
  });

  it('without X-Amz-Expires is 400 AuthorizationQueryParametersError', async () => {
    const url = new URL(presignedUrl('releases/1.0.0/agent.tgz'));
    url.searchParams.delete('X-Amz-Expires');
    const response = await fetch(url);
    expect(response.status).toBe(400);
    expect((await s3Error(response)).code).toBe('AuthorizationQueryParametersError');
  });

  it('still works after the core restarts on its port (the presign identity is derived, not random)', async () => {
    offsetMs = 0;
    const url = presignedUrl('releases/1.0.0/agent.tgz');
    const port = Number(new URL(info.http).port);
    await core.stop();
    await startCore(port);
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(Buffer.from(await response.arrayBuffer())).toEqual(BODY);
  });
});

describe('readDocumentSource', () => {
  it('reads a job document stored in the artifact store', async () => {
    offsetMs = 0;
    const document = '{"operation":"pifleet.reboot"}';
    await s3.send(new PutObjectCommand({ Bucket: 'pifleet-jobs', Key: 'docs/reboot.json', Body: document }));
    const text = await core.services.artifacts.readDocumentSource(
      'https://s3.amazonaws.com/pifleet-jobs/docs/reboot.json',
    );
    expect(text).toBe(document);
  });

  it.each([
    ['a missing object', 'https://s3.amazonaws.com/pifleet-jobs/docs/none.json'],
    ['a missing bucket', 'https://s3.amazonaws.com/no-bucket/docs/none.json'],
    ['a document over 32 KB', 'https://s3.amazonaws.com/pifleet-jobs/docs/huge.json'],
    ['a URL that is not S3', 'https://example.com/pifleet-jobs/docs/reboot.json'],
  ])('refuses %s with InvalidRequestException', async (_what, url) => {
    offsetMs = 0;
    await s3.send(
      new PutObjectCommand({
        Bucket: 'pifleet-jobs',
        Key: 'docs/huge.json',
        Body: `"${'x'.repeat(MAX_DOCUMENT_SOURCE_BYTES)}"`,
      }),
    );
    const err = await core.services.artifacts.readDocumentSource(url).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).errorType).toBe('InvalidRequestException');
    expect((err as ApiError).status).toBe(400);
  });
});

function flip(hex: string): string {
  const last = hex.at(-1) === '0' ? '1' : '0';
  return `${hex.slice(0, -1)}${last}`;
}

function later(amzDate: string): string {
  const seconds = Number(amzDate.slice(13, 15));
  return `${amzDate.slice(0, 13)}${String((seconds + 1) % 60).padStart(2, '0')}Z`;
}
